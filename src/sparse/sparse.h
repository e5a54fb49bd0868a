/* Contextual FFN sparsity, inside the library: the side-car's contents as
 * the forward pass reads them, and the side-car format.
 *
 * Side-car GGUF (general.architecture = "sparsefuse-sparsity"):
 *   sparsefuse.sparsity.version       u32   1
 *   sparsefuse.sparsity.method        str   teal | cats | wina | predictor
 *   sparsefuse.sparsity.target        f32   the level asked for
 *   sparsefuse.sparsity.base.name     str   general.name of the base model
 *   sparsefuse.sparsity.base.fingerprint u64 sf_model_fingerprint of the base
 *   sparsefuse.sparsity.base.n_layer / n_embd   u32
 *   sparsefuse.sparsity.{ffn_in,ffn_hidden,attn_in,attn_out}.threshold  f32[n_layer]
 *   sparsefuse.sparsity.{ffn_in,ffn_hidden,attn_in,attn_out}.level      f32[n_layer]
 *       level: calibrated fraction of channels skipped; 0 = that site of
 *       that layer runs dense (the attn_* keys may be absent: dense)
 * Tensors per layer N whose site is sparse:
 *   blk.N.ffn_gate_t, blk.N.ffn_up_t  {n_ff, n_embd}: row j = column j of gate/up (ffn_in, TEAL/WINA)
 *   blk.N.ffn_down_t                  {n_embd, n_ff}: row i = column i of down (ffn_hidden)
 *   blk.N.attn_{q,k,v}_t  {n_out, n_embd}: row j = column j of Wq, Wk, Wv (attn_in)
 *   blk.N.attn_output_t   {n_embd, n_head * head_dim_v}: row j = column j of Wo (attn_out)
 *   blk.N.ffn_in_scale  f32[n_embd], blk.N.ffn_hidden_scale f32[n_ff]: WINA's column norms
 *   blk.N.ffn_down_b    f32[n_embd] optional (--correct-down): added to the sparse down's output
 * predictor (sparse/predictor.h): neuron i is computed where |act(ĝ_i)| > the
 * predictor threshold, and kept where then also |act(g_i)| > the ffn_hidden
 * threshold (0: every predicted neuron is kept):
 *   sparsefuse.sparsity.predictor.rank  u32
 *   sparsefuse.sparsity.predictor.threshold  f32[n_layer]
 *   sparsefuse.sparsity.predictor.{explained,recall}  f32[n_layer] (as sf_sparsify_result)
 *   blk.N.ffn_pred_a  Q8_0 {n_embd, rank}, blk.N.ffn_pred_b  Q8_0 {rank, n_ff} */
#ifndef SF_SPARSE_SPARSE_H
#define SF_SPARSE_SPARSE_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "model/model.h"
#include "sparse/predictor.h"
#include "sparsefuse_sparsity.h"

#define SF_SPARSE_ARCH "sparsefuse-sparsity"
#define SF_SPARSE_VERSION 1u
#define SF_SPARSE_SLOTS 3 /* partial products per thread: gate and up, or q, k and v */

/* The places where channels are skipped: the FFN's input and hidden
 * activations, and (TEAL with --attention) the attention's input, which
 * q, k and v read, and its output, which Wo reads. */
typedef enum { SF_SITE_FFN_IN, SF_SITE_FFN_HIDDEN, SF_SITE_ATTN_IN, SF_SITE_ATTN_OUT, SF_SITES } sf_sparse_site;
extern const char *const sf_sparse_site_names[SF_SITES]; /* "ffn_in", "ffn_hidden", "attn_in", "attn_out" */

typedef struct {
    bool on;             /* level > 0: this site of this layer is sparse */
    float threshold;     /* channel j active where |x_j| * scale[j] > threshold */
    float level;         /* calibrated fraction skipped */
    const float *scale;  /* [n] WINA column norms, or NULL (1) */
} sf_sparse_rule;

/* Whether channel j with value x is active under r (the one definition the
 * kernels, the weight cache and the union measurement share). */
static inline bool sf_sparse_active(const sf_sparse_rule *r, float x, int j) {
    return fabsf(x) * (r->scale ? r->scale[j] : 1.0f) > r->threshold;
}

typedef struct {
    sf_sparse_rule site[SF_SITES];
    /* ffn_in: transposed gate and up, n_embd rows of n_ff values */
    const sf_gguf_tensor *gate_t, *up_t;
    /* ffn_hidden: transposed down, n_ff rows of n_embd values (every method) */
    const sf_gguf_tensor *down_t;
    const float *down_b; /* [n_embd] --correct-down's bias of the sparse down, or NULL */
    /* attn_in: transposed q, k, v, n_embd rows each; attn_out: transposed Wo */
    const sf_gguf_tensor *q_t, *k_t, *v_t, *o_t;
    sf_predictor pred;    /* predictor: its matrices (a, b NULL otherwise) */
    float pred_threshold; /* predictor: neuron i computed where |act(ĝ_i)| > this */
} sf_sparse_layer;

typedef struct sf_sparse {
    sf_gguf *g;
    sf_sparse_method method;
    float target;
    int rank; /* predictor's, else 0 */
    int n_layer;
    sf_sparse_layer *layers; /* [n_layer] */
} sf_sparse;

/* Its header keys (model.h). */
extern const sf_sidecar_kind sf_sparse_sidecar;

/* Opens and validates a side-car against m (shapes, names, fingerprint). */
int sf_sparse_open(const char *path, const sf_model *m, sf_sparse **out);
void sf_sparse_free(sf_sparse *s);

/* Frees the side-car a context uses and its buffers (sf_context_free). */
struct sf_context;
void sf_sparse_detach(struct sf_context *c);

#endif
