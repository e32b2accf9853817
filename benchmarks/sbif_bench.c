/*
 * sbif_bench.c: the benchmark's driver of the C runtime (benchmarks/README.md). benchmarks/c_runtime.py builds it
 * against runtimes/c's host-tuned library and runs it once per measurement:
 *
 *   sbif-bench features
 *       prints the optional APIs compiled in ("predict" when built with SBIF_BENCH_PREDICT) and "threads" when
 *       the library can split runs between threads
 *   sbif-bench check MODEL OBS MASK|- [OUTPUT...]
 *       the deterministic action (and the recurrent state, and each extra OUTPUT) for every observation of OBS:
 *       a feed-forward model in one run, a recurrent one step by step from a zero state, the state carried and
 *       reset where MASK (the mask input's dtype, one element per step) says; one line per run and output,
 *       "NAME DTYPE COUNT VALUES...", exact (float32 with 9 significant digits); with sbif_predict also a line
 *       "predict DTYPE COUNT VALUES..." per observation, from one policy fed each observation in turn
 *   sbif-bench single MODEL OBS CALLS WARMUP BLOCK_SECONDS MAX_BLOCK
 *   sbif-bench predict MODEL OBS CALLS WARMUP BLOCK_SECONDS MAX_BLOCK
 *       µs per call on OBS's first observation, as harness.time_single times Python calls: WARMUP calls, then
 *       blocks of k back-to-back calls (k: a block lasts >= BLOCK_SECONDS, at most MAX_BLOCK), one sample per
 *       block; `single` is a workspace run of the action (and the state, carried), `predict` sbif_predict
 *   sbif-bench batch MODEL OBS SIZE BUDGET_SECONDS MIN_CALLS MAX_CALLS [THREADS]
 *       seconds per workspace run on OBS's first SIZE observations, as harness.time_batch: one warm-up run, then
 *       runs until the budget is spent (at least MIN_CALLS, at most MAX_CALLS); the workspace splits its runs
 *       between THREADS threads (sbif_workspace_set_threads; default 1)
 *
 * OBS holds raw observations in the observation input's dtype, row after row. Timing results are one JSON line
 * on stdout; any failure is one line on stderr and exit status 1.
 */
#define _POSIX_C_SOURCE 199309L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sbif.h"

#define MAX_OUTPUTS 16

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "sbif-bench: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 1;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int parse_long(const char *text, long minimum, long *out) {
    char *end;
    errno = 0;
    *out = strtol(text, &end, 10);
    return errno == 0 && end != text && *end == '\0' && *out >= minimum ? 0 : -1;
}

static int parse_seconds(const char *text, double *out) {
    char *end;
    *out = strtod(text, &end);
    return end != text && *end == '\0' && *out >= 0.0 ? 0 : -1;
}

/* A whole file in memory (free it); NULL on failure. */
static unsigned char *read_file(const char *path, size_t *size) {
    FILE *file = fopen(path, "rb");
    unsigned char *data = NULL;
    long length;
    if (!file) return NULL;
    if (fseek(file, 0, SEEK_END) == 0 && (length = ftell(file)) >= 0 && fseek(file, 0, SEEK_SET) == 0) {
        data = malloc(length ? (size_t)length : 1);
        if (data && fread(data, 1, (size_t)length, file) != (size_t)length) {
            free(data);
            data = NULL;
        }
        *size = (size_t)length;
    }
    fclose(file);
    return data;
}

static size_t row_elements(const sbif_value_info *info) {
    size_t count = 1;
    int axis;
    for (axis = 1; axis < info->rank; axis++) count *= (size_t)info->shape[axis];
    return count;
}

/* A graph input with its batch dimension set to `batch` and its data at `data`. */
static sbif_named_tensor feed_of(const sbif_value_info *info, int64_t batch, void *data) {
    sbif_named_tensor feed;
    int axis;
    feed.name = info->name;
    feed.tensor.dtype = info->dtype;
    feed.tensor.rank = info->rank;
    for (axis = 0; axis < info->rank; axis++) feed.tensor.shape[axis] = axis == 0 ? batch : info->shape[axis];
    feed.tensor.data = data;
    return feed;
}

/* ---- the model as the benchmark drives it ------------------------------------------------------------------ */

