/* A STREAM-like copy test: two arrays much larger than the caches, copied
 * back and forth by every thread of a pool (each thread its own slice, the
 * slices first touched by the thread that copies them). Bandwidth counts the
 * bytes read plus the bytes written, as STREAM's "Copy" does; 1 GB = 1e9 B. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/threads.h"
#include "eval/eval_internal.h"

enum { SLICE_ALIGN = 4096, MAX_REPS = 1000 };

sf_bandwidth_params sf_bandwidth_default_params(void) {
    sf_bandwidth_params p = {.n_threads = 0, .array_bytes = (size_t)256 << 20, .reps = 5};
    return p;
}

typedef struct {
    unsigned char *dst;
    const unsigned char *src; /* NULL: fill dst (first touch) */
    size_t n;
} copy_job;

static void region_copy(void *arg, int ith, int nth) {
    const copy_job *j = arg;
    int64_t s, e;
    sf_split_range((int64_t)j->n, ith, nth, SLICE_ALIGN, &s, &e);
    if (e <= s) return;
    if (j->src) memcpy(j->dst + s, j->src + s, (size_t)(e - s));
    else memset(j->dst + s, 1, (size_t)(e - s));
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Fills both arrays, copies once to warm up, then times reps copies into sec[reps]
 * (sorted on return). */
static void time_copies(sf_pool *pool, unsigned char *a, unsigned char *b, size_t n, int reps, double *sec) {
    copy_job fill_a = {a, NULL, n}, fill_b = {b, NULL, n};
    sf_pool_run(pool, region_copy, &fill_a);
    sf_pool_run(pool, region_copy, &fill_b);
    copy_job ab = {b, a, n}, ba = {a, b, n};
    sf_pool_run(pool, region_copy, &ab);
    for (int r = 0; r < reps; r++) {
        /* alternate the direction, as STREAM's kernels do */
        double t0 = sf_eval_now();
        sf_pool_run(pool, region_copy, (r & 1) ? &ab : &ba);
        sec[r] = sf_eval_now() - t0;
        if (sec[r] <= 0.0) sec[r] = 1e-9;
    }
    qsort(sec, (size_t)reps, sizeof *sec, cmp_double);
}

int sf_eval_bandwidth(const sf_bandwidth_params *params, sf_bandwidth_result *out) {
    sf_bandwidth_params p = params ? *params : sf_bandwidth_default_params();
    if (!out) return sf_fail(SF_ERR_ARG, "bandwidth: NULL result");
    if (p.n_threads < 0) return sf_fail(SF_ERR_ARG, "bandwidth: thread count must be >= 0 (got %d)", p.n_threads);
    if (p.reps < 1 || p.reps > MAX_REPS)
        return sf_fail(SF_ERR_ARG, "bandwidth: repetitions must be 1..%d (got %d)", MAX_REPS, p.reps);
    if (p.array_bytes < SLICE_ALIGN)
        return sf_fail(SF_ERR_ARG, "bandwidth: arrays of %zu bytes are too small (at least %d)", p.array_bytes,
                       SLICE_ALIGN);
    const int nth = p.n_threads > 0 ? p.n_threads : sf_physical_cores();

    sf_pool *pool = sf_pool_new(nth);
    if (!pool) return sf_fail_context(SF_ERR_NOMEM, "bandwidth");
    void *a = NULL, *b = NULL;
    double *sec = malloc((size_t)p.reps * sizeof *sec); /* [reps] seconds per copy */
    int rc = SF_OK;
    if (!sec || posix_memalign(&a, SLICE_ALIGN, p.array_bytes) || posix_memalign(&b, SLICE_ALIGN, p.array_bytes)) {
        rc = sf_fail(SF_ERR_NOMEM, "bandwidth: cannot allocate 2 x %zu bytes", p.array_bytes);
    } else {
        time_copies(pool, a, b, p.array_bytes, p.reps, sec);
        const double bytes = 2.0 * (double)p.array_bytes; /* read + written per copy */
        const double med = p.reps & 1 ? sec[p.reps / 2] : 0.5 * (sec[p.reps / 2 - 1] + sec[p.reps / 2]);
        memset(out, 0, sizeof *out);
        out->n_threads = nth;
        out->array_bytes = p.array_bytes;
        out->reps = p.reps;
        out->gbps_best = bytes / sec[0] / 1e9;
        out->gbps_median = bytes / med / 1e9;
    }
    free(a);
    free(b);
    free(sec);
    sf_pool_free(pool);
    return rc;
}
