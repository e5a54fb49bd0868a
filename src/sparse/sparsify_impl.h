/* The pieces of sparsify that its steps share: what is built per layer, the
 * sorted score samples, per-layer levels turned into thresholds, and the
 * side-car writer. auto_level.c searches the levels for auto:KLD with them. */
#ifndef SF_SPARSE_SPARSIFY_IMPL_H
#define SF_SPARSE_SPARSIFY_IMPL_H

#include "model/context.h"
#include "sparse/reservoir.h"
#include "sparse/sparse.h"

typedef struct {
    void *data;
    size_t nbytes;
    sf_type type;
    int64_t ne0, ne1; /* ne1 rows of ne0 values */
} owned_tensor;

typedef struct {
    owned_tensor gate_t, up_t, down_t;
    float *in_scale, *hidden_scale;  /* WINA: [n_embd], [n_ff] */
    owned_tensor pred_a, pred_b;     /* predictor: Q8_0 {n_embd, rank}, {rank, n_ff} */
    owned_tensor q_t, k_t, v_t, o_t; /* --attention: transposed Wq, Wk, Wv, Wo */
    float explained, recall, mass;   /* predictor, on the calibration text */
    float t_pred;                    /* predictor: its threshold on |act(ĝ_i)| */
    float *down_b;                   /* --correct-down: [n_embd] bias of the sparse down, or NULL */
} layer_out;

typedef struct {
    sf_model *m;
    const sf_sparsify_params *p;
    const layer_out *lo;  /* [n_layer] */
    sf_reservoir *res;    /* [n_layer][SF_SITES], sorted; v NULL where the method has no such site */
    double kld_budget;    /* auto:KLD: the budget (0: uniform levels) */
    double kld, same_top; /* auto:KLD: measured for the levels chosen (written when budget > 0) */
} sparsify_state;

/* Calibration chunk ch of n_ctx tokens into buf (BOS first where the model
 * adds one), and how many whole chunks the calibration has. */
void sparsify_chunk(const sf_model *m, const int32_t *tokens, int n_ctx, int64_t ch, int32_t *buf);
int64_t sparsify_n_chunks(const sf_model *m, const sf_sparsify_params *p, int64_t n_avail);

/* The dense model over every calibration chunk under plan (its hooks see
 * the activations); progress as `what`, passes [pass, pass + 1) of n_pass. */
int sparsify_dense_pass(sf_model *m, const sf_sparsify_params *p, const int32_t *tokens, int64_t n_avail,
                        const sf_run_plan *plan, const char *what, int pass, int n_pass);

/* Whether the method calibrates site s (only those get a sample). */
bool sparsify_site_used(const sf_sparsify_params *p, sf_sparse_site s);

/* thr, lvl [SF_SITES][n_layer]: every used site of layer l at level
 * layer_level[l] (0: dense), from the samples. */
void sparsify_rules(const sparsify_state *st, const float *layer_level, float *thr, float *lvl);

/* The side-car with these rules (tensors only for the sparse sites). */
int sparsify_write(const sparsify_state *st, const float *thr, const float *lvl, const char *path, uint64_t *bytes);

/* auto:KLD: the per-layer levels, level[n_layer], of the sparsest
 * allocation found whose mean KLD against the dense model on the first
 * calibration chunks stays within st->kld_budget (auto_level.c); st->kld
 * and st->same_top are set to what was measured for it. */
int sparsify_auto_levels(sparsify_state *st, const int32_t *tokens, int64_t n_avail, const char *out_path,
                         float *level);

/* --correct-down: for every layer whose hidden site is sparse under thr/lvl,
 * the bias lo[l].down_b and (ls) the refitted transposed down in
 * lo[l].down_t, from dense passes over the calibration chunks
 * (correct_down.c). */
int sparsify_correct_down(const sparsify_state *st, const int32_t *tokens, int64_t n_avail, const float *thr,
                          const float *lvl, layer_out *lo);

#endif
