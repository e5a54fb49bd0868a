/* Parity with llama.cpp on one model against the fixtures
 * tools/reference/make_fixtures.py wrote from llama.cpp itself
 * (tests/fixtures/{logits,greedy,perplexity}-NAME.txt). Each check prints
 * what it measured and asserts the tolerances:
 *  - logits: at every position of every prompt, NMSE over the stored ids
 *    <= nmse and the same top token at >= top of the positions;
 *  - greedy: the 64-token continuations identical but for greedy_misses;
 *  - perplexity: the first n_chunks chunks of 512 of WikiText-2 test (the
 *    carried head) within ppl_rel of llama.cpp's running value.
 * A missing fixture skips the test. */
#ifndef SF_TEST_PARITY_H
#define SF_TEST_PARITY_H

#include <stdint.h>

typedef struct {
    double nmse;       /* bound at every position */
    double top;        /* share of positions with llama.cpp's top token */
    int greedy_misses; /* continuations (of 5) allowed to differ */
    double ppl_rel;    /* |ppl / ref - 1| */
} sf_parity_tol;

void sf_parity_logits(const char *model_path, const char *name, const sf_parity_tol *tol);
void sf_parity_greedy(const char *model_path, const char *name, const sf_parity_tol *tol);
void sf_parity_perplexity(const char *model_path, const char *name, int n_chunks, const sf_parity_tol *tol);

/* Space-separated decimal ids of s into out[max]; the count. */
int sf_parity_parse_ids(const char *s, int32_t *out, int max);

#endif
