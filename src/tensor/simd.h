/* Run-time dispatch hooks: each ISA file overrides entries of the "fast"
 * trait table (which starts as a copy of the scalar references) with the
 * kernels it has. types.c calls the installers the CPU supports, in order
 * avx2 then avx512, so a later ISA only overrides what it does better. */
#ifndef SF_TENSOR_SIMD_H
#define SF_TENSOR_SIMD_H

#include <stdbool.h>

#include "tensor/types.h"

void sf_simd_avx2_install(sf_type_traits fast[SF_TYPE_COUNT]);   /* simd_avx2.c */
void sf_simd_avx512_install(sf_type_traits fast[SF_TYPE_COUNT]); /* simd_avx512.c */
/* The fast mode on AVX-512 CPUs: the 512-bit vec_dots of the types whose
 * results cannot match llama.cpp's anyway (Q4_0: llama.cpp repacks it into
 * 8-row blocks with another order), marking them ggml_order = false */
void sf_simd_avx512_install_unordered(sf_type_traits fast[SF_TYPE_COUNT]);
/* 2x4 legacy-quant kernels (same results as the AVX2 vec_dot): maddubs on
 * 256-bit registers (simd_gemm_avx2.c), or both rows in one 512-bit register
 * with vpdpbusd on AVX-512 CPUs (simd_gemm_legacy_avx512.c) */
void sf_avx2_gemm_2x4_install(sf_type_traits fast[SF_TYPE_COUNT]);
void sf_avx512_gemm_2x4_install(sf_type_traits fast[SF_TYPE_COUNT]);
/* The K-quant prompt kernels for Q2_K..Q6_K: the 2x4 one (kq_gemm_impl.h)
 * with vpdpwssd where the CPU has AVX512-VNNI, else AVX2 (simd_kq_gemm_*.c);
 * on AVX-512 CPUs also the 16-row one (simd_kq16_avx512.c) */
/* The fast-mode legacy prompt kernel: 16 interleaved rows x 8 tokens with
 * vpdpbusd (legacy_tile.h; simd_gemm_legacy_avx512.c) */
void sf_avx512_lg16_install(sf_type_traits fast[SF_TYPE_COUNT]);
void sf_kq_gemm_install(sf_type_traits fast[SF_TYPE_COUNT], bool vnni);
/* axpy_rows (sparse FFN) for every type with a reference one: AVX2
 * (simd_axpy_avx2.c), and 512-bit (simd_axpy_avx512.c), installed wherever
 * the CPU has AVX-512 (no ggml order to keep; same precision contract) */
void sf_axpy_avx2_install(sf_type_traits fast[SF_TYPE_COUNT]);
void sf_axpy_avx512_install(sf_type_traits fast[SF_TYPE_COUNT]);

#endif
