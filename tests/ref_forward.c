#include "ref_forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/fp16.h"

typedef struct {
    int n;         /* entries */
    double *k, *v; /* [n_tok][n_head_kv * head_dim] */
} ref_kv;

static void ref_rmsnorm(double *y, const double *x, const float *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    const double r = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * r * (w ? w[i] : 1.0f);
}

/* y[n_out] = W x, W an F32 tensor of rows of n_in */
static void ref_matvec(double *y, const sf_gguf_tensor *w, const double *x) {
    const float *W = w->data;
    const int64_t n_in = w->ne[0], n_out = w->ne[1];
    for (int64_t o = 0; o < n_out; o++) {
        double s = 0;
        for (int64_t i = 0; i < n_in; i++) s += (double)W[o * n_in + i] * x[i];
        y[o] = s;
    }
}

/* llama's RoPE: pairs (2i, 2i+1) rotated by pos * base^(-2i/n_rot) / factor_i */
static void ref_rope(const sf_model *m, double *x, int pos, const sf_layer *L) {
    for (int i = 0; i < m->n_rot / 2; i++) {
        const double ff = m->rope_freq_factors ? m->rope_freq_factors[i] : 1.0;
        const double th = m->rope_freq_scale * pos * pow(L->rope_base, -2.0 * i / m->n_rot) / ff;
        const double a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * cos(th) - b * sin(th);
        x[2 * i + 1] = a * sin(th) + b * cos(th);
    }
}

static double f16_round(double x) { return sf_fp16_to_fp32(sf_fp32_to_fp16((float)x)); }

typedef struct {
    double *x, *x0, *h, *o, *ff_a, *ff_b, *q, *att, *k, *v, *sc;
} ref_buf;

/* Attention of token t at layer L: its K/V appended to the layer's list,
 * then (unless kv_only) x += Wo · softmax(q·K) V over the list. */
static void ref_attention(const ref_spec *s, const sf_layer *L, int t, ref_kv *c, ref_buf *b, bool kv_only) {
    const sf_model *m = s->m;
    const int E = m->n_embd, hd = m->head_dim_k;
    ref_rmsnorm(b->h, b->x, L->attn_norm->data, E, m->norm_eps);
    ref_matvec(b->q, L->wq, b->h);
    ref_matvec(b->k, L->wk, b->h);
    ref_matvec(b->v, L->wv, b->h);
    for (int hh = 0; hh < L->n_head; hh++) ref_rope(m, b->q + hh * hd, t, L);
    for (int hh = 0; hh < L->n_head_kv; hh++) ref_rope(m, b->k + hh * hd, t, L);
    /* this token's entry, stored as the cache stores it (f16) */
    const size_t row = (size_t)L->n_head_kv * hd;
    for (size_t i = 0; i < row; i++) {
        c->k[c->n * row + i] = f16_round(b->k[i]);
        c->v[c->n * row + i] = f16_round(b->v[i]);
    }
    c->n++;
    if (kv_only) return;
    for (int i = 0; i < L->n_head * hd; i++) b->q[i] = f16_round(b->q[i]); /* as ggml's VEC path reads it */
    for (int hh = 0; hh < L->n_head; hh++) {
        const int kh = hh / (L->n_head / L->n_head_kv);
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < c->n; j++) {
            double d = 0;
            for (int i = 0; i < hd; i++) d += b->q[hh * hd + i] * c->k[j * row + kh * hd + i];
            b->sc[j] = d * m->attn_scale;
            mx = b->sc[j] > mx ? b->sc[j] : mx;
        }
        for (int j = 0; j < c->n; j++) sum += b->sc[j] = exp(b->sc[j] - mx);
        for (int i = 0; i < hd; i++) {
            double a = 0;
            for (int j = 0; j < c->n; j++) a += b->sc[j] * c->v[j * row + kh * hd + i];
            b->att[hh * hd + i] = a / sum;
        }
    }
    ref_matvec(b->o, L->wo, b->att);
    for (int e = 0; e < E; e++) b->x[e] += b->o[e];
}

