/* Healing fusion groups: statistics, ridge fit, folding (see heal.h). */
#include "fusion/heal.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "fusion/fuse.h"
#include "gguf/gguf.h"
#include "model/context.h"
#include "model/model.h"
#include "tensor/types.h"

sf_heal_params sf_heal_default_params(void) {
    sf_heal_params p = {.ridge = 1e-2f, .n_ctx = 512, .n_tokens = 2048};
    return p;
}

void sf_heal_fit_free(sf_heal_fit_result *r) {
    if (!r) return;
    for (int k = 0; r->A && k < r->n_groups; k++) free(r->A[k]);
    free(r->A);
    free(r->layer);
    free(r->err_before);
    free(r->err_after);
    memset(r, 0, sizeof *r);
}

typedef struct {
    int n_groups, E, T;
    const int *group_of_layer; /* [fused n_layer] group index or -1 */
    float *x_in;               /* [n_groups][T][E] stream entering each fused layer */
    float *y_f;                /* [n_groups][T][E] what each fused layer adds */
} capture_t;

static void on_fused(void *user, int layer, sf_stage stage, const float *x, int T) {
    capture_t *cap = user;
    const int k = cap->group_of_layer[layer];
    if (k < 0 || stage == SF_STAGE_AFTER_ATTN) return;
    const size_t n = (size_t)T * cap->E;
    float *xin = cap->x_in + (size_t)k * n, *yf = cap->y_f + (size_t)k * n;
    if (stage == SF_STAGE_INPUT) memcpy(xin, x, sizeof(float) * n);
    else
        for (size_t i = 0; i < n; i++) yf[i] = x[i] - xin[i];
}

/* G += Y_f^T Y_f, C += Y_s^T Y_f over T tokens (rows); also the error sums. */
static void accumulate(int E, int T, const float *yf, const float *ys, double *G, double *C, double *work,
                       double *err0, double *norm_s) {
    double *df = work, *ds = work + (size_t)T * E; /* [T][E] each */
    for (size_t i = 0; i < (size_t)T * E; i++) {
        df[i] = yf[i];
        ds[i] = ys[i];
        *err0 += (ds[i] - df[i]) * (ds[i] - df[i]);
        *norm_s += ds[i] * ds[i];
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, E, T, 1.0, df, E, df, E, 1.0, G, E);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, E, T, 1.0, ds, E, df, E, 1.0, C, E);
}

/* A = (C + lambda I)(G + lambda I)^-1 via (G + lambda I) A^T = C^T + lambda I. */
static int solve(int E, double ridge, double *G, const double *C, float *A) {
    double tr = 0;
    for (int i = 0; i < E; i++) tr += G[(size_t)i * E + i];
    const double lambda = ridge * tr / E;
    double *B = malloc(sizeof(double) * (size_t)E * E); /* [E][E] C^T + lambda I, then A^T */
    if (!B) return sf_fail(SF_ERR_NOMEM, "heal: out of memory");
    for (int i = 0; i < E; i++) {
        G[(size_t)i * E + i] += lambda;
        for (int j = 0; j < E; j++) B[(size_t)i * E + j] = C[(size_t)j * E + i] + (i == j ? lambda : 0.0);
    }
    const lapack_int info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', E, E, G, E, B, E);
    if (info != 0) {
        free(B);
        return sf_fail(SF_ERR_RANGE, "heal: the ridge system is not positive definite (LAPACK info %d)", (int)info);
    }
    for (int i = 0; i < E; i++)
        for (int j = 0; j < E; j++) A[(size_t)i * E + j] = (float)B[(size_t)j * E + i];
    free(B);
    return SF_OK;
}

/* sum_t ||A y_f - y_s||^2 = tr(A G A^T) - 2 tr(A C^T) + sum_t ||y_s||^2,
 * from the statistics alone (G as accumulated, before the solve). */
static double err_after_fit(int E, const float *A, const double *G, const double *C, double norm_s, double *work) {
    double *Ad = work, *AG = work + (size_t)E * E; /* [E][E] each */
    for (size_t i = 0; i < (size_t)E * E; i++) Ad[i] = A[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, E, E, E, 1.0, Ad, E, G, E, 0.0, AG, E);
    double quad = 0, cross = 0;
    for (size_t i = 0; i < (size_t)E * E; i++) {
        quad += AG[i] * Ad[i];
        cross += Ad[i] * C[i];
    }
    const double e = quad - 2 * cross + norm_s;
    return e > 0 ? e : 0;
}