typedef struct bench {
    sbif_model *model;
    sbif_workspace *workspace;
    sbif_value_info observation, state, mask;
    int recurrent;
    const char *action, *state_output;
    unsigned char *observations; /* the OBS file */
    size_t rows, row_bytes;
    sbif_error error;
} bench;

static const char *document_string(const sbif_json *object, const char *key) {
    return sbif_json_string(sbif_json_get(object, key));
}

static int input_of_kind(const sbif_model *model, const char *kind, sbif_value_info *found) {
    size_t index, matches = 0;
    sbif_value_info info;
    for (index = 0; index < sbif_model_input_count(model); index++) {
        if (sbif_model_input(model, index, &info) == 0 && strcmp(info.kind, kind) == 0) {
            *found = info;
            matches++;
        }
    }
    return (int)matches;
}

static int bench_open(bench *b, const char *model_path, const char *observations_path) {
    const sbif_json *predict, *recurrent;
    size_t size = 0;
    memset(b, 0, sizeof *b);
    if (sbif_model_load(model_path, &b->model, &b->error) != SBIF_OK) return fail(model_path, b->error.message);
    if (sbif_workspace_new(b->model, &b->workspace, &b->error) != SBIF_OK) return fail("workspace", b->error.message);
    if (input_of_kind(b->model, "observation", &b->observation) != 1)
        return fail(model_path, "the benchmark drives models with exactly one observation input");
    predict = sbif_json_get(sbif_model_document(b->model), "predict");
    b->action = document_string(predict, "deterministic_action");
    recurrent = sbif_json_get(predict, "recurrent");
    b->recurrent = recurrent != NULL && sbif_json_type(recurrent) == SBIF_JSON_OBJECT;
    if (b->recurrent) {
        b->state_output = document_string(recurrent, "state_output");
        if (input_of_kind(b->model, "state", &b->state) != 1 || input_of_kind(b->model, "mask", &b->mask) != 1)
            return fail(model_path, "a recurrent model without one state and one mask input");
    }
    if (!b->action || (b->recurrent && !b->state_output)) return fail(model_path, "no deterministic action named");
    b->observations = read_file(observations_path, &size);
    if (!b->observations) return fail(observations_path, strerror(errno));
    b->row_bytes = row_elements(&b->observation) * sbif_dtype_size(b->observation.dtype);
    if (b->row_bytes == 0 || size % b->row_bytes != 0 || size == 0)
        return fail(observations_path, "not whole observations of the model's observation input");
    b->rows = size / b->row_bytes;
    return 0;
}

static void bench_close(bench *b) {
    free(b->observations);
    sbif_workspace_free(b->workspace);
    sbif_model_free(b->model);
}

/* A batch's recurrent feeds: zero states and masks, owned by the caller. */
typedef struct carried {
    void *state, *mask;
    size_t state_bytes;
} carried;

static int carried_new(const bench *b, size_t batch, carried *c) {
    memset(c, 0, sizeof *c);
    if (!b->recurrent) return 0;
    c->state_bytes = batch * row_elements(&b->state) * sbif_dtype_size(b->state.dtype);
    c->state = calloc(c->state_bytes ? c->state_bytes : 1, 1);
    c->mask = calloc(batch * row_elements(&b->mask) * sbif_dtype_size(b->mask.dtype) + 1, 1);
    return c->state && c->mask ? 0 : fail("out of memory", NULL);
}

static void carried_free(carried *c) {
    free(c->state);
    free(c->mask);
}

/* One workspace run of `batch` observations from `first`, fetching the action (and the state, which is copied
 * into the carried feed) then `extra` outputs; results[] are views into the workspace. */
static int run_step(bench *b, size_t first, size_t batch, carried *c, const char *const *extra, size_t n_extra,
                    sbif_tensor *results) {
    sbif_named_tensor feeds[3];
    const char *outputs[MAX_OUTPUTS];
    size_t n_feeds = 0, n_outputs = 0, index;
    feeds[n_feeds++] = feed_of(&b->observation, (int64_t)batch, b->observations + first * b->row_bytes);
    outputs[n_outputs++] = b->action;
    if (b->recurrent) {
        feeds[n_feeds++] = feed_of(&b->state, (int64_t)batch, c->state);
        feeds[n_feeds++] = feed_of(&b->mask, (int64_t)batch, c->mask);
        outputs[n_outputs++] = b->state_output;
    }
    for (index = 0; index < n_extra && n_outputs < MAX_OUTPUTS; index++) outputs[n_outputs++] = extra[index];
    if (sbif_workspace_run(b->workspace, feeds, n_feeds, outputs, n_outputs, results, &b->error) != SBIF_OK)
        return fail("run", b->error.message);
    if (b->recurrent) memcpy(c->state, results[1].data, c->state_bytes);
    return 0;
}

