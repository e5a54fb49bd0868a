#include "model/ops.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "model/attention.h"
#include "tensor/types.h"
#include "tensor/fp16.h"

void sf_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    double sum = 0.0; /* ggml accumulates x*x (f32 products) in double */
    for (int i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    if (w)
        for (int i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
    else
        for (int i = 0; i < n; i++) y[i] = x[i] * scale;
}

void sf_rope_table(float *cs, int n_rot, int pos, float base, float freq_scale, const float *factors, float mscale) {
    /* ggml computes theta iteratively in f32: theta_{i+1} = theta_i * base^(-2/n_rot) */
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i = 0; i < n_rot / 2; i++) {
        const float ff = factors ? factors[i] : 1.0f;
        const float t = freq_scale * (theta / ff);
        cs[2 * i] = cosf(t) * mscale;
        cs[2 * i + 1] = sinf(t) * mscale;
        theta *= theta_scale;
    }
}

void sf_rope_apply(float *x, const float *cs, int n_rot, sf_rope_type type) {
    const int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        const float c = cs[2 * i], s = cs[2 * i + 1];
        float *a, *b;
        if (type == SF_ROPE_NEOX) { a = &x[i]; b = &x[i + half]; }
        else { a = &x[2 * i]; b = &x[2 * i + 1]; }
        const float x0 = *a, x1 = *b;
        /* ggml's rotate_pairs, as GCC contracts it (first product fused) */
        *a = fmaf(x0, c, -(x1 * s));
        *b = fmaf(x0, s, x1 * c);
    }
}

/* ggml evaluates GELU through a table indexed by the f16 bits of x (for
 * |x| < 10) holding f16(gelu(x)); the same table keeps us bit-compatible. */
static sf_fp16 g_gelu_table[1 << 16];
static pthread_once_t g_gelu_once = PTHREAD_ONCE_INIT;

static float gelu_tanh(float x) {
    const float sqrt_2_over_pi = 0.79788456080286535587989211986876f;
    const float coef_a = 0.044715f;
    /* as ggml_gelu_f32 compiles with contraction (gnu11): one fused a*x*x + 1 */
    return 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * x * fmaf(coef_a * x, x, 1.0f)));
}

static void gelu_table_init(void) {
    for (uint32_t i = 0; i < (1u << 16); i++) g_gelu_table[i] = sf_fp32_to_fp16(gelu_tanh(sf_fp16_to_fp32((sf_fp16)i)));
}

float sf_gate_act(float g, sf_ffn_act act) {
    if (act == SF_ACT_SILU) return g / (1.0f + expf(-g));
    return 0.5f * g * (1.0f + tanhf(0.7978845608f * (g + 0.044715f * g * g * g)));
}

void sf_glu(float *h, const float *g, const float *u, int i0, int i1, int n_row, sf_ffn_act act) {
    if (act == SF_ACT_SILU) {
        /* ggml_vec_swiglu_f32: x / (1 + exp(-x)) * u, with ggml's vector exp
         * over the row's whole 16-wide blocks and libm's expf for its tail */
#if defined(__x86_64__)
        if (strcmp(sf_cpu_isa(), "scalar") != 0) {
            sf_swiglu_avx2(h, g, u, i0, i1, n_row);
            return;
        }
#endif
        const int nv = n_row & ~15;
        for (int i = i0; i < i1; i++) {
            const float e = i < nv ? sf_ggml_expf(-g[i]) : expf(-g[i]);
            h[i] = (g[i] / (1.0f + e)) * u[i];
        }
        return;
    }
    pthread_once(&g_gelu_once, gelu_table_init);
    for (int i = i0; i < i1; i++) {
        const float x = g[i];
        float a;
        if (x <= -10.0f) a = 0.0f;
        else if (x >= 10.0f) a = x;
        else a = sf_fp16_to_fp32(g_gelu_table[sf_fp32_to_fp16(x)]);
        h[i] = a * u[i];
    }
}
