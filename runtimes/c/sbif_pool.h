/*
 * sbif_pool.h: the threads a workspace splits a batch between (internal to the runtime, not installed).
 *
 * A pool is the caller's thread plus threads - 1 it starts once, which then sleep until the next run: a run hands
 * every thread one call of a task and returns when all have returned, so a workspace's steady state starts no
 * thread and allocates nothing. Work items are taken one at a time from a counter under the pool's lock (a thread
 * the machine slows down takes fewer), which is why a task's result must not depend on which thread ran an item.
 * Built with SBIF_THREADS (POSIX threads); without it there is no pool and runs stay in the caller's thread.
 */
#ifndef SBIF_POOL_H
#define SBIF_POOL_H

#include <stdint.h>

typedef struct sbif_pool sbif_pool;

/** One thread's share of a run: `thread` is 0 in the caller's thread, 1..threads-1 in the pool's. */
typedef void (*sbif_pool_task)(void *context, int thread);

/** Whether this build has threads (SBIF_THREADS). */
int sbif_pool_available(void);

/** A pool of `threads` threads in all (>= 2), or NULL when the build has none or the system refuses them. */
sbif_pool *sbif_pool_new(int threads);

/** Stop and join the pool's threads, and release it (NULL is fine). */
void sbif_pool_free(sbif_pool *pool);

/** Run task(context, t) once for every t in 0..threads-1, t = 0 in the caller's thread, and return when every call
 * has returned. The pool's counter starts again at 0. One run at a time per pool. */
void sbif_pool_run(sbif_pool *pool, sbif_pool_task task, void *context);

/** The next value of the run's counter (0, 1, 2, ...), each handed to exactly one caller. */
int64_t sbif_pool_next(sbif_pool *pool);

#endif /* SBIF_POOL_H */
