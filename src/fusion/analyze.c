/* sparsefuse analyze: the FFN Fusion paper's block-dependency matrix M and
 * per-layer importances, measured with the engine's own forward pass.
 *
 * Per calibration chunk: one baseline pass stores the residual stream at
 * every layer's input, after its attention and at its output
 * (base: [n_layer][3][T][n_embd]). Then for every layer i three passes start
 * at layer i from the stored stream, with block i, FFN i or attention i
 * removed; hooks compare each later block's contribution with the baseline's
 * (cosine distance per token), and the final logits with the dense ones (KL). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/context.h"
#include "model/model.h"
#include "sparsefuse_fusion.h"

sf_analyze_params sf_analyze_default_params(void) {
    sf_analyze_params p = {.n_ctx = 512, .n_tokens = 512, .n_threads = 0};
    return p;
}

void sf_analysis_free(sf_analysis *a) {
    if (!a) return;
    free(a->dep_block);
    free(a->dep_ffn);
    free(a->block_cos);
    free(a->attn_cos);
    free(a->block_kl);
    free(a->attn_kl);
    free(a->h_ratio);
    free(a->ffn_h_ratio);
    memset(a, 0, sizeof *a);
}

typedef struct {
    int L, E, T, V;
    float *base;       /* [L][3][T][E] baseline residual stream per layer and stage */
    float *probs;      /* [T][V] dense next-token probabilities */
    double *neg_ent;   /* [T] sum_v p log p of the dense distribution */
    float *stage_x;    /* [T][E] the current pass's stream at the compared stage */
    float *h;          /* [2][E] one token's contribution in this pass and in the baseline */
    /* sums over tokens, [L][L] and [L] */
    double *dep_block, *dep_ffn, *block_cos, *attn_cos, *block_kl, *attn_kl, *h_ratio, *ffn_h_ratio;
    int64_t *n_dep_block, *n_dep_ffn; /* tokens with a defined cosine, [L][L] */
    int64_t n_tok;                    /* tokens seen (per layer sums) */
    int dropped;                      /* layer removed in the current pass */
    int mode;                         /* 0: block, 1: FFN */
    bool *drop_attn, *drop_ffn;       /* [L] the sub-blocks removed in the current pass */
} acc_t;

static float *base_at(const acc_t *a, int layer, sf_stage stage) {
    return a->base + (((size_t)layer * 3 + (size_t)stage) * a->T) * a->E;
}

/* 1 - cos(u, v); -1 when undefined (a zero vector). */
static double cos_dist(const float *u, const float *v, int n) {
    double uv = 0, uu = 0, vv = 0;
    for (int i = 0; i < n; i++) {
        uv += (double)u[i] * v[i];
        uu += (double)u[i] * u[i];
        vv += (double)v[i] * v[i];
    }
    if (uu == 0 || vv == 0) return -1.0;
    return 1.0 - uv / sqrt(uu * vv);
}

static void on_base(void *user, int layer, sf_stage stage, const float *x, int T) {
    acc_t *a = user;
    memcpy(base_at(a, layer, stage), x, sizeof(float) * (size_t)T * a->E);
}

/* Contribution of block (mode 0: stage 0 -> 2) or FFN (mode 1: stage 1 -> 2)
 * `layer` in this pass against the baseline's, per token. */
