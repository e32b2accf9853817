/*
 * sbif_pool.c: the threads of sbif_pool.h, on POSIX threads when built with SBIF_THREADS.
 *
 * The pool's threads wait on a condition variable for a new generation of work, run their call of the task, and
 * count themselves done; the caller runs its own call meanwhile and then waits for the count. A mutex guards the
 * generation, the count and the work counter, so every shared word is read and written under it (C99 has no
 * atomics): taking a work item costs one uncontended lock, far below the cache-sized chunk of rows an item is.
 */
#if defined(SBIF_THREADS) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200112L
#endif

#include "sbif_pool.h"

#include <stdlib.h>

#ifdef SBIF_THREADS
#include <pthread.h>

typedef struct worker {
    struct sbif_pool *pool;
    int thread;
    pthread_t handle;
} worker;

struct sbif_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;     /* a new generation of work, or stopping */
    pthread_cond_t finished; /* the last of the pool's threads has finished its call */
    int threads;             /* in all, the caller's included */
    int started;             /* pool threads running (joined when freed) */
    unsigned long generation;
    int busy; /* pool threads still in this generation's call */
    int stopping;
    sbif_pool_task task;
    void *context;
    int64_t next;
    worker *workers; /* threads - 1 of them */
};

int sbif_pool_available(void) { return 1; }

static void *work(void *argument) {
    worker *self = (worker *)argument;
    sbif_pool *pool = self->pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        sbif_pool_task task;
        void *context;
        while (!pool->stopping && pool->generation == seen) pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stopping) break;
        seen = pool->generation;
        task = pool->task;
        context = pool->context;
        pthread_mutex_unlock(&pool->lock);
        task(context, self->thread);
        pthread_mutex_lock(&pool->lock);
        if (--pool->busy == 0) pthread_cond_signal(&pool->finished);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

void sbif_pool_free(sbif_pool *pool) {
    int i;
    if (pool == NULL) return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (i = 0; i < pool->started; i++) pthread_join(pool->workers[i].handle, NULL);
    pthread_cond_destroy(&pool->finished);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->workers);
    free(pool);
}

sbif_pool *sbif_pool_new(int threads) {
    sbif_pool *pool;
    int i;
    if (threads < 2 || (pool = calloc(1, sizeof *pool)) == NULL) return NULL;
    if ((pool->workers = calloc((size_t)threads - 1, sizeof *pool->workers)) == NULL) {
        free(pool);
        return NULL;
    }
    if (pthread_mutex_init(&pool->lock, NULL) != 0) {
        free(pool->workers);
        free(pool);
        return NULL;
    }
    if (pthread_cond_init(&pool->wake, NULL) != 0) {
        pthread_mutex_destroy(&pool->lock);
        free(pool->workers);
        free(pool);
        return NULL;
    }
    if (pthread_cond_init(&pool->finished, NULL) != 0) {
        pthread_cond_destroy(&pool->wake);
        pthread_mutex_destroy(&pool->lock);
        free(pool->workers);
        free(pool);
        return NULL;
    }
    pool->threads = threads;
    for (i = 0; i < threads - 1; i++) {
        pool->workers[i].pool = pool;
        pool->workers[i].thread = i + 1;
        if (pthread_create(&pool->workers[i].handle, NULL, work, &pool->workers[i]) != 0) {
            sbif_pool_free(pool);
            return NULL;
        }
        pool->started++;
    }
    return pool;
}

void sbif_pool_run(sbif_pool *pool, sbif_pool_task task, void *context) {
    pthread_mutex_lock(&pool->lock);
    pool->task = task;
    pool->context = context;
    pool->next = 0;
    pool->busy = pool->threads - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    task(context, 0);
    pthread_mutex_lock(&pool->lock);
    while (pool->busy > 0) pthread_cond_wait(&pool->finished, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

int64_t sbif_pool_next(sbif_pool *pool) {
    int64_t next;
    pthread_mutex_lock(&pool->lock);
    next = pool->next++;
    pthread_mutex_unlock(&pool->lock);
    return next;
}

#else /* no threads: no pool is ever made, so the functions taking one are never reached */

int sbif_pool_available(void) { return 0; }
sbif_pool *sbif_pool_new(int threads) {
    (void)threads;
    return NULL;
}
void sbif_pool_free(sbif_pool *pool) { (void)pool; }
void sbif_pool_run(sbif_pool *pool, sbif_pool_task task, void *context) {
    (void)pool;
    task(context, 0);
}
int64_t sbif_pool_next(sbif_pool *pool) {
    (void)pool;
    return 0;
}

#endif
