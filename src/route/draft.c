/* Self-speculative greedy generation: a layer-skipping draft proposes k
 * tokens, one batched dense pass verifies them (sparsefuse_draft.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "model/context.h"
#include "route/draft.h"

double sf_draft_acceptance(const sf_draft_stats *st) {
    return st && st->drafted > 0 ? (double)st->accepted / (double)st->drafted : 0.0;
}

double sf_draft_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int32_t sf_draft_argmax(const float *lg, int n) {
    int best = 0;
    float vb = isnan(lg[0]) ? -INFINITY : lg[0];
    for (int i = 1; i < n; i++)
        if (lg[i] > vb) {
            vb = lg[i];
            best = i;
        }
    return best;
}

int sf_draft_check(const sf_context *c, const sf_draft_params *p) {
    if (!c || !p || !p->skip) return sf_fail(SF_ERR_ARG, "draft: NULL argument");
    if (p->k < 1 || p->k > SF_DRAFT_MAX_K)
        return sf_fail(SF_ERR_ARG, "draft: k must be 1..%d (got %d)", SF_DRAFT_MAX_K, p->k);
    if (p->k + 1 > c->n_batch)
        return sf_fail(SF_ERR_ARG, "draft: verifying %d drafts takes %d tokens per pass, the batch size is %d", p->k,
                       p->k + 1, c->n_batch);
    return SF_OK;
}

typedef struct {
    sf_context *c;
    const sf_draft_params *p;
    int n_max;
    sf_draft_token_fn on_token;
    void *user;
    sf_draft_stats *st;
} gen;

/* One generated token, as the one-token loop handles it; n_in_kv: tokens in
 * the cache before this one would be decoded. Returns true to stop (the token
 * is then not decoded). */
static bool emit(gen *g, int32_t tok, int n_in_kv) {
    sf_draft_stats *st = g->st;
    if (g->n_max >= 0 && st->n_gen >= g->n_max) return true;
    if (!g->p->ignore_eog && sf_token_is_eog(g->c->model, tok)) {
        st->eog = true;
        return true;
    }
    bool more = g->on_token ? g->on_token(tok, g->user) : true;
    st->n_gen++;
    if (!more || (g->n_max >= 0 && st->n_gen >= g->n_max)) return true;
    if (n_in_kv >= g->c->n_ctx) {
        st->ctx_full = true;
        return true;
    }
    return false;
}

/* Drafts up to kk tokens after cur into batch[1..]; returns how many (it stops
 * after an end-of-generation draft: nothing after it would be used). */
static int draft(gen *g, const sf_run_plan *plan, int32_t *batch, int kk, int *rc) {
    sf_context *c = g->c;
    const int n_vocab = c->model->n_vocab;
    int nd = 0;
    while (nd < kk) {
        *rc = sf_decode_plan(c, &batch[nd], 1, false, plan);
        if (*rc != SF_OK) return nd;
        g->st->draft_passes++;
        int32_t d = sf_draft_argmax(sf_get_logits(c, -1), n_vocab);
        batch[++nd] = d;
        if (!g->p->ignore_eog && sf_token_is_eog(c->model, d)) break;
    }
    return nd;
}

int sf_draft_generate(sf_context *c, const sf_draft_params *p, int n_max, sf_draft_token_fn on_token, void *user,
                      sf_draft_stats *st) {
    if (!st) return sf_fail(SF_ERR_ARG, "draft: NULL stats");
    memset(st, 0, sizeof *st);
    int rc = sf_draft_check(c, p);
    if (rc != SF_OK) return rc;
    const float *lg = sf_get_logits(c, -1);
    if (!lg) return sf_fail(SF_ERR_RANGE, "draft: no logits to start from (decode the prompt first)");
    const int n_vocab = c->model->n_vocab;
    const sf_run_plan plan = {.drop_attn = p->skip, .drop_ffn = p->skip};
    gen g = {c, p, n_max, on_token, user, st};
    int32_t batch[SF_DRAFT_MAX_K + 1];
    int32_t cur = sf_draft_argmax(lg, n_vocab);
    const double t0 = sf_draft_now();
    /* cur: the next greedy token, known but not yet generated nor decoded */
    while (!emit(&g, cur, c->n_past)) {
        const int n0 = c->n_past;
        int kk = p->k;
        if (kk > c->n_ctx - n0 - 1) kk = c->n_ctx - n0 - 1; /* cur and the drafts must fit */
        if (n_max >= 0 && kk > n_max - st->n_gen) kk = n_max - st->n_gen; /* drafts past n_max are never used */
        if (kk <= 0) {
            if ((rc = sf_decode(c, &cur, 1, false)) != SF_OK) break;
            st->dense_passes++;
            st->n_decoded++;
            cur = sf_draft_argmax(sf_get_logits(c, -1), n_vocab);
            continue;
        }
        batch[0] = cur;
        const int nd = draft(&g, &plan, batch, kk, &rc);
        if (rc != SF_OK) break;
        /* the draft's KV entries at n0.. are overwritten: a pass forgets cells >= n_past */
        if ((rc = sf_kv_truncate(c, n0)) != SF_OK) break;
        if ((rc = sf_decode(c, batch, nd + 1, true)) != SF_OK) break;
        st->verify_passes++;
        st->verify_size[nd + 1]++;
        st->drafted += nd;
        /* row i of the verify logits: the dense next token after batch[0..i] */
        int keep = nd + 1; /* tokens of batch that stay in the cache */
        bool stop = false;
        int32_t next = -1;
        for (int i = 1; i <= nd; i++) {
            int32_t t = sf_draft_argmax(sf_get_logits(c, i - 1), n_vocab);
            if (t != batch[i]) {
                next = t;
                keep = i;
                break;
            }
            st->accepted++;
            if (emit(&g, t, n0 + i)) {
                keep = i; /* the last generated token is not decoded */
                stop = true;
                break;
            }
        }
        if (next < 0 && !stop) next = sf_draft_argmax(sf_get_logits(c, nd), n_vocab);
        if ((rc = sf_kv_truncate(c, n0 + keep)) != SF_OK) break;
        st->n_decoded += keep;
        if (stop) break;
        cur = next;
    }
    st->seconds = sf_draft_now() - t0;
    return rc;
}