static void on_drop(void *user, int layer, sf_stage stage, const float *x, int T) {
    acc_t *a = user;
    if (layer <= a->dropped) return;
    const sf_stage from = a->mode == 0 ? SF_STAGE_INPUT : SF_STAGE_AFTER_ATTN;
    if (stage == from) {
        memcpy(a->stage_x, x, sizeof(float) * (size_t)T * a->E);
        return;
    }
    if (stage != SF_STAGE_OUTPUT) return;
    const float *b0 = base_at(a, layer, from), *b2 = base_at(a, layer, SF_STAGE_OUTPUT);
    float *h = a->h;
    double *sum = (a->mode == 0 ? a->dep_block : a->dep_ffn) + (size_t)a->dropped * a->L + layer;
    int64_t *cnt = (a->mode == 0 ? a->n_dep_block : a->n_dep_ffn) + (size_t)a->dropped * a->L + layer;
    for (int t = 0; t < T; t++) {
        const size_t o = (size_t)t * a->E;
        for (int e = 0; e < a->E; e++) {
            h[e] = x[o + e] - a->stage_x[o + e];
            h[a->E + e] = b2[o + e] - b0[o + e];
        }
        const double d = cos_dist(h, h + a->E, a->E);
        if (d >= 0) {
            *sum += d;
            (*cnt)++;
        }
    }
}

/* Dense probabilities of the baseline logits ([T][V]). */
static void keep_dense(acc_t *a, const float *logits) {
    for (int t = 0; t < a->T; t++) {
        const float *l = logits + (size_t)t * a->V;
        float *p = a->probs + (size_t)t * a->V;
        float mx = l[0];
        for (int v = 1; v < a->V; v++) mx = l[v] > mx ? l[v] : mx;
        double z = 0;
        for (int v = 0; v < a->V; v++) z += exp((double)(l[v] - mx));
        const double lz = log(z) + mx;
        double ne = 0;
        for (int v = 0; v < a->V; v++) {
            const double lp = (double)l[v] - lz;
            p[v] = (float)exp(lp);
            ne += p[v] * lp;
        }
        a->neg_ent[t] = ne;
    }
}

/* Sum over tokens of KL(dense || this pass). */
static double kl_sum(const acc_t *a, const float *logits) {
    double s = 0;
    for (int t = 0; t < a->T; t++) {
        const float *l = logits + (size_t)t * a->V, *p = a->probs + (size_t)t * a->V;
        float mx = l[0];
        for (int v = 1; v < a->V; v++) mx = l[v] > mx ? l[v] : mx;
        double z = 0, pl = 0;
        for (int v = 0; v < a->V; v++) {
            z += exp((double)(l[v] - mx));
            pl += (double)p[v] * l[v];
        }
        s += a->neg_ent[t] - pl + (log(z) + mx);
    }
    return s;
}

static void baseline_stats(acc_t *a) {
    for (int l = 0; l < a->L; l++) {
        const float *x0 = base_at(a, l, SF_STAGE_INPUT), *x1 = base_at(a, l, SF_STAGE_AFTER_ATTN),
                    *x2 = base_at(a, l, SF_STAGE_OUTPUT);
        for (int t = 0; t < a->T; t++) {
            const size_t o = (size_t)t * a->E;
            const double dc = cos_dist(x0 + o, x2 + o, a->E), da = cos_dist(x0 + o, x1 + o, a->E);
            a->block_cos[l] += dc > 0 ? dc : 0;
            a->attn_cos[l] += da > 0 ? da : 0;
            double hh = 0, xx = 0, ff = 0, mm = 0;
            for (int e = 0; e < a->E; e++) {
                const double h = (double)x2[o + e] - x0[o + e], f = (double)x2[o + e] - x1[o + e];
                hh += h * h;
                xx += (double)x0[o + e] * x0[o + e];
                ff += f * f;
                mm += (double)x1[o + e] * x1[o + e];
            }
            a->h_ratio[l] += xx > 0 ? sqrt(hh / xx) : 0;
            a->ffn_h_ratio[l] += mm > 0 ? sqrt(ff / mm) : 0;
        }
    }
}