/* ---- check -------------------------------------------------------------------------------------------------- */

static void print_values(const char *name, sbif_dtype dtype, const void *data, size_t count) {
    size_t i;
    printf("%s %s %lu", name, sbif_dtype_name(dtype), (unsigned long)count);
    for (i = 0; i < count; i++) {
        switch (dtype) {
        case SBIF_FLOAT32: printf(" %.9g", (double)((const float *)data)[i]); break;
        case SBIF_FLOAT64: printf(" %.17g", ((const double *)data)[i]); break;
        case SBIF_INT8: printf(" %d", ((const int8_t *)data)[i]); break;
        case SBIF_INT16: printf(" %d", ((const int16_t *)data)[i]); break;
        case SBIF_INT32: printf(" %ld", (long)((const int32_t *)data)[i]); break;
        case SBIF_INT64: printf(" %lld", (long long)((const int64_t *)data)[i]); break;
        case SBIF_UINT8: case SBIF_BOOL: printf(" %u", ((const uint8_t *)data)[i]); break;
        case SBIF_UINT16: printf(" %u", ((const uint16_t *)data)[i]); break;
        }
    }
    printf("\n");
}

static void print_results(const char *const *names, size_t n, const sbif_tensor *results) {
    size_t index;
    for (index = 0; index < n; index++)
        print_values(names[index], results[index].dtype, results[index].data,
                     (size_t)sbif_tensor_count(&results[index]));
}

#ifdef SBIF_BENCH_PREDICT
/* One observation element as a float (sbif_predict's observation is float whatever the input's dtype). */
static float element_as_float(sbif_dtype dtype, const unsigned char *row, size_t i) {
    switch (dtype) {
    case SBIF_FLOAT32: return ((const float *)(const void *)row)[i];
    case SBIF_FLOAT64: return (float)((const double *)(const void *)row)[i];
    case SBIF_INT8: return (float)((const int8_t *)(const void *)row)[i];
    case SBIF_INT16: return (float)((const int16_t *)(const void *)row)[i];
    case SBIF_INT32: return (float)((const int32_t *)(const void *)row)[i];
    case SBIF_INT64: return (float)((const int64_t *)(const void *)row)[i];
    case SBIF_UINT16: return (float)((const uint16_t *)(const void *)row)[i];
    case SBIF_UINT8: case SBIF_BOOL: break;
    }
    return (float)row[i];
}

static float *observation_as_floats(const bench *b, size_t row) {
    size_t count = row_elements(&b->observation), i;
    float *values = malloc(count * sizeof *values + 1);
    if (values)
        for (i = 0; i < count; i++)
            values[i] = element_as_float(b->observation.dtype, b->observations + row * b->row_bytes, i);
    return values;
}

static int check_predict(bench *b, const unsigned char *masks) {
    sbif_policy *policy;
    size_t n_action, row, mask_bytes = sbif_dtype_size(b->mask.dtype), byte;
    float *action, *observation;
    int status = 0;
    if (sbif_policy_new(b->model, &policy, &b->error) != SBIF_OK) return fail("policy", b->error.message);
    n_action = sbif_policy_action_size(policy);
    action = malloc(n_action * sizeof *action + 1);
    for (row = 0; row < b->rows && status == 0 && action; row++) {
        observation = observation_as_floats(b, row);
        if (!observation) break;
        if (b->recurrent && masks)
            for (byte = 0; byte < mask_bytes; byte++)
                if (masks[row * mask_bytes + byte]) sbif_policy_reset(policy);
        if (sbif_predict(policy, observation, row_elements(&b->observation), action, n_action, &b->error) != SBIF_OK)
            status = fail("sbif_predict", b->error.message);
        else
            print_values("predict", SBIF_FLOAT32, action, n_action);
        free(observation);
    }
    if (!action || (status == 0 && row < b->rows)) status = fail("out of memory", NULL);
    free(action);
    sbif_policy_free(policy);
    return status;
}
#endif

