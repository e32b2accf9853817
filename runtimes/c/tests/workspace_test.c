/*
 * workspace_test: a workspace's runs of one model, for tests/runtimes/test_c_kernels.py.
 *
 *     workspace_test MODEL   -> one line per step ("batch B: A allocations"), "FAIL ..." lines; exit 1 on any
 *
 * Linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc, so every allocation of the library is counted. Every
 * declared output is requested from feeds of every declared input (floats in (0, 1), which noise inputs accept;
 * integer and bool inputs 0, uint8 images any byte). Steps: a batch of 8 sizes the workspace; batches of 8, 3, 1
 * and 8 again must allocate nothing; a batch of 20 grows it (it must allocate); then batches of 5 and 20 must
 * allocate nothing. Every step's results (views into the workspace) must equal sbif_model_run's copies of the same
 * feeds, bit for bit (the same kernels run the same rows), with their types. Last, a batch of 2500 rows (which a
 * large enough model runs in chunks): rows spread over it, each run alone as a batch of 1, must give exactly the
 * rows the batch gave (the kernels sum every output in one order, whatever rows are computed with it).
 * Then, where the library has threads, workspaces split between 2 and 3 threads run a batch of several cache-sized
 * chunks (as many rows as fit 16 MiB of input, at most 8,000): results equal sbif_model_run's bit for bit, the
 * first run sizes the threads' buffers and the next allocates nothing; thread counts out of range are refused.
 *
 * Built with -DSBIF_TEST_UNCOUNTED (for ThreadSanitizer, which keeps malloc to itself and runs the instrumented
 * kernels many times slower) allocations are not counted, the single-thread steps are left out and the threaded
 * batches are smaller (4 MiB of input, at most 1,500 rows: still several chunks of any model).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbif.h"

#define MAX_IO 64
/** The threaded runs' batch: rows of input that fill this many bytes (at most MAX_THREADED_ROWS). */
#ifdef SBIF_TEST_UNCOUNTED
#define THREADED_INPUT_BYTES ((size_t)4 << 20)
#define MAX_THREADED_ROWS 1500
#else
#define THREADED_INPUT_BYTES ((size_t)16 << 20)
#define MAX_THREADED_ROWS 8000
#endif

#ifndef SBIF_TEST_UNCOUNTED
#define COUNTED 1
void *__real_malloc(size_t size);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *pointer, size_t size);

static unsigned long allocations;

void *__wrap_malloc(size_t size) {
    allocations++;
    return __real_malloc(size);
}

void *__wrap_calloc(size_t count, size_t size) {
    allocations++;
    return __real_calloc(count, size);
}

void *__wrap_realloc(void *pointer, size_t size) {
    allocations++;
    return __real_realloc(pointer, size);
}
#else
#define COUNTED 0
static unsigned long allocations;
#endif

static int failed;

static void failure(const char *what, long batch, const char *detail) {
    printf("FAIL batch %ld: %s%s%s\n", batch, what, detail ? ": " : "", detail ? detail : "");
    failed = 1;
}

/** Feeds of `batch` rows for every declared input, in `storage` (allocated here, before anything is counted). */
static void make_feeds(const sbif_model *model, long batch, sbif_named_tensor *feeds, void **storage) {
    size_t i, k;
    for (i = 0; i < sbif_model_input_count(model); i++) {
        sbif_value_info info;
        sbif_tensor *t = &feeds[i].tensor;
        size_t count;
        sbif_model_input(model, i, &info);
        feeds[i].name = info.name;
        t->dtype = info.dtype;
        t->rank = info.rank;
        memcpy(t->shape, info.shape, sizeof t->shape);
        if (t->rank > 0 && t->shape[0] < 0) t->shape[0] = batch;
        count = (size_t)sbif_tensor_count(t);
        storage[i] = calloc(count + 1, sbif_dtype_size(t->dtype));
        if (storage[i] == NULL) abort();
        for (k = 0; k < count; k++) {
            double value = (double)((k * 7919 + i * 104729) % 997 + 1) / 999.0;
            if (t->dtype == SBIF_FLOAT32) ((float *)storage[i])[k] = (float)value;
            else if (t->dtype == SBIF_FLOAT64) ((double *)storage[i])[k] = value;
            else if (t->dtype == SBIF_UINT8) ((unsigned char *)storage[i])[k] = (unsigned char)(value * 255.0);
        }
        t->data = storage[i];
    }
}