int sf_heal_fit(const char *src_gguf, const char *fused_gguf, const sf_fuse_plan *plan, const int32_t *tokens,
                int64_t n_avail, const sf_heal_params *p, sf_heal_fit_result *out) {
    if (!src_gguf || !fused_gguf || !plan || !tokens || !p || !out) return sf_fail(SF_ERR_ARG, "heal: null argument");
    memset(out, 0, sizeof *out);
    if (plan->n_fuse < 1) return sf_fail(SF_ERR_ARG, "heal: the plan fuses nothing");
    if (plan->n_parallel > 0) return sf_fail(SF_ERR_UNSUPPORTED, "heal: plans with parallel blocks are not supported yet");
    if (!(p->ridge > 0)) return sf_fail(SF_ERR_ARG, "heal: ridge must be positive (got %g)", (double)p->ridge);
    const int64_t want = p->n_tokens < n_avail ? p->n_tokens : n_avail;
    const int T = (int)(want < p->n_ctx ? want : p->n_ctx);
    const int64_t n_chunks = T > 1 ? want / T : 0;
    if (n_chunks < 1) return sf_fail(SF_ERR_ARG, "heal: need at least 2 calibration tokens");

    int rc = SF_OK;
    sf_model *src = sf_model_load(src_gguf), *fused = src ? sf_model_load(fused_gguf) : NULL;
    if (!src || !fused) {
        sf_model_free(src);
        return sf_fail_context(SF_ERR_IO, "heal");
    }
    if (src->layers[0].attn_post_norm || src->layers[0].ffn_post_norm) {
        sf_model_free(src);
        sf_model_free(fused);
        return sf_fail(SF_ERR_UNSUPPORTED, "heal: models with post-norms (%s) run fusion groups as parallel blocks, "
                                           "which healing does not support", src->arch_name);
    }
    const int E = src->n_embd, G_n = plan->n_fuse;
    int *new_index = malloc(sizeof(int) * (size_t)plan->n_layer);
    int *group_of_fused = malloc(sizeof(int) * (size_t)fused->n_layer);
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = cp.n_batch = T;
    cp.n_threads = p->n_threads;
    sf_context *cs = sf_context_new(src, &cp), *cf = cs ? sf_context_new(fused, &cp) : NULL;
    capture_t cap = {.n_groups = G_n, .E = E, .T = T, .group_of_layer = group_of_fused};
    cap.x_in = malloc(sizeof(float) * (size_t)G_n * T * E);
    cap.y_f = malloc(sizeof(float) * (size_t)G_n * T * E);
    float *y_s = malloc(sizeof(float) * (size_t)T * E);              /* [T][E] */
    double *Gm = calloc((size_t)G_n * E * E, sizeof(double));       /* [groups][E][E] */
    double *Cm = calloc((size_t)G_n * E * E, sizeof(double));       /* [groups][E][E] */
    /* [2][T][E] for accumulate, [3][E][E] for the solve and the error after */
    const size_t work_n = 2 * (size_t)T * E > 3 * (size_t)E * E ? 2 * (size_t)T * E : 3 * (size_t)E * E;
    double *work = malloc(sizeof(double) * work_n);
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)T);
    out->n_groups = G_n;
    out->n_embd = E;
    out->layer = calloc((size_t)G_n, sizeof(int));
    out->A = calloc((size_t)G_n, sizeof(float *));
    out->err_before = calloc((size_t)G_n, sizeof(double));
    out->err_after = calloc((size_t)G_n, sizeof(double));
    double *norm_s = calloc((size_t)G_n, sizeof(double));
    if (!new_index || !group_of_fused || !cs || !cf || !cap.x_in || !cap.y_f || !y_s || !Gm || !Cm || !work ||
        !buf || !out->layer || !out->A || !out->err_before || !out->err_after || !norm_s)
        rc = cs && cf ? sf_fail(SF_ERR_NOMEM, "heal: out of memory (%d groups x %d tokens)", G_n, T)
                      : SF_ERR_NOMEM;
    if (rc == SF_OK) {
        sf_fuse_plan_map(plan, new_index, NULL);
        for (int l = 0; l < fused->n_layer; l++) group_of_fused[l] = -1;
        for (int k = 0; k < G_n; k++) {
            out->layer[k] = new_index[plan->fuse[k].first];
            group_of_fused[out->layer[k]] = k;
        }
    }
    for (int64_t ch = 0; rc == SF_OK && ch < n_chunks; ch++) {
        memcpy(buf, tokens + ch * T, sizeof(int32_t) * (size_t)T);
        if (sf_model_add_bos(src) && sf_token_bos(src) >= 0) buf[0] = sf_token_bos(src);
        sf_run_plan fc = {.on_stage = on_fused, .user = &cap};
        rc = sf_kv_truncate(cf, 0);
        if (rc == SF_OK) rc = sf_forward(cf, buf, T, T, &fc);
        for (int k = 0; rc == SF_OK && k < G_n; k++) {
            const float *xin = cap.x_in + (size_t)k * T * E, *yf = cap.y_f + (size_t)k * T * E;
            sf_run_plan sc = {.start_layer = plan->fuse[k].first, .x_start = xin,
                                 .end_layer = plan->fuse[k].last + 1, .drop_attn = plan->drop_attn};
            rc = sf_kv_truncate(cs, 0);
            if (rc == SF_OK) rc = sf_forward(cs, buf, T, T, &sc);
            if (rc != SF_OK) break;
            for (size_t i = 0; i < (size_t)T * E; i++) y_s[i] = cs->x[i] - xin[i];
            accumulate(E, T, yf, y_s, Gm + (size_t)k * E * E, Cm + (size_t)k * E * E, work, &out->err_before[k],
                       &norm_s[k]);
        }
        if (p->progress) p->progress("healing", ch + 1, n_chunks, p->user);
    }
    for (int k = 0; rc == SF_OK && k < G_n; k++) {
        out->A[k] = malloc(sizeof(float) * (size_t)E * E);
        if (!out->A[k]) {
            rc = sf_fail(SF_ERR_NOMEM, "heal: out of memory");
            break;
        }
        double *Gk = Gm + (size_t)k * E * E, *Gcopy = work + 2 * (size_t)E * E; /* solve() overwrites G */
        memcpy(Gcopy, Gk, sizeof(double) * (size_t)E * E);
        rc = solve(E, p->ridge, Gk, Cm + (size_t)k * E * E, out->A[k]);
        if (rc == SF_OK) out->err_after[k] = err_after_fit(E, out->A[k], Gcopy, Cm + (size_t)k * E * E, norm_s[k], work);
        out->err_before[k] /= norm_s[k] > 0 ? norm_s[k] : 1;
        out->err_after[k] /= norm_s[k] > 0 ? norm_s[k] : 1;
    }
    out->n_tokens = n_chunks * T;
    free(new_index);
    free(group_of_fused);
    free(cap.x_in);
    free(cap.y_f);
    free(y_s);
    free(Gm);
    free(Cm);
    free(work);
    free(buf);
    free(norm_s);
    sf_context_free(cs);
    sf_context_free(cf);
    sf_model_free(src);
    sf_model_free(fused);
    if (rc != SF_OK) sf_heal_fit_free(out);
    return rc;
}

