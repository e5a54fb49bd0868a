/* Public tokenizer entry points: thin wrappers over the model's vocab. */
#include "model/model.h"

int sf_tokenize(const sf_model *m, const char *text, size_t len, int32_t *out, int n_max, bool add_special,
                bool parse_special) {
    return sf_vocab_tokenize(m->vocab, text, len, add_special, parse_special, out, n_max);
}

int sf_token_to_piece(const sf_model *m, int32_t token, char *buf, int len, bool special) {
    return sf_vocab_token_to_piece(m->vocab, token, buf, len, special);
}

int32_t sf_token_bos(const sf_model *m) { return sf_vocab_bos(m->vocab); }
int32_t sf_token_eos(const sf_model *m) { return sf_vocab_eos(m->vocab); }
bool sf_token_is_eog(const sf_model *m, int32_t token) { return sf_vocab_is_eog(m->vocab, token); }
bool sf_model_add_bos(const sf_model *m) { return sf_vocab_add_bos(m->vocab); }