static void step(const sbif_model *model, sbif_workspace *workspace, long batch, int must_allocate) {
    sbif_named_tensor feeds[MAX_IO];
    void *storage[MAX_IO];
    const char *outputs[MAX_IO];
    sbif_tensor views[MAX_IO], copies[MAX_IO];
    size_t n_inputs = sbif_model_input_count(model), n_outputs = sbif_model_output_count(model), i;
    unsigned long before;
    sbif_error error;
    for (i = 0; i < n_outputs; i++) {
        sbif_value_info info;
        sbif_model_output(model, i, &info);
        outputs[i] = info.name;
    }
    make_feeds(model, batch, feeds, storage);
    if (sbif_model_run(model, feeds, n_inputs, outputs, n_outputs, copies, &error) != SBIF_OK) {
        failure("sbif_model_run failed", batch, error.message);
        return;
    }
    before = allocations;
    if (sbif_workspace_run(workspace, feeds, n_inputs, outputs, n_outputs, views, &error) != SBIF_OK) {
        failure("sbif_workspace_run failed", batch, error.message);
        return;
    }
    printf("batch %ld: %lu allocations\n", batch, allocations - before);
    if (COUNTED && (must_allocate ? allocations == before : allocations != before)) {
        failure(must_allocate ? "a larger batch did not grow the workspace" : "a sized workspace allocated", batch,
                NULL);
    }
    for (i = 0; i < n_outputs; i++) {
        size_t bytes = (size_t)sbif_tensor_count(&copies[i]) * sbif_dtype_size(copies[i].dtype);
        if (views[i].dtype != copies[i].dtype || views[i].rank != copies[i].rank ||
            memcmp(views[i].shape, copies[i].shape, (size_t)views[i].rank * sizeof views[i].shape[0]) != 0 ||
            memcmp(views[i].data, copies[i].data, bytes) != 0) {
            failure("the workspace's result differs from sbif_model_run's", batch, outputs[i]);
        }
        sbif_tensor_release(&copies[i]);
    }
    for (i = 0; i < n_inputs; i++) free(storage[i]);
}

/** Rows spread over a batch of `batch` rows, each run alone, against the batch's own rows. */
static void rows_alone(const sbif_model *model, sbif_workspace *workspace, long batch) {
    sbif_named_tensor feeds[MAX_IO], row_feeds[MAX_IO];
    void *storage[MAX_IO];
    const char *outputs[MAX_IO];
    sbif_tensor whole[MAX_IO], alone[MAX_IO];
    size_t n_inputs = sbif_model_input_count(model), n_outputs = sbif_model_output_count(model), i;
    sbif_error error;
    long row;
    for (i = 0; i < n_outputs; i++) {
        sbif_value_info info;
        sbif_model_output(model, i, &info);
        outputs[i] = info.name;
    }
    make_feeds(model, batch, feeds, storage);
    if (sbif_model_run(model, feeds, n_inputs, outputs, n_outputs, whole, &error) != SBIF_OK) {
        failure("sbif_model_run failed", batch, error.message);
        return;
    }
    for (row = 0; row < batch; row = row + 83 < batch || row == batch - 1 ? row + 83 : batch - 1) {
        for (i = 0; i < n_inputs; i++) {
            row_feeds[i] = feeds[i];
            if (feeds[i].tensor.rank > 0 && feeds[i].tensor.shape[0] == batch) {
                size_t bytes = (size_t)sbif_tensor_count(&feeds[i].tensor) / (size_t)batch *
                               sbif_dtype_size(feeds[i].tensor.dtype);
                row_feeds[i].tensor.shape[0] = 1;
                row_feeds[i].tensor.data = (char *)feeds[i].tensor.data + (size_t)row * bytes;
            }
        }
        if (sbif_workspace_run(workspace, row_feeds, n_inputs, outputs, n_outputs, alone, &error) != SBIF_OK) {
            failure("sbif_workspace_run of one row failed", 1, error.message);
            break;
        }
        for (i = 0; i < n_outputs; i++) {
            size_t bytes = (size_t)sbif_tensor_count(&alone[i]) * sbif_dtype_size(alone[i].dtype);
            size_t offset = whole[i].rank > 0 && whole[i].shape[0] == batch ? (size_t)row * bytes : 0;
            if (memcmp((char *)whole[i].data + offset, alone[i].data, bytes) != 0) {
                char detail[200];
                snprintf(detail, sizeof detail, "%s, row %ld", outputs[i], row);
                failure("a row run alone differs from the same row in a batch", batch, detail);
            }
        }
    }
    printf("batch %ld: rows alone checked\n", batch);
    for (i = 0; i < n_outputs; i++) sbif_tensor_release(&whole[i]);
    for (i = 0; i < n_inputs; i++) free(storage[i]);
}