static int alloc_all(acc_t *a) {
    const size_t L = (size_t)a->L;
    a->base = malloc(sizeof(float) * L * 3 * a->T * a->E);
    a->probs = malloc(sizeof(float) * (size_t)a->T * a->V);
    a->neg_ent = calloc((size_t)a->T, sizeof(double));
    a->stage_x = malloc(sizeof(float) * (size_t)a->T * a->E);
    a->h = malloc(sizeof(float) * 2 * (size_t)a->E);
    a->dep_block = calloc(L * L, sizeof(double));
    a->dep_ffn = calloc(L * L, sizeof(double));
    a->n_dep_block = calloc(L * L, sizeof(int64_t));
    a->n_dep_ffn = calloc(L * L, sizeof(int64_t));
    a->drop_attn = calloc(L, sizeof(bool));
    a->drop_ffn = calloc(L, sizeof(bool));
    double **v[] = {&a->block_cos, &a->attn_cos, &a->block_kl, &a->attn_kl, &a->h_ratio, &a->ffn_h_ratio};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) *v[i] = calloc(L, sizeof(double));
    bool ok = a->base && a->probs && a->neg_ent && a->stage_x && a->h && a->dep_block && a->dep_ffn && a->n_dep_block &&
              a->n_dep_ffn && a->drop_attn && a->drop_ffn;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) ok = ok && *v[i];
    return ok ? SF_OK : sf_fail(SF_ERR_NOMEM, "analyze: out of memory for %d layers x %d tokens", a->L, a->T);
}

static void free_acc(acc_t *a) {
    void *v[] = {a->base, a->probs, a->neg_ent, a->stage_x, a->h, a->dep_block, a->dep_ffn, a->n_dep_block,
                 a->n_dep_ffn, a->drop_attn, a->drop_ffn, a->block_cos, a->attn_cos, a->block_kl, a->attn_kl,
                 a->h_ratio, a->ffn_h_ratio};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) free(v[i]);
}

static float *to_float(const double *s, const int64_t *cnt, int64_t n_all, size_t n, bool upper, int L) {
    float *f = malloc(sizeof(float) * n);
    if (!f) return NULL;
    for (size_t k = 0; k < n; k++) {
        const int64_t c = cnt ? cnt[k] : n_all;
        const bool defined = !upper || (int)(k % L) > (int)(k / L);
        f[k] = defined && c > 0 ? (float)(s[k] / c) : NAN;
    }
    return f;
}

static int run_chunk(sf_context *c, acc_t *a, const int32_t *toks, int64_t *pass, int64_t n_pass,
                     const sf_analyze_params *p) {
    const sf_model *m = c->model;
    int rc = sf_kv_truncate(c, 0);
    sf_run_plan ctl = {.on_stage = on_base, .user = a};
    if (rc == SF_OK) rc = sf_forward(c, toks, a->T, 0, &ctl);
    if (rc != SF_OK) return rc;
    keep_dense(a, c->logits);
    baseline_stats(a);
    if (p->progress) p->progress("analyze", ++*pass, n_pass, p->user);
    for (int i = 0; i < a->L; i++) {
        const bool has_attn = m->layers[i].attn != SF_ATTN_NONE;
        for (int kind = 0; kind < 3; kind++) { /* 0: block, 1: FFN, 2: attention */
            if (kind == 2 && !has_attn) continue;
            a->drop_attn[i] = kind != 1;
            a->drop_ffn[i] = kind != 2;
            sf_run_plan d = {.start_layer = i, .x_start = base_at(a, i, SF_STAGE_INPUT), .drop_attn = a->drop_attn,
                                .drop_ffn = a->drop_ffn, .on_stage = kind < 2 ? on_drop : NULL, .user = a};
            a->dropped = i;
            a->mode = kind;
            rc = sf_forward(c, toks, a->T, kind == 1 ? a->T : 0, &d);
            a->drop_attn[i] = a->drop_ffn[i] = false;
            if (rc != SF_OK) return rc;
            if (kind == 0) a->block_kl[i] += kl_sum(a, c->logits);
            if (kind == 2) a->attn_kl[i] += kl_sum(a, c->logits);
            if (p->progress) p->progress("analyze", ++*pass, n_pass, p->user);
        }
    }
    a->n_tok += a->T;
    return SF_OK;
}

