/* sf_draft_auto: the draft's layer set from calibration text. Layers are
 * ranked by teacher-forced top-1 agreement when dropped alone; sets grown in
 * that order are scored by real drafting and a speedup model. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/context.h"
#include "model/model.h"
#include "route/draft.h"

enum {
    N_CALIB_MIN = 64,
    N_CALIB_MAX = 512,
    N_SEG = 4,       /* pieces of the text continued while growing */
    N_GEN = 32,      /* tokens generated per piece */
    PIECE = 64,      /* logits rows per teacher-forced call (the context's n_batch) */
    TIME_REPS = 5,   /* timed verify passes per size (the fastest counts) */
    PATIENCE = 4     /* sets without a better speedup before the growth stops */
};

typedef struct {
    sf_model *m;
    sf_context *c;
    const int32_t *tok;
    int T, h; /* tokens used; the teacher-forced half starts at h */
    const sf_draft_auto_params *p;
    int passes;
} search;

/* Decodes tok[h..T) in pieces under plan (NULL: dense), from the dense
 * prefix; top[i] gets the argmax after tok[h + i] or agree counts matches. */
static int teacher_forced(search *s, const sf_run_plan *plan, int32_t *top, const int32_t *ref, int *agree) {
    int rc = sf_kv_truncate(s->c, s->h);
    if (agree) *agree = 0;
    for (int i = s->h; rc == SF_OK && i < s->T; i += PIECE) {
        const int n = s->T - i < PIECE ? s->T - i : PIECE;
        rc = sf_decode_plan(s->c, s->tok + i, n, true, plan);
        s->passes++;
        for (int j = 0; rc == SF_OK && j < n; j++) {
            int32_t t = sf_draft_argmax(sf_get_logits(s->c, j), s->m->n_vocab);
            if (top) top[i - s->h + j] = t;
            if (agree && t == ref[i - s->h + j]) (*agree)++;
        }
    }
    return rc;
}

/* Fraction of top-1 agreement with the dense pass with each layer alone dropped. */
static int rank_layers(search *s, float *agree_frac) {
    const int n_layer = s->m->n_layer, n = s->T - s->h;
    int32_t *ref = malloc(sizeof *ref * (size_t)n);
    bool *drop = calloc((size_t)n_layer, sizeof *drop);
    int rc = ref && drop ? SF_OK : sf_fail(SF_ERR_NOMEM, "draft auto: out of memory");
    if (rc == SF_OK) rc = sf_decode(s->c, s->tok, s->h, false); /* the dense prefix, kept */
    s->passes++;
    if (rc == SF_OK) rc = teacher_forced(s, NULL, ref, NULL, NULL);
    for (int l = 0; rc == SF_OK && l < n_layer; l++) {
        drop[l] = true;
        const sf_run_plan plan = {.drop_attn = drop, .drop_ffn = drop};
        int agree = 0;
        rc = teacher_forced(s, &plan, NULL, ref, &agree);
        agree_frac[l] = (float)agree / (float)n;
        drop[l] = false;
        if (s->p->progress) s->p->progress("draft: ranking layers", l + 1, n_layer, s->p->user);
    }
    free(ref);
    free(drop);
    return rc;
}

/* verify_cost[n]: the fastest dense pass of n tokens after the prefix over the fastest of one. */
static int time_verify(search *s, double *verify_cost) {
    double best[SF_DRAFT_MAX_K + 2];
    int rc = SF_OK;
    for (int n = 1; rc == SF_OK && n <= s->p->k + 1; n++) {
        best[n] = 1e30;
        for (int r = 0; rc == SF_OK && r < TIME_REPS; r++) {
            rc = sf_kv_truncate(s->c, s->h);
            const double t0 = sf_draft_now();
            if (rc == SF_OK) rc = sf_decode(s->c, s->tok + s->h, n, true);
            const double dt = sf_draft_now() - t0;
            if (dt < best[n]) best[n] = dt;
            s->passes++;
        }
    }
    for (int n = 1; rc == SF_OK && n <= s->p->k + 1; n++) verify_cost[n] = best[n] / (best[1] > 0 ? best[1] : 1e-9);
    return rc;
}

/* Drafts greedy continuations of N_SEG pieces of the text with skip; the
 * acceptance and the modeled speedup (one-token dense decodes the same
 * tokens take, over the passes drafting took, weighted by their cost). */
static int score_set(search *s, const bool *skip, const double *verify_cost, double *acceptance, double *speedup) {
    const sf_draft_params dp = {.k = s->p->k, .skip = skip, .ignore_eog = true};
    const int seg = s->T / N_SEG;
    const int32_t bos = sf_model_add_bos(s->m) ? sf_token_bos(s->m) : -1;
    int32_t prompt[N_CALIB_MAX / N_SEG + 1];
    int64_t drafted = 0, accepted = 0, decoded = 0;
    double cost = 0.0;
    const double f = sf_draft_cost_fraction(s->m, skip);
    int rc = SF_OK;
    for (int i = 0; rc == SF_OK && i < N_SEG; i++) {
        int n = 0;
        if (bos >= 0 && s->tok[i * seg] != bos) prompt[n++] = bos;
        memcpy(prompt + n, s->tok + i * seg, sizeof *prompt * (size_t)seg);
        n += seg;
        rc = sf_kv_truncate(s->c, 0);
        if (rc == SF_OK) rc = sf_decode(s->c, prompt, n, false);
        s->passes++;
        sf_draft_stats st;
        if (rc == SF_OK) rc = sf_draft_generate(s->c, &dp, N_GEN, NULL, NULL, &st);
        if (rc != SF_OK) break;
        s->passes += (int)(st.draft_passes + st.verify_passes + st.dense_passes);
        drafted += st.drafted;
        accepted += st.accepted;
        decoded += st.n_decoded;
        cost += (double)st.draft_passes * f + (double)st.dense_passes;
        for (int v = 1; v <= s->p->k + 1; v++) cost += (double)st.verify_size[v] * verify_cost[v];
    }
    *acceptance = drafted > 0 ? (double)accepted / (double)drafted : 0.0;
    *speedup = cost > 0 ? (double)decoded / cost : 0.0;
    return rc;
}

