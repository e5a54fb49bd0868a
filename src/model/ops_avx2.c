/* AVX2 SwiGLU: the same operations as sf_glu's SiLU branch, 8 lanes at a time
 * (bit-identical; tests/test_ops.c). */
#if defined(__x86_64__)
#include <math.h>

#include "model/expf_avx2.h"
#include "model/attention.h"
#include "model/ops.h"

void sf_swiglu_avx2(float *h, const float *g, const float *u, int i0, int i1, int n_row) {
    const int nv = n_row & ~15; /* ggml: vector exp on whole 16-blocks, libm expf on the tail */
    int i = i0;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= i1 && i + 8 <= nv; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = sf_v_expf(_mm256_sub_ps(_mm256_setzero_ps(), x));
        _mm256_storeu_ps(h + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    for (; i < i1; i++) {
        const float e = i < nv ? sf_ggml_expf(-g[i]) : expf(-g[i]);
        h[i] = (g[i] / (1.0f + e)) * u[i];
    }
}
#endif
