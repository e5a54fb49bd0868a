#include "model/attention.h"
#include "tensor/types.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

/* f16 -> f32 by table (as ggml does): the inner loops convert every K and V
 * element they touch. */
float sf_attn_f16_table[1 << 16];
static pthread_once_t g_table_once = PTHREAD_ONCE_INIT;
static void table_init(void) {
    for (uint32_t i = 0; i < (1u << 16); i++) sf_attn_f16_table[i] = sf_fp16_to_fp32((sf_fp16)i);
}


float sf_ggml_expf(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         fmaf(0x1.ffffecp-1f, b, 1.0f));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    return ldexpf(j, (int)n); /* _mm512_scalef_ps(j, n): n is integral here */
}


void sf_attn_plan(sf_attn_args *a, int n_tokens, int p_last, int n_threads) {
    /* llama.cpp pads the KV length it attends over to a multiple of 256 */
    const int n_kv = ((p_last + 1 + 255) / 256) * 256;
    a->path = n_tokens >= 64 ? SF_ATTN_TILED : SF_ATTN_VEC;
    a->split_chunk = (n_tokens == 1 && n_kv >= 512) ? (n_kv + n_threads - 1) / n_threads : 0;
}

#define SF_ATTN_TO_F16(x) sf_fp32_to_fp16(x)
#include "model/attention_impl.h"

void sf_attention_head_avx2(const sf_attn_args *a, const float *q, int kh, int lo, int p, float *work, float *out);
void sf_attention_tiled_avx2(const sf_attn_args *a, const sf_attn_item *it, float *work);

static bool use_avx2(const sf_attn_args *a) {
#if defined(__x86_64__)
    return strcmp(sf_cpu_isa(), "scalar") != 0 && a->head_dim_k % 8 == 0 && a->head_dim_v % 8 == 0;
#else
    (void)a;
    return false;
#endif
}

void sf_attention_head(const sf_attn_args *a, const float *q, int kh, int lo, int p, float *work, float *out) {
    pthread_once(&g_table_once, table_init);
    if (use_avx2(a)) sf_attention_head_avx2(a, q, kh, lo, p, work, out);
    else sf_attention_head_generic(a, q, kh, lo, p, work, out);
}

void sf_attention_tiled(const sf_attn_args *a, const sf_attn_item *it, float *work) {
    pthread_once(&g_table_once, table_init);
    if (use_avx2(a)) sf_attention_tiled_avx2(a, it, work);
    else sf_attention_tiled_generic(a, it, work);
}