/** Rows of a batch whose inputs fill THREADED_INPUT_BYTES: enough for several chunks of any model. */
static long threaded_rows(const sbif_model *model) {
    size_t i, row = 0;
    for (i = 0; i < sbif_model_input_count(model); i++) {
        sbif_value_info info;
        size_t count = 1;
        int axis;
        sbif_model_input(model, i, &info);
        for (axis = 1; axis < info.rank; axis++) count *= (size_t)info.shape[axis];
        row += count * sbif_dtype_size(info.dtype);
    }
    row = row > 0 ? row : 1;
    return THREADED_INPUT_BYTES / row < MAX_THREADED_ROWS ? (long)(THREADED_INPUT_BYTES / row) : MAX_THREADED_ROWS;
}

/** A workspace split between `threads` threads against sbif_model_run, on a large batch and a smaller one. */
static void threaded(const sbif_model *model, int threads) {
    sbif_workspace *workspace;
    sbif_error error;
    long rows = threaded_rows(model);
    if (sbif_workspace_new(model, &workspace, &error) != SBIF_OK) {
        failure("workspace", 0, error.message);
        return;
    }
    if (sbif_workspace_set_threads(workspace, threads, &error) != SBIF_OK) {
        failure("sbif_workspace_set_threads failed", 0, error.message);
    } else {
        printf("threads %d:\n", threads);
        step(model, workspace, rows, 1);
        step(model, workspace, rows, 0);
        step(model, workspace, rows / 3 + 1, 0);
    }
    sbif_workspace_free(workspace);
}

/** Thread counts the library must refuse, and 1, which every build takes. */
static void thread_counts(const sbif_model *model) {
    static const int REFUSED[] = {0, -1, SBIF_MAX_THREADS + 1};
    sbif_workspace *workspace;
    sbif_error error;
    size_t i;
    if (sbif_workspace_new(model, &workspace, &error) != SBIF_OK) {
        failure("workspace", 0, error.message);
        return;
    }
    for (i = 0; i < sizeof REFUSED / sizeof REFUSED[0]; i++) {
        if (sbif_workspace_set_threads(workspace, REFUSED[i], &error) != SBIF_ERR_INPUT) {
            failure("a thread count out of range was not refused as an input error", REFUSED[i], NULL);
        }
    }
    if (sbif_workspace_set_threads(workspace, 1, &error) != SBIF_OK) failure("1 thread refused", 1, error.message);
    if (!sbif_threads_available() && sbif_workspace_set_threads(workspace, 2, &error) != SBIF_ERR_UNSUPPORTED) {
        failure("a build without threads did not refuse 2 as unsupported", 2, NULL);
    }
    sbif_workspace_free(workspace);
}

/** One workspace through batches that size it, reuse it and grow it, then rows of a large batch run alone. */
static void single_thread_steps(const sbif_model *model) {
    sbif_workspace *workspace;
    sbif_error error;
    if (sbif_workspace_new(model, &workspace, &error) != SBIF_OK) {
        failure("workspace", 0, error.message);
        return;
    }
    step(model, workspace, 8, 1);
    step(model, workspace, 8, 0);
    step(model, workspace, 3, 0);
    step(model, workspace, 1, 0);
    step(model, workspace, 8, 0);
    step(model, workspace, 20, 1);
    step(model, workspace, 5, 0);
    step(model, workspace, 20, 0);
    rows_alone(model, workspace, 2500);
    sbif_workspace_free(workspace);
}

int main(int argc, char **argv) {
    sbif_model *model;
    sbif_error error;
    if (argc != 2) {
        fprintf(stderr, "usage: workspace_test MODEL\n");
        return 2;
    }
    if (sbif_model_load(argv[1], &model, &error) != SBIF_OK) {
        printf("FAIL load: %s\n", error.message);
        return 1;
    }
    if (sbif_model_input_count(model) > MAX_IO || sbif_model_output_count(model) > MAX_IO) {
        printf("FAIL more than %d inputs or outputs\n", MAX_IO);
        return 1;
    }
    if (COUNTED) single_thread_steps(model); /* (ThreadSanitizer's build: the threaded runs alone) */
    thread_counts(model);
    printf("library threads: %s\n", sbif_threads_available() ? "yes" : "no");
    if (sbif_threads_available()) {
        threaded(model, 2);
        threaded(model, 3);
    }
    sbif_model_free(model);
    return failed;
}
