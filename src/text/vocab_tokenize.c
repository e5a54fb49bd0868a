/* Text -> token ids (llama.cpp llama_vocab::impl::tokenize): partition on
 * special tokens, then run the model's tokenizer on each raw fragment. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "text/vocab_impl.h"

static int tokenize_all(const sf_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                        sf_ids *ids) {
    sf_fragments frags = {0};
    int rc = sf_vocab_partition(v, text, len, parse_special, &frags);
    if (rc) goto done;
    if (add_special && v->add_bos && (rc = sf_ids_push(ids, v->bos))) goto done;
    if (v->kind == SF_VOCAB_SPM) {
        bool prev_special = true; /* the first fragment gets the space prefix */
        char *tmp = NULL;
        for (size_t i = 0; i < frags.n && !rc; i++) {
            const sf_fragment *f = &frags.v[i];
            if (f->id >= 0) {
                rc = sf_ids_push(ids, f->id);
                prev_special = true;
                continue;
            }
            if (v->add_space_prefix && prev_special) {
                char *nt = realloc(tmp, f->len + 1);
                if (!nt) {
                    rc = sf_fail(SF_ERR_NOMEM, "out of memory tokenizing %zu bytes", f->len);
                    break;
                }
                tmp = nt;
                tmp[0] = ' ';
                memcpy(tmp + 1, text + f->off, f->len);
                rc = sf_spm_tokenize(v, tmp, f->len + 1, ids);
            } else {
                rc = sf_spm_tokenize(v, text + f->off, f->len, ids);
            }
            prev_special = false;
        }
        free(tmp);
    } else {
        for (size_t i = 0; i < frags.n && !rc; i++) {
            const sf_fragment *f = &frags.v[i];
            rc = f->id >= 0 ? sf_ids_push(ids, f->id) : sf_bpe_tokenize(v, text + f->off, f->len, ids);
        }
    }
    if (!rc && add_special && v->add_eos) rc = sf_ids_push(ids, v->eos);
done:
    free(frags.v);
    return rc;
}

int sf_vocab_tokenize(const sf_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                      int32_t *out, int n_max) {
    if (!text) len = 0;
    sf_ids ids = {0};
    int rc = tokenize_all(v, text, len, add_special, parse_special, &ids);
    if (rc) {
        free(ids.v);
        return rc;
    }
    if (ids.n > (size_t)INT_MAX) {
        free(ids.v);
        return sf_fail(SF_ERR_RANGE, "text gives more than %d tokens", INT_MAX);
    }
    int n = (int)ids.n;
    if (n > n_max || (n > 0 && !out)) {
        free(ids.v);
        return -n;
    }
    if (n) memcpy(out, ids.v, (size_t)n * sizeof(int32_t));
    free(ids.v);
    return n;
}