int sf_heal_apply(const char *fused_gguf, const sf_heal_fit_result *fit, float ridge, const char *out_gguf) {
    sf_gguf *g = NULL;
    int rc = sf_gguf_open(fused_gguf, &g);
    if (rc) return rc;
    sf_gguf_writer *w = sf_gguf_writer_new();
    void **owned = calloc((size_t)fit->n_groups, sizeof(void *)); /* new ffn_down data per group */
    if (!w || !owned) rc = sf_fail(SF_ERR_NOMEM, "heal: out of memory");
    for (int64_t i = 0; rc == SF_OK && i < sf_gguf_n_kv(g); i++) rc = sf_gguf_writer_copy_kv(w, g, i);
    if (rc == SF_OK) rc = sf_gguf_writer_set_f32(w, "sparsefuse.heal.ridge", ridge);
    if (rc == SF_OK) rc = sf_gguf_writer_set_u64(w, "sparsefuse.heal.calibration_tokens", (uint64_t)fit->n_tokens);
    const int E = fit->n_embd;
    for (int64_t ti = 0; rc == SF_OK && ti < sf_gguf_n_tensors(g); ti++) {
        const sf_gguf_tensor *t = sf_gguf_tensor_at(g, ti);
        const void *data = t->data;
        int k = -1;
        for (int q = 0; q < fit->n_groups; q++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.ffn_down.weight", fit->layer[q]);
            if (!strcmp(t->name, name)) k = q;
        }
        if (k >= 0) {
            const sf_type_traits *tr = sf_type_ref(t->type);
            const int64_t H = t->ne[0];
            const size_t row_bytes = sf_type_row_bytes(t->type, H);
            float *W = malloc(sizeof(float) * (size_t)E * H), *W2 = malloc(sizeof(float) * (size_t)E * H);
            owned[k] = malloc(t->nbytes);
            if (!W || !W2 || !owned[k] || !tr->quantize || t->ne[1] != E) {
                rc = !tr->quantize ? sf_fail(SF_ERR_UNSUPPORTED, "heal: cannot re-quantize %s (%s)", t->name, tr->name)
                                   : sf_fail(SF_ERR_NOMEM, "heal: out of memory for %s", t->name);
            } else {
                for (int r = 0; r < E; r++) tr->dequantize((const uint8_t *)t->data + (size_t)r * row_bytes, W + (size_t)r * H, H);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, E, (int)H, E, 1.0f, fit->A[k], E, W, (int)H,
                            0.0f, W2, (int)H);
                for (int r = 0; r < E; r++) tr->quantize(W2 + (size_t)r * H, (uint8_t *)owned[k] + (size_t)r * row_bytes, H);
                sf_log_info("heal: %s re-quantized to %s after the correction (from dequantized values)", t->name,
                            tr->name);
                data = owned[k];
            }
            free(W);
            free(W2);
        }
        if (rc == SF_OK) rc = sf_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, data, t->nbytes);
    }
    if (rc == SF_OK) rc = sf_gguf_writer_finish(w, out_gguf);
    sf_gguf_writer_free(w);
    for (int k = 0; owned && k < fit->n_groups; k++) free(owned[k]);
    free(owned);
    sf_gguf_close(g);
    return rc;
}