/* Layer order for growing the set: best agreement first, deeper first on ties. */
static void order_layers(const float *agree, int n_layer, int *order) {
    for (int i = 0; i < n_layer; i++) order[i] = i;
    for (int i = 1; i < n_layer; i++) { /* insertion sort, n_layer is small */
        int v = order[i], j = i;
        while (j > 0 && (agree[order[j - 1]] < agree[v] || (agree[order[j - 1]] == agree[v] && order[j - 1] < v))) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
}

static int grow(search *s, const float *agree, bool *skip, sf_draft_auto_result *out) {
    const int n_layer = s->m->n_layer;
    int *order = malloc(sizeof *order * (size_t)n_layer);
    bool *set = calloc((size_t)n_layer, sizeof *set);
    int rc = order && set ? SF_OK : sf_fail(SF_ERR_NOMEM, "draft auto: out of memory");
    if (rc == SF_OK) order_layers(agree, n_layer, order);
    double best = -1.0;
    int since_best = 0;
    memset(skip, 0, sizeof *skip * (size_t)n_layer);
    for (int n = 1; rc == SF_OK && n < n_layer && since_best < PATIENCE; n++) {
        set[order[n - 1]] = true;
        double acc, speedup;
        rc = score_set(s, set, out->verify_cost, &acc, &speedup);
        if (rc != SF_OK) break;
        if (s->p->on_candidate) s->p->on_candidate(set, n_layer, acc, speedup, s->p->user);
        if (s->p->progress) s->p->progress("draft: growing the set", n, n_layer - 1, s->p->user);
        if (speedup > best) {
            best = speedup;
            since_best = 0;
            memcpy(skip, set, sizeof *skip * (size_t)n_layer);
            out->n_skip = n;
            out->acceptance = acc;
            out->speedup = speedup;
        } else {
            since_best++;
        }
    }
    out->cost_fraction = sf_draft_cost_fraction(s->m, skip);
    free(order);
    free(set);
    return rc;
}

int sf_draft_auto(sf_model *m, const int32_t *tokens, int n_tokens, const sf_draft_auto_params *p, bool *skip,
                  sf_draft_auto_result *out) {
    if (!m || !tokens || !p || !skip || !out) return sf_fail(SF_ERR_ARG, "draft auto: NULL argument");
    memset(out, 0, sizeof *out);
    if (p->k < 1 || p->k > SF_DRAFT_MAX_K)
        return sf_fail(SF_ERR_ARG, "draft auto: k must be 1..%d (got %d)", SF_DRAFT_MAX_K, p->k);
    if (p->n_calib != 0 && (p->n_calib < N_CALIB_MIN || p->n_calib > N_CALIB_MAX))
        return sf_fail(SF_ERR_ARG, "draft auto: calibration tokens must be %d..%d (got %d)", N_CALIB_MIN, N_CALIB_MAX,
                       p->n_calib);
    if (m->n_layer < 2) return sf_fail(SF_ERR_UNSUPPORTED, "draft auto: the model has a single layer");
    int T = p->n_calib ? p->n_calib : N_CALIB_MAX;
    if (T > n_tokens) T = n_tokens;
    if (T < N_CALIB_MIN)
        return sf_fail(SF_ERR_ARG, "draft auto: the calibration text has %d tokens, at least %d are needed", n_tokens,
                       N_CALIB_MIN);
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = T / N_SEG + 1 + N_GEN + SF_DRAFT_MAX_K + 1;
    if (cp.n_ctx < T) cp.n_ctx = T;
    cp.n_batch = PIECE;
    cp.n_threads = p->n_threads;
    sf_context *c = sf_context_new(m, &cp);
    if (!c) return sf_fail_context(SF_ERR_NOMEM, "draft auto: context of %d", cp.n_ctx);
    search s = {.m = m, .c = c, .tok = tokens, .T = T, .h = T / 2, .p = p};
    float *agree = malloc(sizeof *agree * (size_t)m->n_layer);
    int rc = agree ? SF_OK : sf_fail(SF_ERR_NOMEM, "draft auto: out of memory");
    if (rc == SF_OK) rc = rank_layers(&s, agree);
    if (rc == SF_OK) rc = time_verify(&s, out->verify_cost);
    if (rc == SF_OK) rc = grow(&s, agree, skip, out);
    out->passes = s.passes;
    free(agree);
    sf_context_free(c);
    return rc;
}
