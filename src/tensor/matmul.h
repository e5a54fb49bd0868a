/* Quantized matrix products over GGUF weights: y[t][r] = W_r · x_t for a
 * slice of weight rows, every token t. The activations x are already
 * quantized to the weight type's vec_dot_type (one row per token). Threads
 * call this with disjoint row slices. */
#ifndef SF_TENSOR_MATMUL_H
#define SF_TENSOR_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/types.h"

typedef struct {
    const void *data;   /* weight rows: [n_out][row_bytes] */
    sf_type type;
    int64_t n_in, n_out;
    int ggml_batch;     /* batch size llama.cpp would run this product with
                         * (selects its kernel, tensor/ggml_batch.h); 0: T */
    int ggml_first;     /* our token index of llama.cpp's row 0 of that batch */
} sf_matrix;

/* Rows [r0, r1) of y (y[t * y_stride + r], f32) for tokens 0..T-1.
 * x: T rows of quantized activations, x_stride bytes apart.
 * accumulate: y += W·x instead of y = W·x. */
void sf_matmul_rows(const sf_matrix *w, const void *x, size_t x_stride, int T, float *y, int64_t y_stride,
                    bool accumulate, int64_t r0, int64_t r1);

/* The dot product sf_matmul_rows computes one token's rows with at T = 1,
 * so a subset of rows taken through it equals those rows of the product. */
sf_vec_dot_fn sf_matmul_gemv_dot(const sf_matrix *w);

#endif
