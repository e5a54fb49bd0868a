/* A uniform sample of a stream of channel scores (Li's Algorithm L) and its
 * quantiles: sparsify keeps one per (layer, site) and sets thresholds from
 * it. */
#ifndef SF_SPARSE_RESERVOIR_H
#define SF_SPARSE_RESERVOIR_H

#include <stdint.h>

#define SF_RESERVOIR (1 << 18) /* scores kept */

typedef struct {
    float *v;       /* [SF_RESERVOIR], allocated by the caller */
    int64_t seen;   /* scores offered so far */
    double w;       /* Algorithm L's running weight */
    int64_t next;   /* index of the next score that enters once full */
    double *energy; /* after sf_reservoir_sort: [n + 1] prefix sums of v² (sorted order), or NULL */
} sf_reservoir;

/* Offers v[0..n) to r; every score seen has the same chance to be kept.
 * rng is an xorshift state shared by the caller's reservoirs. */
void sf_reservoir_keep(sf_reservoir *r, uint64_t *rng, const float *v, int64_t n);

int64_t sf_reservoir_size(const sf_reservoir *r); /* scores held */

/* Sorts the scores ascending and fills the energy prefix sums; SF_OK or
 * SF_ERR_NOMEM. The queries below need it. */
int sf_reservoir_sort(sf_reservoir *r);

/* The threshold that skips a fraction s of the scores (those <= it), and
 * the fraction it actually skips (ties); both 0 for s <= 0 or no scores. */
void sf_reservoir_quantile(const sf_reservoir *r, float s, float *threshold, float *level);

/* Σ v² over the scores <= threshold / Σ v² over all: the share of the
 * squared magnitude a threshold drops. */
double sf_reservoir_energy_below(const sf_reservoir *r, float threshold);

void sf_reservoir_free(sf_reservoir *r); /* v and energy */

#endif
