/* The attention kernel compiled with AVX2/FMA/F16C (see attention_impl.h). */
#if defined(__x86_64__)
#define SF_ATTN_NAME sf_attention_head_avx2
#include "model/attention_impl.h"
#endif
