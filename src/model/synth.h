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
 * The API is public, in include/sparsefuse_eval.h. */
#ifndef SF_MODEL_SYNTH_H
#define SF_MODEL_SYNTH_H

#include <stdint.h>

#include "sparsefuse_eval.h"

#endif