static int check(bench *b, const char *mask_path, const char *const *extra, size_t n_extra) {
    sbif_tensor results[MAX_OUTPUTS];
    const char *names[MAX_OUTPUTS];
    unsigned char *masks = NULL;
    size_t n_names = 0, mask_size = 0, mask_bytes, row, index;
    carried c;
    int status = 0;
    if (n_extra + 2 > MAX_OUTPUTS) return fail("too many outputs", NULL);
    names[n_names++] = b->action;
    if (b->recurrent) names[n_names++] = b->state_output;
    for (index = 0; index < n_extra; index++) names[n_names++] = extra[index];
    if (!b->recurrent) {
        status = carried_new(b, b->rows, &c) || run_step(b, 0, b->rows, &c, extra, n_extra, results);
        if (status == 0) print_results(names, n_names, results);
    } else {
        mask_bytes = row_elements(&b->mask) * sbif_dtype_size(b->mask.dtype);
        masks = strcmp(mask_path, "-") ? read_file(mask_path, &mask_size) : NULL;
        if (!masks || mask_size != b->rows * mask_bytes)
            return fail(mask_path, "not one mask element per observation");
        if (carried_new(b, 1, &c)) status = 1;
        for (row = 0; row < b->rows && status == 0; row++) {
            memcpy(c.mask, masks + row * mask_bytes, mask_bytes);
            status = run_step(b, row, 1, &c, extra, n_extra, results);
            if (status == 0) print_results(names, n_names, results);
        }
    }
    carried_free(&c);
#ifdef SBIF_BENCH_PREDICT
    if (status == 0) status = check_predict(b, masks);
#endif
    free(masks);
    return status;
}

/* ---- timing ------------------------------------------------------------------------------------------------- */

typedef struct timed_call {
    bench *b;
    carried c;
    size_t batch;
#ifdef SBIF_BENCH_PREDICT
    sbif_policy *policy;
    float *observation, *action;
    size_t n_action;
#endif
} timed_call;

static int call_run(timed_call *call) {
    sbif_tensor results[2];
    return run_step(call->b, 0, call->batch, &call->c, NULL, 0, results);
}

#ifdef SBIF_BENCH_PREDICT
static int call_predict(timed_call *call) {
    if (sbif_predict(call->policy, call->observation, row_elements(&call->b->observation), call->action,
                     call->n_action, &call->b->error) != SBIF_OK)
        return fail("sbif_predict", call->b->error.message);
    return 0;
}
#endif

typedef int (*call_function)(timed_call *);

static void print_samples(const char *key, const double *samples, size_t n) {
    size_t i;
    printf("{\"%s\": [", key);
    for (i = 0; i < n; i++) printf("%s%.6g", i ? ", " : "", samples[i]);
    printf("]}\n");
}

/* harness.time_single's method, in C (its docstring says why blocks) */
static int time_single(call_function function, timed_call *call, long calls, long warmup, double block_seconds,
                       long max_block) {
    double started, per_call, *samples;
    long i, block, blocks, sample;
    for (i = 0; i < warmup; i++)
        if (function(call)) return 1;
    started = now_seconds();
    for (i = 0; i < 8; i++)
        if (function(call)) return 1;
    per_call = (now_seconds() - started) / 8;
    block = (long)(block_seconds / (per_call > 1e-9 ? per_call : 1e-9));
    block = block < 1 ? 1 : block > max_block ? max_block : block;
    blocks = (calls + block - 1) / block;
    blocks = blocks < 1 ? 1 : blocks;
    samples = malloc((size_t)blocks * sizeof *samples);
    if (!samples) return fail("out of memory", NULL);
    for (sample = 0; sample < blocks; sample++) {
        started = now_seconds();
        for (i = 0; i < block; i++)
            if (function(call)) {
                free(samples);
                return 1;
            }
        samples[sample] = (now_seconds() - started) / (double)block * 1e6;
    }
    print_samples("us", samples, (size_t)blocks);
    free(samples);
    return 0;
}

