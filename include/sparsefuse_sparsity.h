/* sparsefuse contextual FFN sparsity (TEAL, CATS, WINA, a low-rank
 * predictor): per token, most FFN
 * neurons (and, for TEAL/WINA, most FFN input channels) are skipped by
 * calibrated magnitude thresholds; the matrices the skipped channels index
 * are stored transposed in a side-car GGUF so a skipped channel is a row not
 * read. See docs/sparsity.md. */
#ifndef SPARSEFUSE_SPARSITY_H
#define SPARSEFUSE_SPARSITY_H

#include <stdbool.h>
#include <stdint.h>

#include "sparsefuse.h"

/* How channels are chosen (all per layer, thresholds calibrated offline):
 *  - TEAL: |x_j| > t on the FFN input (gate/up read only the active input
 *    channels) and |h_i| > t on the hidden activations (down reads only the
 *    active neurons);
 *  - CATS: the gate runs dense, neuron i is active where |act(gate_i)| > t;
 *    up and down read only the active neurons;
 *  - WINA: as TEAL on |x_j| * ||W[:, j]|| (the column norm of the matrix
 *    the channel feeds);
 *  - predictor (Deja Vu, NimbleEdge): a rank-r estimate of the gate from
 *    x̃ (fitted by least squares on the calibration text) picks the neurons,
 *    |act(ĝ_i)| > t_p; gate, up and down read only those (optionally the
 *    exact gate of the picked ones then applies CATS's rule). */
typedef enum { SF_SPARSE_TEAL, SF_SPARSE_CATS, SF_SPARSE_WINA, SF_SPARSE_PREDICTOR, SF_SPARSE_METHODS } sf_sparse_method;

const char *sf_sparse_method_name(sf_sparse_method m); /* "teal", "cats", "wina", "predictor" */
/* SF_OK and *out, or SF_ERR_ARG naming the accepted methods. */
int sf_sparse_method_parse(const char *name, sf_sparse_method *out);

/* ggml type id of a type name ("q8_0", "Q4_K", case-insensitive); -1 if none. */
int sf_sparse_type_parse(const char *name);

/* sparsify --correct-down (docs/sparsity.md): none; the dropped neurons' mean
 * contribution W_d E[h ⊙ ¬m] as a bias; or a least-squares refit of down for
 * the masked activations, with that bias. */
typedef enum { SF_CORRECT_NONE, SF_CORRECT_MEAN, SF_CORRECT_LS } sf_sparse_correction;

typedef struct {
    sf_sparse_method method;
    float sparsity;       /* target fraction of skipped channels per site, [0, 1) */
    float kld_budget;     /* > 0: auto:KLD, per-layer levels instead of `sparsity`: the sparsest
                           * allocation found whose mean KL divergence against the dense model on the
                           * first auto_chunks calibration chunks stays within this (not the predictor) */
    int auto_chunks;      /* auto:KLD: chunks of n_ctx the KLD is measured on, scored half (default 2) */
    sf_sparse_correction correct_down; /* the down correction for dropped neurons (default none) */
    int n_ctx;            /* tokens per calibration chunk (default 512) */
    int64_t n_tokens;     /* calibration tokens, whole chunks (default 8192) */
    int n_threads;        /* 0: physical cores */
    int wt_type;          /* ggml type of the transposed matrices; -1: chosen per tensor (docs/sparsity.md) */
    bool attention;       /* TEAL: also the attention's input (q, k, v) and output (Wo) channels */
    int rank;             /* predictor: rank, a multiple of 32 up to n_embd (default 64) */
    float pred_keep;      /* predictor: fraction of neurons it passes on, in (1 - sparsity, 1]: the
                           * exact gate of those then keeps the ones above CATS's threshold (predict,
                           * then verify); 0 (default): 1 - sparsity, the predicted set is final */
    sf_progress_fn progress; /* what = "calibrate" (passes), "transpose" (tensors), "auto" (KLD runs)
                              * or "correct" (the down correction's passes) */
    void *user;
} sf_sparsify_params;

sf_sparsify_params sf_sparsify_default_params(void);

/* What sf_sparsify measured and wrote. */
typedef struct {
    int64_t n_tokens;           /* calibration tokens used */
    double level_mean;          /* mean calibrated sparsity over the method's sites of every layer */
    double kld, same_top;       /* auto:KLD: mean KLD and same-top fraction measured for the levels chosen */
    double transpose_nmse;      /* NMSE of the re-quantized transposed weights vs the originals */
    uint64_t side_bytes;        /* tensor bytes written */
    /* predictor only (0 otherwise), means over the layers, on the calibration text: */
    double pred_explained; /* fraction of the gate pre-activations' variance the estimate keeps */
    double pred_recall;    /* of the neurons CATS keeps at the same level, the fraction kept */
    double pred_mass;      /* of Σ|h_i|, the fraction on the kept neurons */
    double pred_flops;     /* predictor multiply-adds / the dense FFN's, per token */
} sf_sparsify_result;

/* Calibrates thresholds on tokens[0..n_avail) (chunks of p->n_ctx starting
 * with BOS when the model adds one), builds the transposed matrices and
 * writes the side-car GGUF to out_path (atomically). */
int sf_sparsify(sf_model *m, const int32_t *tokens, int64_t n_avail, const sf_sparsify_params *p,
                const char *out_path, sf_sparsify_result *res);

/* Loads a side-car for the context's model and uses it in every later
 * decode of that context (the context owns it). A side-car written for
 * another model, or a malformed one, is an error that says so; the context
 * is then unchanged. */
int sf_context_use_sparse(sf_context *c, const char *path);

/* Which tokens run sparse: every token of a call of at most max_batch
 * tokens (default 1: decoding), and every token at a position >= min_pos
 * (default: none; perplexity sets it to the first scored position). Other
 * tokens run the dense FFN. */
void sf_context_sparse_policy(sf_context *c, int max_batch, int min_pos);
bool sf_context_has_sparse(const sf_context *c);

/* The union effect: for each batch size batches[k], the mean over layers and
 * over windows of that many consecutive tokens of tokens[0..n_tokens) of the
 * fraction of channels active for at least one token of the window (the
 * rows a batched sparse product must read), for the FFN inputs and the
 * neurons (-1 where that site is dense). One dense forward pass of the
 * context (n_tokens <= n_batch) at its current position, not advancing it;
 * masks by the side-car's rules on the dense activations. Not for the
 * predictor. */
int sf_sparse_union(sf_context *c, const int32_t *tokens, int n_tokens, const int *batches, int n_batches,
                    double *in_active, double *hidden_active);

/* Counters since the last reset: FFN channel decisions taken per site and how
 * many were active (for realized density reports). */
typedef struct {
    int64_t in_total, in_active;         /* FFN input channels (TEAL/WINA) */
    int64_t hidden_total, hidden_active; /* FFN neurons (predictor: the predicted ones) */
    int64_t attn_total, attn_active;     /* attention input and output channels (TEAL --attention) */
    int64_t tokens;                      /* token-layers run sparse */
    int64_t bytes;                       /* weight bytes those FFNs read */
} sf_sparse_stats;
void sf_context_sparse_stats(sf_context *c, sf_sparse_stats *out, bool reset);

#endif
