/* Chat templates (llama.cpp's llm_chat_apply_template for a few families).
 * The public entry points are in sparsefuse.h; this header exposes the
 * string-level detection so it can be tested without a model. */
#ifndef SF_TEXT_CHAT_H
#define SF_TEXT_CHAT_H

#include "sparsefuse.h"

/* Template name for a Jinja template string (or a template name), using
 * llama.cpp's substring heuristics; "chatml" for NULL or unknown. */
const char *sf_chat_detect_str(const char *tmpl);

#endif
