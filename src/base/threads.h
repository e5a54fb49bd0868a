/* A persistent thread pool: sf_pool_run() runs fn(arg, ith, nth) on every
 * thread (the caller is thread 0) and returns when all are done, so each call
 * is one parallel region ending in one barrier. Workers spin briefly, then
 * sleep on a condition variable, between regions. */
#ifndef SF_BASE_THREADS_H
#define SF_BASE_THREADS_H

#include <stdint.h>

typedef struct sf_pool sf_pool;
typedef void (*sf_pool_fn)(void *arg, int ith, int nth);

sf_pool *sf_pool_new(int n_threads); /* NULL on failure (message set) */
void sf_pool_free(sf_pool *p);
void sf_pool_run(sf_pool *p, sf_pool_fn fn, void *arg);
/* Number of regions run so far (each ends in one barrier). */
uint64_t sf_pool_regions(const sf_pool *p);
/* Remembers the region count now (sf_decode calls it when it starts), so
 * that the regions of one unit of work can be counted afterwards. */
void sf_pool_mark(sf_pool *p);
/* Regions run since the last sf_pool_mark; -1 if it was never called. */
int64_t sf_pool_regions_since_mark(const sf_pool *p);

/* Physical cores of this machine (logical CPUs / SMT siblings), at least 1. */
int sf_physical_cores(void);

/* [start, end) of n items for thread ith of nth, in whole multiples of `align`. */
void sf_split_range(int64_t n, int ith, int nth, int64_t align, int64_t *start, int64_t *end);

#endif
