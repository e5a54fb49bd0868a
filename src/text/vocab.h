/* Tokenizers built from GGUF metadata, matching llama.cpp's llama-vocab.cpp:
 *  - "gpt2": byte-level BPE with the pre-tokenizer named by tokenizer.ggml.pre
 *    (gpt-2, smollm, llama-bpe, qwen2, starcoder, deepseek-llm, deepseek-coder,
 *    falcon, mpt, refact, and the other names llama.cpp maps to these);
 *  - "llama": SentencePiece-style BPE by score with byte fallback (Llama 2,
 *    TinyLlama, Gemma).
 * Special/control tokens, BOS/EOS/add-space rules come from the metadata. */
#ifndef SF_TEXT_VOCAB_H
#define SF_TEXT_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"

typedef struct sf_vocab sf_vocab;

typedef enum {
    SF_TOKEN_NORMAL = 1, SF_TOKEN_UNKNOWN = 2, SF_TOKEN_CONTROL = 3,
    SF_TOKEN_USER_DEFINED = 4, SF_TOKEN_UNUSED = 5, SF_TOKEN_BYTE = 6
} sf_token_type;

/* Builds the vocab from tokenizer.ggml.* keys; copies what it needs, so the
 * gguf may be closed afterwards. Error names the missing/bad key. */
int sf_vocab_load(const sf_gguf *g, sf_vocab **out);
void sf_vocab_free(sf_vocab *v);

int32_t sf_vocab_n_tokens(const sf_vocab *v);
const char *sf_vocab_model_name(const sf_vocab *v); /* "gpt2" / "llama" */
const char *sf_vocab_pre_name(const sf_vocab *v);   /* tokenizer.ggml.pre or "default" */
/* What the loader had to assume (e.g. an unknown or missing pre-tokenizer
 * replaced by "default"); "" when nothing. */
const char *sf_vocab_note(const sf_vocab *v);
int32_t sf_vocab_bos(const sf_vocab *v);  /* -1 if none */
int32_t sf_vocab_eos(const sf_vocab *v);
int32_t sf_vocab_eot(const sf_vocab *v);
bool sf_vocab_add_bos(const sf_vocab *v);
bool sf_vocab_add_eos(const sf_vocab *v);
/* End of generation: eos, eot, eom and other end-of-turn tokens (<|im_end|>, <end_of_turn>, ...). */
bool sf_vocab_is_eog(const sf_vocab *v, int32_t id);
sf_token_type sf_vocab_token_type(const sf_vocab *v, int32_t id);
/* Raw vocab string (byte-mapped for gpt2); NUL-terminated. */
const char *sf_vocab_token_text(const sf_vocab *v, int32_t id);
/* Id of an exact vocab string, or -1. */
int32_t sf_vocab_find(const sf_vocab *v, const char *text);

/* Tokenizes text[len] into out[n_max]. add_special adds BOS/EOS as the
 * metadata says; parse_special turns control/user-defined token texts into
 * their ids. Returns the number of tokens; if that exceeds n_max, returns
 * -(required count) and writes nothing useful (like llama_tokenize). */
int sf_vocab_tokenize(const sf_vocab *v, const char *text, size_t len, bool add_special,
                      bool parse_special, int32_t *out, int n_max);

/* Writes the bytes of one token's piece into buf[len] (no NUL); returns the
 * byte count, or -(required) if buf is too small. Control tokens render as
 * their text only if `special`. */
int sf_vocab_token_to_piece(const sf_vocab *v, int32_t id, char *buf, int len, bool special);

/* Whole-sequence detokenize (llama_detokenize semantics: SPM leading-space
 * removal when remove_special-ish rules apply). Returns bytes written or
 * -(required). */
int sf_vocab_detokenize(const sf_vocab *v, const int32_t *tokens, int n, char *buf, int len,
                        bool remove_special, bool unparse_special);

#endif
