/* The attention kernel compiled with AVX2/FMA/F16C (see attention_impl.h). */
#if defined(__x86_64__)
#include <immintrin.h>
#define SF_ATTN_NAME sf_attention_head_avx2
#define SF_ATTN_TO_F16(x) ((sf_fp16)_cvtss_sh((x), 0)) /* round to nearest even, as vcvtps2ph $0 */
#include "model/attention_impl.h"
#endif
