/*
 * run_bench: a model's deterministic action on a batch, timed in this thread's CPU time (runtimes/c/bench/README.md).
 * `make -C runtimes/c bench` builds it against the host build of the library.
 *
 *     run_bench MODEL ROWS   -> "MODEL, ROWS rows: best B obs/s, median M obs/s (R runs, thread CPU time)"
 *
 * One workspace in one thread runs `predict.deterministic_action` on ROWS rows, every input fed (floats uniform in
 * [-1, 1), other dtypes zeros), once to warm up and then for about two seconds of CPU time. benchmarks/run.py times
 * the same runs in wall-clock time beside onnxruntime; this counts only the time the thread ran, so that two builds
 * can be compared on a machine other work shares.
 */
#define _POSIX_C_SOURCE 199309L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "thread_time.h"

#include "sbif.h"

#define MAX_INPUTS 16
#define MAX_RUNS 100000

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "run_bench: %s: %s\n", what, detail);
    return 1;
}

/** A batch of `rows` for a declared input: floats uniform in [-1, 1), other dtypes zeros (NULL when out of memory). */
static void *batch_of(const sbif_value_info *info, int64_t rows, sbif_named_tensor *feed) {
    size_t count = 1, i;
    int axis;
    unsigned char *data;
    feed->name = info->name;
    feed->tensor.dtype = info->dtype;
    feed->tensor.rank = info->rank;
    for (axis = 0; axis < info->rank; axis++) {
        feed->tensor.shape[axis] = info->shape[axis] < 0 ? rows : info->shape[axis];
        count *= (size_t)feed->tensor.shape[axis];
    }
    data = calloc(count ? count : 1, sbif_dtype_size(info->dtype));
    feed->tensor.data = data;
    for (i = 0; data != NULL && i < count; i++) {
        double uniform = (double)rand() / ((double)RAND_MAX + 1.0) * 2.0 - 1.0;
        if (info->dtype == SBIF_FLOAT32) ((float *)(void *)data)[i] = (float)uniform;
        if (info->dtype == SBIF_FLOAT64) ((double *)(void *)data)[i] = uniform;
    }
    return data;
}

int main(int argc, char **argv) {
    sbif_model *model;
    sbif_workspace *workspace;
    sbif_error error;
    sbif_named_tensor feeds[MAX_INPUTS];
    sbif_value_info info;
    sbif_tensor result;
    const char *action;
    static double samples[MAX_RUNS];
    double spent = 0.0, started;
    size_t n_inputs, i;
    long rows, runs = 0;
    char *end;
    int status = 0;
    if (argc != 3 || (rows = strtol(argv[2], &end, 10)) < 1 || *end != '\0' || rows > 1L << 20) {
        fprintf(stderr, "usage: run_bench MODEL ROWS   (ROWS from 1 to 2^20)\n");
        return 2;
    }
    if (sbif_model_load(argv[1], &model, &error) != SBIF_OK) return fail(argv[1], error.message);
    action = sbif_json_string(
        sbif_json_get(sbif_json_get(sbif_model_document(model), "predict"), "deterministic_action"));
    n_inputs = sbif_model_input_count(model);
    if (action == NULL || n_inputs > MAX_INPUTS) {
        sbif_model_free(model);
        return fail(argv[1], action == NULL ? "no deterministic action named" : "more inputs than run_bench feeds");
    }
    for (i = 0; i < n_inputs; i++) {
        sbif_model_input(model, i, &info);
        if (batch_of(&info, rows, &feeds[i]) == NULL) status = fail("batch", "out of memory");
    }
    if (status == 0 && sbif_workspace_new(model, &workspace, &error) != SBIF_OK)
        status = fail("workspace", error.message);
    if (status == 0) { /* the first run sizes the workspace and warms the caches */
        if (sbif_workspace_run(workspace, feeds, n_inputs, &action, 1, &result, &error) != SBIF_OK)
            status = fail("run", error.message);
        while (status == 0 && runs < MAX_RUNS && (runs < 5 || spent < 2.0)) {
            started = thread_cpu_seconds();
            if (sbif_workspace_run(workspace, feeds, n_inputs, &action, 1, &result, &error) != SBIF_OK) {
                status = fail("run", error.message);
                break;
            }
            samples[runs] = thread_cpu_seconds() - started;
            spent += samples[runs++];
        }
        sbif_workspace_free(workspace);
    }
    if (status == 0) {
        qsort(samples, (size_t)runs, sizeof *samples, compare_doubles);
        printf("%s, %ld rows: best %.0f obs/s, median %.0f obs/s (%ld runs, thread CPU time)\n", argv[1], rows,
               (double)rows / samples[0], (double)rows / samples[runs / 2], runs);
    }
    for (i = 0; i < n_inputs; i++) free(feeds[i].tensor.data);
    sbif_model_free(model);
    return status;
}
