/* Synthetic models: a GGUF file in the shape of a real model with random
 * weights, for speed measurements on sizes we have no small real file of
 * (speed does not depend on the weight values).
 *
 * The file is an ordinary `llama` GGUF that sparsefuse and llama.cpp both
 * load: every 2-D weight (token_embd included; embeddings are tied, there is
 * no output.weight) in Q4_0 or Q8_0, norms F32 = 1, rope_freqs.weight with
 * Llama 3's long-context factors, and a SentencePiece-style ("llama")
 * vocabulary of <unk> <s> </s>, the 256 byte tokens <0x00>..<0xFF>, then
 * "▁" and pseudo-words "▁a", "▁b", ... "▁aa"... filling it to the shape's size.
 *
 * Quantized blocks are drawn directly (random quants, random f16 scales), no
 * float quantization: scales are chosen so every weight has a standard
 * deviation of about 1/sqrt(fan_in), which keeps activations O(1) and logits
 * finite. Deterministic for a given seed.
 *
 * The API uses only public types so it can move to include/sparsefuse.h. */
#ifndef SF_MODEL_SYNTH_H
#define SF_MODEL_SYNTH_H

#include <stdint.h>

#include "sparsefuse.h"

typedef struct {
    const char *shape;       /* "llama-3.2-1b" (default) or "tiny" */
    const char *type;        /* "q4_0" (default) or "q8_0", any case */
    uint64_t seed;           /* default 0 */
    /* Optional: called with what = "generating" (done/total = bytes of
     * weights drawn so far) and what = "writing" (0 of total before the
     * file is written, total of total after). */
    sf_progress_fn progress;
    void *user;
} sf_synth_params;

typedef struct {
    int n_tensors;
    int64_t n_params;        /* elements of all tensors */
    uint64_t data_bytes;     /* bytes of all tensor data (the file is slightly larger) */
} sf_synth_result;

sf_synth_params sf_synth_default_params(void);

/* Writes the model to path atomically (the tensor data is held in memory
 * until then: ~0.7 GB for llama-3.2-1b q4_0, ~1.3 GB for q8_0). Returns
 * SF_OK, or an error naming the problem (unknown shape or type, directory
 * not writable, out of memory, I/O); on error no file is left behind.
 * out (optional) receives the sizes. */
int sf_synth_write(const char *path, const sf_synth_params *p, sf_synth_result *out);

/* The accepted shape names, NULL-terminated. */
const char *const *sf_synth_shape_names(void);

#endif
