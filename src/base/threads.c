#include "base/threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SF_CPU_RELAX() _mm_pause()
#else
#define SF_CPU_RELAX() ((void)0)
#endif

enum { SPIN_ITERATIONS = 1 << 14 };

typedef struct {
    sf_pool *pool;
    int ith;
    pthread_t thread;
} sf_worker;

struct sf_pool {
    int n_threads;
    sf_worker *workers;           /* [n_threads - 1] */
    sf_pool_fn fn;
    void *arg;
    atomic_uint_fast64_t generation; /* bumped to start a region */
    atomic_int pending;           /* workers still running the region */
    atomic_bool stop;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    uint64_t regions;             /* sf_pool_run calls so far (caller thread only) */
    uint64_t mark;                /* regions at the last sf_pool_mark */
    bool marked;
};

static void *worker_main(void *p) {
    sf_worker *w = p;
    sf_pool *pool = w->pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t gen;
        int spins = 0;
        while ((gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
               !atomic_load(&pool->stop)) {
            if (++spins < SPIN_ITERATIONS) { SF_CPU_RELAX(); continue; }
            pthread_mutex_lock(&pool->mutex);
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop)) return NULL;
        seen = gen;
        pool->fn(pool->arg, w->ith, pool->n_threads);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel);
    }
}

sf_pool *sf_pool_new(int n_threads) {
    if (n_threads < 1 || n_threads > 512) {
        sf_fail(SF_ERR_ARG, "thread count %d is out of range 1..512", n_threads);
        return NULL;
    }
    sf_pool *p = calloc(1, sizeof *p);
    if (!p) { sf_fail(SF_ERR_NOMEM, "out of memory creating the thread pool"); return NULL; }
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mutex, NULL);
    pthread_cond_init(&p->wake, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, false);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) { free(p); sf_fail(SF_ERR_NOMEM, "out of memory creating the thread pool"); return NULL; }
        for (int i = 0; i < n_threads - 1; i++) {
            p->workers[i].pool = p;
            p->workers[i].ith = i + 1;
            if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
                p->n_threads = i + 1; /* join what was started */
                sf_pool_free(p);
                sf_fail(SF_ERR_NOMEM, "cannot start thread %d", i + 1);
                return NULL;
            }
        }
    }
    return p;
}

void sf_pool_free(sf_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mutex);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mutex);
    for (int i = 0; i < p->n_threads - 1; i++) pthread_join(p->workers[i].thread, NULL);
    pthread_mutex_destroy(&p->mutex);
    pthread_cond_destroy(&p->wake);
    free(p->workers);
    free(p);
}

uint64_t sf_pool_regions(const sf_pool *p) { return p->regions; }

void sf_pool_mark(sf_pool *p) {
    p->mark = p->regions;
    p->marked = true;
}

int64_t sf_pool_regions_since_mark(const sf_pool *p) {
    return p->marked ? (int64_t)(p->regions - p->mark) : -1;
}

void sf_pool_run(sf_pool *p, sf_pool_fn fn, void *arg) {
    p->regions++;
    if (p->n_threads == 1) { fn(arg, 0, 1); return; }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mutex);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mutex);
    fn(arg, 0, p->n_threads);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) SF_CPU_RELAX();
}

int sf_physical_cores(void) {
    long logical = sysconf(_SC_NPROCESSORS_ONLN);
    if (logical < 1) logical = 1;
    /* Count distinct (package, core) pairs from sysfs; fall back to logical. */
    int cores = 0;
    char seen[4096] = {0};
    for (long cpu = 0; cpu < logical && cpu < 4096; cpu++) {
        char path[128];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/thread_siblings_list", cpu);
        FILE *f = fopen(path, "r");
        if (!f) return (int)logical;
        long first = -1;
        if (fscanf(f, "%ld", &first) != 1) first = cpu;
        fclose(f);
        if (first >= 0 && first < 4096 && !seen[first]) { seen[first] = 1; cores++; }
    }
    return cores > 0 ? cores : (int)logical;
}

void sf_split_range(int64_t n, int ith, int nth, int64_t align, int64_t *start, int64_t *end) {
    if (align < 1) align = 1;
    int64_t units = (n + align - 1) / align;
    int64_t per = units / nth, rem = units % nth;
    int64_t s = ith * per + (ith < rem ? ith : rem);
    int64_t e = s + per + (ith < rem ? 1 : 0);
    s *= align;
    e *= align;
    *start = s < n ? s : n;
    *end = e < n ? e : n;
}