int sf_analyze(sf_model *m, const int32_t *tokens, int64_t n_avail, const sf_analyze_params *p, sf_analysis *out) {
    if (!m || !tokens || !p || !out) return sf_fail(SF_ERR_ARG, "analyze: null argument");
    memset(out, 0, sizeof *out);
    if (p->n_ctx < 2) return sf_fail(SF_ERR_ARG, "analyze: chunk size %d is too small", p->n_ctx);
    if (p->n_tokens < 2) return sf_fail(SF_ERR_ARG, "analyze: %lld tokens is too few", (long long)p->n_tokens);
    const int64_t want = p->n_tokens < n_avail ? p->n_tokens : n_avail;
    const int T = (int)(want < p->n_ctx ? want : p->n_ctx);
    const int64_t n_chunks = want / T;
    if (T < 2 || n_chunks < 1)
        return sf_fail(SF_ERR_ARG, "analyze: the calibration text has %lld tokens, need at least 2",
                       (long long)n_avail);
    int n_attn = 0;
    for (int l = 0; l < m->n_layer; l++) n_attn += m->layers[l].attn != SF_ATTN_NONE;

    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = T;
    cp.n_batch = T;
    cp.n_threads = p->n_threads;
    sf_context *c = sf_context_new(m, &cp);
    if (!c) return SF_ERR_NOMEM; /* sf_context_new recorded why */
    acc_t a = {.L = m->n_layer, .E = m->n_embd, .T = T, .V = m->n_vocab};
    int rc = alloc_all(&a);
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)T);
    if (rc == SF_OK && !buf) rc = sf_fail(SF_ERR_NOMEM, "analyze: out of memory");
    int64_t pass = 0;
    const int64_t n_pass = n_chunks * (1 + 2 * (int64_t)m->n_layer + n_attn);
    for (int64_t ch = 0; rc == SF_OK && ch < n_chunks; ch++) {
        memcpy(buf, tokens + ch * T, sizeof(int32_t) * (size_t)T);
        if (sf_model_add_bos(m) && sf_token_bos(m) >= 0) buf[0] = sf_token_bos(m);
        rc = run_chunk(c, &a, buf, &pass, n_pass, p);
        if (rc != SF_OK) rc = sf_fail_context(rc, "analyze chunk %lld", (long long)ch + 1);
    }
    if (rc == SF_OK) {
        const size_t L = (size_t)a.L;
        out->n_layer = a.L;
        out->n_tokens = a.n_tok;
        out->dep_block = to_float(a.dep_block, a.n_dep_block, 0, L * L, true, a.L);
        out->dep_ffn = to_float(a.dep_ffn, a.n_dep_ffn, 0, L * L, true, a.L);
        out->block_cos = to_float(a.block_cos, NULL, a.n_tok, L, false, a.L);
        out->attn_cos = to_float(a.attn_cos, NULL, a.n_tok, L, false, a.L);
        out->block_kl = to_float(a.block_kl, NULL, a.n_tok, L, false, a.L);
        out->attn_kl = to_float(a.attn_kl, NULL, a.n_tok, L, false, a.L);
        out->h_ratio = to_float(a.h_ratio, NULL, a.n_tok, L, false, a.L);
        out->ffn_h_ratio = to_float(a.ffn_h_ratio, NULL, a.n_tok, L, false, a.L);
        for (int l = 0; l < a.L; l++)
            if (m->layers[l].attn == SF_ATTN_NONE) out->attn_cos[l] = out->attn_kl[l] = NAN;
        if (!out->dep_block || !out->dep_ffn || !out->block_cos || !out->attn_cos || !out->block_kl ||
            !out->attn_kl || !out->h_ratio || !out->ffn_h_ratio) {
            sf_analysis_free(out);
            rc = sf_fail(SF_ERR_NOMEM, "analyze: out of memory");
        }
    }
    free(buf);
    free_acc(&a);
    sf_context_free(c);
    return rc;
}