static void ref_ffn(const ref_spec *s, const sf_layer *L, ref_buf *b) {
    const sf_model *m = s->m;
    const int E = m->n_embd;
    ref_rmsnorm(b->h, b->x, L->ffn_norm->data, E, m->norm_eps);
    ref_matvec(b->ff_a, L->ffn_gate, b->h);
    ref_matvec(b->ff_b, L->ffn_up, b->h);
    for (int i = 0; i < L->n_ff; i++) b->ff_a[i] = b->ff_a[i] / (1.0 + exp(-b->ff_a[i])) * b->ff_b[i];
    ref_matvec(b->o, L->ffn_down, b->ff_a);
    for (int e = 0; e < E; e++) b->x[e] += b->o[e];
}

/* One token through the model; logits[n_vocab]. */
static void ref_token(const ref_spec *s, int t, ref_kv *kv, ref_buf *b, double *logits) {
    const sf_model *m = s->m;
    const int E = m->n_embd, N = s->n_tok;
    const float *emb = (const float *)m->token_embd->data + (size_t)s->tok[t] * E;
    for (int e = 0; e < E; e++) b->x[e] = emb[e];
    for (int l = 0; l < m->n_layer; l++) {
        const sf_layer *L = &m->layers[l];
        const bool routed = s->routed && s->routed[l];
        double r = 1.0;
        if (routed) { /* the router decides the whole block */
            double ss = 0, dot = 0;
            for (int e = 0; e < E; e++) {
                ss += b->x[e] * b->x[e];
                dot += (double)s->w[l][e] * b->x[e];
            }
            r = dot / sqrt(ss / E + m->norm_eps) + s->bias[l];
            if (s->score) s->score[l * N + t] = r;
            s->skip_attn[l * N + t] = s->skip_ffn[l * N + t] = !(r >= s->thr[l]);
            memcpy(b->x0, b->x, sizeof(double) * E);
        }
        if (!s->skip_attn[l * N + t]) ref_attention(s, L, t, &kv[l], b, false);
        else if (routed && s->kv_preserve) ref_attention(s, L, t, &kv[l], b, true);
        if (!s->skip_ffn[l * N + t]) ref_ffn(s, L, b);
        if (routed && s->scale && !s->skip_ffn[l * N + t])
            for (int e = 0; e < E; e++) b->x[e] = b->x0[e] + r * (b->x[e] - b->x0[e]);
    }
    ref_rmsnorm(b->h, b->x, m->output_norm->data, E, m->norm_eps);
    ref_matvec(logits, m->output, b->h);
}

double *ref_logits(const ref_spec *s) {
    const sf_model *m = s->m;
    const int L = m->n_layer, N = s->n_tok, hd = m->head_dim_k;
    ref_kv *kv = calloc((size_t)L, sizeof *kv);
    for (int l = 0; l < L; l++) {
        kv[l].k = calloc((size_t)N * m->n_head_kv_max * hd, sizeof(double));
        kv[l].v = calloc((size_t)N * m->n_head_kv_max * m->head_dim_v, sizeof(double));
    }
    const size_t E = (size_t)m->n_embd;
    ref_buf b = {calloc(E, 8), calloc(E, 8), calloc(E, 8), calloc(E, 8), calloc(m->n_ff_max, 8),
                 calloc(m->n_ff_max, 8), calloc((size_t)m->n_head_max * hd, 8), calloc((size_t)m->n_head_max * hd, 8),
                 calloc((size_t)m->n_head_kv_max * hd, 8), calloc((size_t)m->n_head_kv_max * hd, 8),
                 calloc((size_t)N, 8)};
    double *out = malloc(sizeof(double) * N * m->n_vocab);
    for (int t = 0; t < N; t++) ref_token(s, t, kv, &b, out + (size_t)t * m->n_vocab);
    for (int l = 0; l < L; l++) {
        free(kv[l].k);
        free(kv[l].v);
    }
    free(kv);
    double *bufs[] = {b.x, b.x0, b.h, b.o, b.ff_a, b.ff_b, b.q, b.att, b.k, b.v, b.sc};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    return out;
}

double ref_nmse(const float *a, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return num / den;
}
