/* Run-time dispatch hooks: each ISA file overrides entries of the "fast"
 * trait table (which starts as a copy of the scalar references) with the
 * kernels it has. types.c calls the installers the CPU supports, in order
 * avx2 then avx512, so a later ISA only overrides what it does better. */
#ifndef SF_TENSOR_SIMD_H
#define SF_TENSOR_SIMD_H

#include "tensor/types.h"

void sf_simd_avx2_install(sf_type_traits fast[SF_TYPE_COUNT]);   /* simd_avx2.c */
void sf_simd_avx512_install(sf_type_traits fast[SF_TYPE_COUNT]); /* simd_avx512.c */

#endif
