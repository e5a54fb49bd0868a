/* Reservoir sampling of channel scores and the quantiles of the sample. */
#include "sparse/reservoir.h"

#include <math.h>
#include <stdlib.h>

#include "base/error.h"

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double uniform(uint64_t *rng) { return ((double)(next_rand(rng) >> 11) + 0.5) * 0x1.0p-53; }

/* The gap to the next score that enters a full reservoir (Li's Algorithm L). */
static void advance(sf_reservoir *r, uint64_t *rng) {
    r->w *= exp(log(uniform(rng)) / SF_RESERVOIR);
    r->next += (int64_t)floor(log(uniform(rng)) / log1p(-r->w)) + 1;
}

/* Once full, one random draw per score that enters, not per score seen.
 * r->seen is the index (over all scores) of v[i]. */
void sf_reservoir_keep(sf_reservoir *r, uint64_t *rng, const float *v, int64_t n) {
    int64_t i = 0;
    for (; i < n && r->seen < SF_RESERVOIR; i++) {
        r->v[r->seen++] = v[i];
        if (r->seen == SF_RESERVOIR) {
            r->w = 1.0;
            r->next = SF_RESERVOIR - 1;
            advance(r, rng);
        }
    }
    while (i < n) {
        const int64_t skip = r->next - r->seen; /* scores passed over before the next that enters */
        if (skip >= n - i) {
            r->seen += n - i;
            return;
        }
        i += skip;
        r->seen += skip + 1;
        r->v[next_rand(rng) % SF_RESERVOIR] = v[i++];
        advance(r, rng);
    }
}

int64_t sf_reservoir_size(const sf_reservoir *r) { return r->seen < SF_RESERVOIR ? r->seen : SF_RESERVOIR; }

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int sf_reservoir_sort(sf_reservoir *r) {
    const int64_t n = sf_reservoir_size(r);
    qsort(r->v, (size_t)n, sizeof(float), cmp_float);
    free(r->energy);
    r->energy = malloc(sizeof(double) * (size_t)(n + 1));
    if (!r->energy) return sf_fail(SF_ERR_NOMEM, "out of memory");
    r->energy[0] = 0;
    for (int64_t i = 0; i < n; i++) r->energy[i + 1] = r->energy[i] + (double)r->v[i] * r->v[i];
    return SF_OK;
}

/* the number of scores <= t (v sorted) */
static int64_t count_below(const sf_reservoir *r, float t) {
    int64_t lo = 0, hi = sf_reservoir_size(r);
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (r->v[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void sf_reservoir_quantile(const sf_reservoir *r, float s, float *threshold, float *level) {
    const int64_t n = sf_reservoir_size(r);
    *threshold = 0.0f;
    *level = 0.0f;
    if (n == 0 || s <= 0.0f) return;
    int64_t i = (int64_t)floor((double)s * (double)n);
    if (i >= n) i = n - 1;
    if (i < 1) i = 1;
    *threshold = r->v[i - 1];
    *level = (float)((double)count_below(r, *threshold) / (double)n);
}

double sf_reservoir_energy_below(const sf_reservoir *r, float threshold) {
    const int64_t n = sf_reservoir_size(r);
    if (n == 0 || !r->energy || r->energy[n] <= 0) return 0.0;
    return r->energy[count_below(r, threshold)] / r->energy[n];
}

void sf_reservoir_free(sf_reservoir *r) {
    free(r->v);
    free(r->energy);
    r->v = NULL;
    r->energy = NULL;
}
