/* Counters about what the last sf_decode call did. sf_decode marks the
 * context's thread pool when it starts; every parallel region since then
 * (each ends in one barrier) belongs to that call. */
#include "model/context.h"

int sf_context_barriers_last(const sf_context *c) {
    if (!c || !c->pool) return -1;
    int64_t n = sf_pool_regions_since_mark(c->pool);
    return n < 0 || n > INT32_MAX ? -1 : (int)n;
}
