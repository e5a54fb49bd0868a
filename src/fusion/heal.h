/* Healing a fused model: a closed-form linear correction of each fusion
 * group's output, fitted on calibration text and folded into the group's
 * ffn_down (FFN Fusion proposal (a), ../shared/docs/reference/ffn-fusion.md
 * section 8.2; not from the paper).
 *
 * For group g, on calibration tokens, with x the residual stream entering
 * the fused layer *in the fused model*:
 *   y_f = FFN*(norm(x))                  what the fused layer adds,
 *   y_s = (members run one after another from x, attention removed) - x
 *                                        what the unfused run would add;
 * A = argmin_A sum_t ||A y_f - y_s||^2 + lambda ||A - I||_F^2
 *   = (C + lambda I) (G + lambda I)^-1,  C = sum y_s y_f^T, G = sum y_f y_f^T,
 * with lambda = ridge * trace(G) / n_embd: ridge regression shrunk towards the
 * identity (no correction) rather than towards zero. Solved with LAPACK's
 * Cholesky (dposv). Folded exactly as ffn_down' = A ffn_down (dequantized,
 * multiplied, re-quantized to the tensor's type: the log says so). */
#ifndef SF_FUSION_HEAL_H
#define SF_FUSION_HEAL_H

#include <stdint.h>

#include "sparsefuse.h"
#include "sparsefuse_fusion.h"

typedef struct {
    float ridge;          /* default 1e-2 */
    int n_ctx;            /* calibration chunk length (default 512) */
    int64_t n_tokens;     /* calibration tokens (default 2048), whole chunks */
    int n_threads;        /* 0: physical cores */
    sf_progress_fn progress; /* ("healing", chunk, chunks) */
    void *user;
} sf_heal_params;

sf_heal_params sf_heal_default_params(void);

typedef struct {
    int n_groups;
    int n_embd;
    int *layer;           /* [n_groups] the fused layer of each group (output numbering) */
    float **A;            /* [n_groups][n_embd * n_embd] row-major corrections */
    double *err_before;   /* [n_groups] sum ||y_s - y_f||^2 / sum ||y_s||^2 on the calibration tokens */
    double *err_after;    /* [n_groups] the same with A applied */
    int64_t n_tokens;
} sf_heal_fit_result;

/* Fits the corrections for the fusion groups of `plan` (applied to src_gguf,
 * giving fused_gguf) on tokens (from the source model's tokenizer). */
int sf_heal_fit(const char *src_gguf, const char *fused_gguf, const sf_fuse_plan *plan, const int32_t *tokens,
                int64_t n_avail, const sf_heal_params *p, sf_heal_fit_result *out);
void sf_heal_fit_free(sf_heal_fit_result *r);

/* Writes fused_gguf to out_gguf with each group's ffn_down replaced by
 * A ffn_down (atomically), recording sparsefuse.heal.* metadata. */
int sf_heal_apply(const char *fused_gguf, const sf_heal_fit_result *fit, float ridge, const char *out_gguf);

#endif
