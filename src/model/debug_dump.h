/* Developer aid: with SF_DUMP_DIR set, the forward pass writes intermediate
 * tensors as raw little-endian f32 files DIR/NAME-LAYER.f32 (row-major
 * [tokens][width]), named like llama.cpp's graph callbacks, so a layer-by-layer
 * comparison against llama.cpp is possible (tools/reference/README.md).
 * Off (one branch) when the variable is unset. */
#ifndef SF_MODEL_DEBUG_DUMP_H
#define SF_MODEL_DEBUG_DUMP_H

#include <stddef.h>

/* rows of width floats, `stride` floats apart */
void sf_debug_dump(const char *name, int layer, const float *data, int rows, int width, size_t stride);

#endif
