/* The low-rank neuron predictor: its fit (LAPACK) and its two small Q8_0
 * products (predictor.h). */
#include "sparse/predictor.h"

#include <cblas.h>
#include <lapacke.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/types.h"

size_t sf_predictor_zq_bytes(int rank) { return sf_type_row_bytes(SF_TYPE_Q8_0, rank); }

size_t sf_predictor_scratch_bytes(int64_t n_embd, int rank) {
    return sf_type_row_bytes(SF_TYPE_Q8_0, n_embd) + sizeof(float) * (size_t)rank + 64;
}

void sf_predictor_project(const sf_predictor *p, const float *x, void *scratch, void *zq) {
    const sf_type_traits *q8 = sf_type_fast(SF_TYPE_Q8_0);
    const size_t xq_bytes = sf_type_row_bytes(SF_TYPE_Q8_0, p->n_embd);
    uint8_t *xq = scratch;
    float *z = (float *)(xq + ((xq_bytes + 63) & ~(size_t)63));
    q8->quantize(x, xq, p->n_embd);
    const size_t row = sf_type_row_bytes(SF_TYPE_Q8_0, p->n_embd);
    for (int k = 0; k < p->rank; k++) z[k] = q8->vec_dot(p->n_embd, (const uint8_t *)p->a + (size_t)k * row, xq);
    q8->quantize(z, zq, p->rank);
}

void sf_predictor_scores(const sf_predictor *p, const void *zq, int64_t i0, int64_t i1, float *y) {
    const sf_vec_dot_fn dot = sf_type_fast(SF_TYPE_Q8_0)->vec_dot;
    const size_t row = sf_type_row_bytes(SF_TYPE_Q8_0, p->rank);
    for (int64_t i = i0; i < i1; i++) y[i - i0] = dot(p->rank, (const uint8_t *)p->b + (size_t)i * row, zq);
}

int sf_predictor_fit(const double *cov, int64_t n, const float *w, int64_t n_embd, int64_t n_ff, int rank, float *a,
                     float *b, double *explained) {
    const int64_t E = n_embd, F = n_ff, R = rank;
    if (n < 1 || R < 1 || R > E) return sf_fail(SF_ERR_ARG, "predictor rank %d for n_embd %lld", rank, (long long)E);
    double *L = malloc(sizeof(double) * (size_t)(E * E));
    double *M = malloc(sizeof(double) * (size_t)(F * E));
    double *G = malloc(sizeof(double) * (size_t)(E * E));
    double *V = malloc(sizeof(double) * (size_t)(E * R)), *At = malloc(sizeof(double) * (size_t)(E * R));
    double *Bd = malloc(sizeof(double) * (size_t)(F * R)), *ev = malloc(sizeof(double) * (size_t)E);
    lapack_int *supp = malloc(sizeof(lapack_int) * 2 * (size_t)E);
    int rc = L && M && G && V && At && Bd && ev && supp ? SF_OK : sf_fail(SF_ERR_NOMEM, "out of memory fitting");
    if (!rc) {
        /* Σ = cov / n from its upper triangle, with a ridge of 1e-6 of its
         * mean diagonal so that channels the text never moves stay invertible */
        double tr = 0;
        for (int64_t i = 0; i < E; i++) tr += cov[i * E + i] / (double)n;
        const double ridge = 1e-6 * tr / (double)E + 1e-30;
        for (int64_t i = 0; i < E; i++)
            for (int64_t j = 0; j < E; j++)
                L[i * E + j] = (i <= j ? cov[i * E + j] : cov[j * E + i]) / (double)n + (i == j ? ridge : 0.0);
        if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)E, L, (lapack_int)E) != 0)
            rc = sf_fail(SF_ERR_RANGE, "predictor fit: the input covariance is not positive definite");
    }
    if (!rc) {
        for (int64_t i = 0; i < F * E; i++) M[i] = w[i];
        /* M = W L, G = Mᵀ M */
        cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, (int)F, (int)E, 1.0, L, (int)E,
                    M, (int)E);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)E, (int)F, 1.0, M, (int)E, 0.0, G, (int)E);
        double tr = 0;
        for (int64_t i = 0; i < E; i++) tr += G[i * E + i];
        lapack_int found = 0;
        if (LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', (lapack_int)E, G, (lapack_int)E, 0, 0,
                           (lapack_int)(E - R + 1), (lapack_int)E, 0.0, &found, ev, V, (lapack_int)R, supp) != 0 ||
            found != R)
            rc = sf_fail(SF_ERR_RANGE, "predictor fit: the eigen-decomposition failed");
        if (!rc) {
            double kept = 0;
            for (int64_t k = 0; k < R; k++) kept += ev[k];
            *explained = tr > 0 ? kept / tr : 1.0;
        }
    }
    if (!rc) {
        /* Aᵀ = L⁻ᵀ V_r, B = M V_r; components stored largest first */
        memcpy(At, V, sizeof(double) * (size_t)(E * R));
        cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, (int)E, (int)R, 1.0, L, (int)E, At,
                    (int)R);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)F, (int)R, (int)E, 1.0, M, (int)E, V, (int)R, 0.0,
                    Bd, (int)R);
        for (int64_t k = 0; k < R; k++) {
            const int64_t src = R - 1 - k;
            for (int64_t j = 0; j < E; j++) a[k * E + j] = (float)At[j * R + src];
            for (int64_t i = 0; i < F; i++) b[i * R + k] = (float)Bd[i * R + src];
        }
    }
    free(L);
    free(M);
    free(G);
    free(V);
    free(At);
    free(Bd);
    free(ev);
    free(supp);
    return rc;
}
