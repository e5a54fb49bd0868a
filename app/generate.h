/* Token-by-token generation with streamed, UTF-8-safe output (run, chat). */
#ifndef SF_APP_GENERATE_H
#define SF_APP_GENERATE_H

#include <stdio.h>

#include "sparsefuse.h"

/* Writes bytes to f, holding back an incomplete UTF-8 sequence at the end
 * until the bytes that complete it arrive (a token may end mid-character). */
typedef struct {
    FILE *f;
    char pend[4]; /* incomplete trailing sequence */
    int n_pend;
    bool capture; /* also collect every byte in text[len] (malloc'd, NUL-terminated) */
    char *text;
    size_t len, cap;
} utf8_stream;

void utf8_put(utf8_stream *s, const char *p, size_t n);
void utf8_flush(utf8_stream *s); /* writes whatever is pending */

typedef struct {
    int n_gen;       /* tokens produced (printed), the end-of-generation token excluded */
    int n_decoded;   /* of those, evaluated into the KV cache */
    double seconds;  /* wall time of the loop */
    bool eog;        /* stopped at an end-of-generation token */
    bool ctx_full;   /* stopped because the context is full */
} gen_stats;

/* Samples from the last decode's logits until an end-of-generation token,
 * n_max tokens (< 0: no limit) or a full context. Each token's text goes to
 * out (flushed per token); each token but the last is decoded. Decoded ids
 * are stored in kv_out[kv_cap] if given. Returns SF_OK or the error. */
int app_generate(sf_context *c, const sf_model *m, sf_sampler *s, int n_max, utf8_stream *out,
                 gen_stats *st, int32_t *kv_out, int kv_cap);

/* Decodes tokens and returns SF_OK or the error; stats into *seconds. */
int app_decode_timed(sf_context *c, const int32_t *toks, int n, double *seconds);

double app_now(void);

#endif