/* harness.time_batch's method, in C */
static int time_batch(timed_call *call, double budget, long min_calls, long max_calls) {
    double started, spent = 0.0, *samples = malloc((size_t)(max_calls > 0 ? max_calls : 1) * sizeof *samples);
    long n = 0;
    if (!samples) return fail("out of memory", NULL);
    if (call_run(call)) {
        free(samples);
        return 1;
    }
    while (n < max_calls && (n < min_calls || spent < budget)) {
        started = now_seconds();
        if (call_run(call)) {
            free(samples);
            return 1;
        }
        samples[n] = now_seconds() - started;
        spent += samples[n++];
    }
    print_samples("s", samples, (size_t)n);
    free(samples);
    return 0;
}

static const char *const USAGE =
    "usage: sbif-bench features | check MODEL OBS MASK|- [OUTPUT...] | single|predict MODEL OBS CALLS WARMUP "
    "BLOCK_SECONDS MAX_BLOCK | batch MODEL OBS SIZE BUDGET_SECONDS MIN_CALLS MAX_CALLS [THREADS]";

int main(int argc, char **argv) {
    bench b;
    timed_call call;
    long calls, warmup, max_block, size, min_calls, max_calls, threads = 1;
    double seconds;
    int status;
    if (argc == 2 && strcmp(argv[1], "features") == 0) {
#ifdef SBIF_BENCH_PREDICT
        puts("predict");
#endif
        if (sbif_threads_available()) puts("threads");
        return 0;
    }
    if (argc < 5) return fail(USAGE, NULL);
    if (bench_open(&b, argv[2], argv[3])) {
        bench_close(&b);
        return 1;
    }
    memset(&call, 0, sizeof call);
    call.b = &b;
    if (strcmp(argv[1], "check") == 0) {
        status = check(&b, argv[4], (const char *const *)argv + 5, (size_t)(argc - 5));
    } else if ((strcmp(argv[1], "single") == 0 || strcmp(argv[1], "predict") == 0) && argc == 8) {
        if (parse_long(argv[4], 1, &calls) || parse_long(argv[5], 0, &warmup) || parse_seconds(argv[6], &seconds) ||
            parse_long(argv[7], 1, &max_block)) {
            status = fail(USAGE, NULL);
        } else if (strcmp(argv[1], "single") == 0) {
            call.batch = 1;
            status = carried_new(&b, 1, &call.c) || time_single(call_run, &call, calls, warmup, seconds, max_block);
            carried_free(&call.c);
        } else {
#ifdef SBIF_BENCH_PREDICT
            status = sbif_policy_new(b.model, &call.policy, &b.error) != SBIF_OK ? fail("policy", b.error.message) : 0;
            if (status == 0) {
                call.n_action = sbif_policy_action_size(call.policy);
                call.observation = observation_as_floats(&b, 0);
                call.action = malloc(call.n_action * sizeof *call.action + 1);
                status = call.observation && call.action
                             ? time_single(call_predict, &call, calls, warmup, seconds, max_block)
                             : fail("out of memory", NULL);
            }
            free(call.observation);
            free(call.action);
            sbif_policy_free(call.policy);
#else
            status = fail("built without sbif_predict", NULL);
#endif
        }
    } else if (strcmp(argv[1], "batch") == 0 && (argc == 8 || argc == 9)) {
        if (parse_long(argv[4], 1, &size) || parse_seconds(argv[5], &seconds) || parse_long(argv[6], 0, &min_calls) ||
            parse_long(argv[7], 1, &max_calls) || (argc == 9 && (parse_long(argv[8], 1, &threads) || threads > SBIF_MAX_THREADS))) {
            status = fail(USAGE, NULL);
        } else if ((size_t)size > b.rows) {
            status = fail(argv[3], "fewer observations than the batch");
        } else if (sbif_workspace_set_threads(b.workspace, (int)threads, &b.error) != SBIF_OK) {
            status = fail("threads", b.error.message);
        } else {
            call.batch = (size_t)size;
            status = carried_new(&b, call.batch, &call.c) || time_batch(&call, seconds, min_calls, max_calls);
            carried_free(&call.c);
        }
    } else {
        status = fail(USAGE, NULL);
    }
    bench_close(&b);
    return status;
}
