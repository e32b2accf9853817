/*
 * sbif-protocol: the C runtime as a conformance-protocol executable (spec/conformance-protocol.md).
 *
 *     sbif conformance run --runtime runtimes/c/build/sbif-protocol --golden conformance/golden
 *
 * One JSON request per line on stdin, one answer per line on stdout; nothing else is written to stdout. It answers
 * hello, run, op, load and shutdown; predict requests are skipped (SB2's predict conventions are left to the harness).
 * A load that fails names the reader's error class (FileFormatError, DocumentError, UnsupportedError). Models are
 * cached by path, size and modification time.
 */
#define _POSIX_C_SOURCE 200809L /* stat, for the model cache */

#include "sbif.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define RUNTIME_NAME "sbif-c"
#define PROTOCOL_VERSION 1
/** Requests longer than this are refused, as by the Python server (conformance/protocol.py MAX_LINE_BYTES): a batch
 * of 32 Atari frames is about 4 MB of JSON, and parsing takes at most 12 bytes of memory per byte of text. */
#define MAX_LINE_BYTES ((size_t)1 << 26)
/** The longest number literal a request may hold, as in the Python server (sbif/cli.py MAX_NUMBER_CHARS): a double
 * needs at most 24 characters and an int64 20. */
#define MAX_NUMBER_CHARS 100
/** The most outputs one op request may ask for. */
#define MAX_OP_OUTPUTS 65536
#define CACHE_SIZE 16

#ifdef __VERSION__
#define LANGUAGE "c99 (" __VERSION__ ")"
#else
#define LANGUAGE "c99"
#endif

/* ---- a growable output line ---- */

typedef struct text {
    char *data;
    size_t length, capacity;
    int failed; /* an allocation failed: the line is incomplete */
} text;

static int text_reserve(text *t, size_t extra) {
    size_t capacity;
    char *grown;
    if (t->failed) return -1;
    if (t->length + extra + 1 <= t->capacity) return 0;
    capacity = t->capacity ? t->capacity : 256;
    while (capacity < t->length + extra + 1) capacity *= 2;
    grown = realloc(t->data, capacity);
    if (grown == NULL) {
        t->failed = 1;
        return -1;
    }
    t->data = grown;
    t->capacity = capacity;
    return 0;
}

static void text_add(text *t, const char *s, size_t n) {
    if (text_reserve(t, n) != 0) return;
    memcpy(t->data + t->length, s, n);
    t->length += n;
    t->data[t->length] = '\0';
}

static void text_put(text *t, const char *s) {
    text_add(t, s, strlen(s));
}

static void text_printf(text *t, const char *format, ...) {
    char buffer[64];
    va_list args;
    int n;
    va_start(args, format);
    n = vsnprintf(buffer, sizeof buffer, format, args);
    va_end(args);
    if (n > 0) text_add(t, buffer, (size_t)n < sizeof buffer ? (size_t)n : sizeof buffer - 1);
}

/** The length of a valid UTF-8 sequence at s (1 to 4), or 0. */
static size_t utf8_length(const unsigned char *s, size_t available) {
    size_t need, i;
    unsigned char low = 0x80, high = 0xBF;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) need = 1;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        need = 2;
        if (s[0] == 0xE0) low = 0xA0;
        if (s[0] == 0xED) high = 0x9F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        need = 3;
        if (s[0] == 0xF0) low = 0x90;
        if (s[0] == 0xF4) high = 0x8F;
    } else return 0;
    if (available <= need || s[1] < low || s[1] > high) return 0;
    for (i = 2; i <= need; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    }
    return need + 1;
}

/** A JSON string; invalid UTF-8 (a message cut mid-character) becomes U+FFFD. */
static void text_string(text *t, const char *s, size_t n) {
    size_t i = 0;
    text_add(t, "\"", 1);
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t run = utf8_length((const unsigned char *)s + i, n - i);
        if (c == '"' || c == '\\') {
            text_add(t, "\\", 1);
            text_add(t, s + i, 1);
        } else if (c < 0x20) {
            text_printf(t, "\\u%04x", c);
        } else if (run == 0) {
            text_put(t, "\\ufffd");
            run = 1;
        } else {
            text_add(t, s + i, run);
        }
        i += run ? run : 1;
    }
    text_add(t, "\"", 1);
}

static void text_cstring(text *t, const char *s) {
    text_string(t, s, strlen(s));
}

/* ---- tensors on the wire (section 3 of the protocol) ---- */

/** Floats as the exact double they widen to (%.17g round-trips), or "nan", "inf", "-inf". */
static void text_float(text *t, double v) {
    if (isnan(v)) text_put(t, "\"nan\"");
    else if (isinf(v)) text_put(t, v > 0 ? "\"inf\"" : "\"-inf\"");
    else text_printf(t, "%.17g", v);
}

static void text_tensor(text *t, const sbif_tensor *x) {
    int64_t i, n = sbif_tensor_count(x);
    int d;
    text_put(t, "{\"dtype\":");
    text_cstring(t, sbif_dtype_name(x->dtype));
    text_put(t, ",\"shape\":[");
    for (d = 0; d < x->rank; d++) text_printf(t, "%s%" PRId64, d ? "," : "", x->shape[d]);
    text_put(t, "],\"data\":[");
    for (i = 0; i < n && !t->failed; i++) {
        if (i > 0) text_add(t, ",", 1);
        switch (x->dtype) {
        case SBIF_FLOAT32: text_float(t, ((const float *)x->data)[i]); break;
        case SBIF_FLOAT64: text_float(t, ((const double *)x->data)[i]); break;
        case SBIF_INT8: text_printf(t, "%d", ((const int8_t *)x->data)[i]); break;
        case SBIF_INT16: text_printf(t, "%d", ((const int16_t *)x->data)[i]); break;
        case SBIF_INT32: text_printf(t, "%" PRId32, ((const int32_t *)x->data)[i]); break;
        case SBIF_INT64: text_printf(t, "%" PRId64, ((const int64_t *)x->data)[i]); break;
        case SBIF_UINT8: text_printf(t, "%u", ((const uint8_t *)x->data)[i]); break;
        case SBIF_UINT16: text_printf(t, "%u", ((const uint16_t *)x->data)[i]); break;
        case SBIF_BOOL: text_put(t, ((const uint8_t *)x->data)[i] ? "true" : "false"); break;
        }
    }
    text_put(t, "]}");
}

static sbif_status input_error(sbif_error *error, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(error->message, sizeof error->message, format, args);
    va_end(args);
    error->status = SBIF_ERR_INPUT;
    return SBIF_ERR_INPUT;
}

static sbif_status out_of_memory(sbif_error *error) {
    error->status = SBIF_ERR_MEMORY;
    snprintf(error->message, sizeof error->message, "out of memory");
    return SBIF_ERR_MEMORY;
}

/** One element of `data`; returns SBIF_OK or an input error naming the bad value. */
static sbif_status decode_element(const sbif_json *v, sbif_tensor *out, int64_t k, const char *where,
                                  sbif_error *error) {
    const char *s = sbif_json_string(v);
    double real = 0.0;
    int64_t integer = 0;
    switch (out->dtype) {
    case SBIF_FLOAT32:
    case SBIF_FLOAT64:
        if (sbif_json_type(v) == SBIF_JSON_NUMBER) sbif_json_double(v, &real);
        else if (s != NULL && strcmp(s, "nan") == 0) real = NAN;
        else if (s != NULL && strcmp(s, "inf") == 0) real = INFINITY;
        else if (s != NULL && strcmp(s, "-inf") == 0) real = -INFINITY;
        else return input_error(error, "%s: element %" PRId64 " is not a float (a number, or 'nan', 'inf', '-inf')",
                                where, k);
        if (out->dtype == SBIF_FLOAT32) ((float *)out->data)[k] = (float)real;
        else ((double *)out->data)[k] = real;
        return SBIF_OK;
    case SBIF_BOOL:
        if (sbif_json_type(v) != SBIF_JSON_TRUE && sbif_json_type(v) != SBIF_JSON_FALSE) {
            return input_error(error, "%s: bool tensors hold true/false", where);
        }
        ((uint8_t *)out->data)[k] = sbif_json_type(v) == SBIF_JSON_TRUE;
        return SBIF_OK;
    default:
        if (sbif_json_int64(v, &integer) != 0 || !sbif_dtype_holds_integer(out->dtype, integer)) {
            return input_error(error, "%s: element %" PRId64 " is not a %s value", where, k,
                               sbif_dtype_name(out->dtype));
        }
        switch (out->dtype) {
        case SBIF_INT8: ((int8_t *)out->data)[k] = (int8_t)integer; break;
        case SBIF_INT16: ((int16_t *)out->data)[k] = (int16_t)integer; break;
        case SBIF_INT32: ((int32_t *)out->data)[k] = (int32_t)integer; break;
        case SBIF_INT64: ((int64_t *)out->data)[k] = integer; break;
        case SBIF_UINT8: ((uint8_t *)out->data)[k] = (uint8_t)integer; break;
        default: ((uint16_t *)out->data)[k] = (uint16_t)integer; break;
        }
        return SBIF_OK;
    }
}

/** `{"dtype", "shape", "data"}` into a tensor whose data the caller releases. Allocation is bounded by the number of
 * elements actually present in the request. */
static sbif_status decode_tensor(const sbif_json *v, const char *where, sbif_tensor *out, sbif_error *error) {
    const sbif_json *dtype = sbif_json_get(v, "dtype"), *shape = sbif_json_get(v, "shape");
    const sbif_json *data = sbif_json_get(v, "data"), *item;
    int64_t count = 1, k;
    int empty = 0;
    size_t i;
    memset(out, 0, sizeof *out);
    if (sbif_json_type(v) != SBIF_JSON_OBJECT || sbif_json_size(v) != 3 || dtype == NULL || shape == NULL
        || data == NULL) {
        return input_error(error, "%s: a tensor is an object with exactly dtype, shape and data", where);
    }
    if (sbif_json_string(dtype) == NULL || sbif_dtype_parse(sbif_json_string(dtype), &out->dtype) != 0) {
        return input_error(error, "%s: unknown dtype", where);
    }
    if (sbif_json_type(shape) != SBIF_JSON_ARRAY || sbif_json_size(shape) > SBIF_MAX_RANK) {
        return input_error(error, "%s: shape must be a list of at most %d non-negative integers", where, SBIF_MAX_RANK);
    }
    out->rank = (int)sbif_json_size(shape);
    for (i = 0, item = sbif_json_first(shape); i < sbif_json_size(shape); i++, item = sbif_json_next(item)) {
        if (sbif_json_int64(item, &out->shape[i]) != 0 || out->shape[i] < 0) {
            return input_error(error, "%s: shape must be a list of non-negative integers", where);
        }
        if (out->shape[i] == 0) empty = 1;
        else if (count >= 0 && count > INT64_MAX / out->shape[i]) count = -1;
        else if (count >= 0) count *= out->shape[i];
    }
    if (empty) count = 0; /* an empty tensor, whatever its other dimensions */
    if (sbif_json_type(data) != SBIF_JSON_ARRAY || count < 0 || (uint64_t)count != (uint64_t)sbif_json_size(data)) {
        return input_error(error, "%s: the shape needs %s%" PRId64 " elements, got %lu", where, count < 0 ? "more "
                           "than " : "",
                           count < 0 ? INT64_MAX : count, (unsigned long)sbif_json_size(data));
    }
    out->data = malloc(count > 0 ? (size_t)count * sbif_dtype_size(out->dtype) : 1);
    if (out->data == NULL) return out_of_memory(error);
    for (k = 0, item = sbif_json_first(data); k < count; k++, item = sbif_json_next(item)) {
        if (decode_element(item, out, k, where, error) != SBIF_OK) {
            sbif_tensor_release(out);
            return SBIF_ERR_INPUT;
        }
    }
    return SBIF_OK;
}

/* ---- the model cache ---- */

typedef struct cached_model {
    char *path;
    struct stat identity;
    sbif_model *model;
} cached_model;

static cached_model cache[CACHE_SIZE];
static size_t cache_count;

static void cache_drop(size_t index) {
    free(cache[index].path);
    sbif_model_free(cache[index].model);
    memmove(&cache[index], &cache[index + 1], (cache_count - index - 1) * sizeof cache[0]);
    cache_count--;
}

static int same_file(const struct stat *a, const struct stat *b) {
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/** The model at `path`, loaded once per (path, file identity, size, modification time). */
static sbif_status cached_load(const char *path, const sbif_model **model, sbif_error *error) {
    struct stat identity;
    sbif_model *loaded;
    size_t i;
    if (stat(path, &identity) != 0) {
        /* let the loader say why the file cannot be read; one that appears meanwhile is not trusted either */
        if (sbif_model_load(path, &loaded, error) != SBIF_OK) return error->status;
        sbif_model_free(loaded);
        return input_error(error, "%s changed while it was read", path);
    }
    for (i = 0; i < cache_count; i++) {
        if (strcmp(cache[i].path, path) != 0) continue;
        if (same_file(&cache[i].identity, &identity)) {
            *model = cache[i].model;
            return SBIF_OK;
        }
        cache_drop(i);
        break;
    }
    if (sbif_model_load(path, &loaded, error) != SBIF_OK) return error->status;
    if (cache_count == CACHE_SIZE) cache_drop(0);
    cache[cache_count].path = malloc(strlen(path) + 1);
    if (cache[cache_count].path == NULL) {
        sbif_model_free(loaded);
        return out_of_memory(error);
    }
    strcpy(cache[cache_count].path, path);
    cache[cache_count].identity = identity;
    cache[cache_count].model = loaded;
    *model = cache[cache_count++].model;
    return SBIF_OK;
}

/* ---- requests ---- */

static void answer_start(text *out, const sbif_json *id, const char *type) {
    text_put(out, "{\"id\":");
    if (id != NULL && sbif_json_type(id) == SBIF_JSON_NUMBER) {
        size_t n;
        const char *literal = sbif_json_number_text(id, &n);
        text_add(out, literal, n);
    } else if (id != NULL && sbif_json_type(id) == SBIF_JSON_STRING) {
        text_string(out, sbif_json_string(id), sbif_json_size(id));
    } else {
        text_put(out, "null");
    }
    text_put(out, ",\"type\":");
    text_cstring(out, type);
}

/** An errored answer, its message prefixed with the status name; with `error_class` for a refusal of a file. */
static void answer_errored(text *out, const sbif_json *id, const sbif_error *error, int with_class) {
    char message[sizeof error->message + 32];
    snprintf(message, sizeof message, "%s: %s", sbif_status_name(error->status), error->message);
    answer_start(out, id, "errored");
    text_put(out, ",\"message\":");
    text_cstring(out, message);
    if (with_class) {
        text_put(out, ",\"error_class\":");
        text_cstring(out, sbif_status_name(error->status));
    }
}

/** skipped (the runtime does not support something: an op, a format version) or errored. */
static void answer_failure(text *out, const sbif_json *id, const sbif_error *error) {
    out->length = 0;
    out->failed = 0;
    if (error->status == SBIF_ERR_UNSUPPORTED) {
        answer_start(out, id, "skipped");
        text_put(out, ",\"reason\":");
        text_cstring(out, error->message);
    } else {
        answer_errored(out, id, error, 0);
    }
    text_put(out, "}");
}

/** A load that failed: errored, with the error class when the reader refused the file (SPEC section 7: an unsupported
 * version or op is a refusal here, not a skip); a malformed request or lack of memory has no class. */
static void answer_refusal(text *out, const sbif_json *id, const sbif_error *error) {
    out->length = 0;
    out->failed = 0;
    answer_errored(out, id, error, error->status == SBIF_ERR_FILE_FORMAT || error->status == SBIF_ERR_DOCUMENT ||
                   error->status == SBIF_ERR_UNSUPPORTED);
    text_put(out, "}");
}

static int name_order(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/** Refuse a list that names one output twice (the answer maps names to tensors). */
static sbif_status unique_names(const char **names, size_t n, sbif_error *error) {
    const char **sorted = malloc((n + 1) * sizeof *sorted);
    size_t i;
    sbif_status status = SBIF_OK;
    if (sorted == NULL) return out_of_memory(error);
    memcpy((void *)sorted, (const void *)names, n * sizeof *sorted);
    qsort((void *)sorted, n, sizeof *sorted, name_order);
    for (i = 1; i < n && status == SBIF_OK; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) status = input_error(error, "output '%.80s' is requested twice",
                                                                        sorted[i]);
    }
    free((void *)sorted);
    return status;
}

static sbif_status handle_run(const sbif_json *request, const sbif_json *id, text *out, sbif_error *error) {
    const sbif_json *path = sbif_json_get(request, "model"), *inputs = sbif_json_get(request, "inputs");
    const sbif_json *outputs = sbif_json_get(request, "outputs"), *item;
    const sbif_model *model = NULL;
    sbif_named_tensor *feeds = NULL;
    sbif_tensor *results = NULL;
    const char **names = NULL;
    size_t i, n_feeds = 0, n_outputs;
    sbif_status status = SBIF_OK;
    if (path == NULL || sbif_json_string(path) == NULL) {
        return input_error(error, "run requests name the model file in 'model'");
    }
    if (inputs == NULL || sbif_json_type(inputs) != SBIF_JSON_OBJECT) {
        return input_error(error, "run requests carry 'inputs', an object of tensors");
    }
    if (outputs == NULL || sbif_json_type(outputs) != SBIF_JSON_ARRAY) {
        return input_error(error, "run requests list the wanted output names in 'outputs'");
    }
    n_outputs = sbif_json_size(outputs);
    names = malloc((n_outputs + 1) * sizeof *names);
    results = calloc(n_outputs + 1, sizeof *results);
    feeds = calloc(sbif_json_size(inputs) + 1, sizeof *feeds);
    if (names == NULL || results == NULL || feeds == NULL) status = out_of_memory(error);
    for (i = 0, item = sbif_json_first(outputs); status == SBIF_OK && i < n_outputs; i++, item = sbif_json_next(item)) {
        if ((names[i] = sbif_json_string(item)) == NULL || strlen(names[i]) != sbif_json_size(item)) {
            status = input_error(error, "run requests list the wanted output names in 'outputs'");
        }
    }
    if (status == SBIF_OK) status = unique_names(names, n_outputs, error);
    if (status == SBIF_OK) status = cached_load(sbif_json_string(path), &model, error);
    for (item = sbif_json_first(inputs); status == SBIF_OK && n_feeds < sbif_json_size(inputs);
         item = sbif_json_next(item)) {
        char where[160];
        snprintf(where, sizeof where, "inputs.%.80s", sbif_json_string(item));
        feeds[n_feeds].name = sbif_json_string(item);
        if (strlen(feeds[n_feeds].name) != sbif_json_size(item)) {
            status = input_error(error, "input names may not contain U+0000");
            break;
        }
        status = decode_tensor(sbif_json_value(item), where, &feeds[n_feeds].tensor, error);
        if (status == SBIF_OK) n_feeds++;
    }
    if (status == SBIF_OK) status = sbif_model_run(model, feeds, n_feeds, names, n_outputs, results, error);
    if (status == SBIF_OK) {
        answer_start(out, id, "result");
        text_put(out, ",\"outputs\":{");
        for (i = 0; i < n_outputs; i++) {
            if (i > 0) text_add(out, ",", 1);
            text_cstring(out, names[i]);
            text_add(out, ":", 1);
            text_tensor(out, &results[i]);
            sbif_tensor_release(&results[i]);
        }
        text_put(out, "}}");
    }
    for (i = 0; i < n_feeds; i++) sbif_tensor_release(&feeds[i].tensor);
    free(feeds);
    free(results);
    free((void *)names);
    return status;
}

/** Read and validate a file (through the cache, so a later run reuses it); nothing else. */
static sbif_status handle_load(const sbif_json *request, const sbif_json *id, text *out, sbif_error *error) {
    const sbif_json *path = sbif_json_get(request, "model");
    const sbif_model *model = NULL;
    sbif_status status;
    if (path == NULL || sbif_json_string(path) == NULL || strlen(sbif_json_string(path)) != sbif_json_size(path)) {
        return input_error(error, "load requests name the model file in 'model'");
    }
    status = cached_load(sbif_json_string(path), &model, error);
    if (status == SBIF_OK) {
        answer_start(out, id, "loaded");
        text_put(out, "}");
    }
    return status;
}

static sbif_status handle_op(const sbif_json *request, const sbif_json *id, text *out, sbif_error *error) {
    const sbif_json *op = sbif_json_get(request, "op"), *inputs = sbif_json_get(request, "inputs");
    const sbif_json *attrs = sbif_json_get(request, "attrs"), *count = sbif_json_get(request, "n_outputs"), *item;
    sbif_tensor *given = NULL, *results = NULL;
    int64_t n_outputs = 1;
    size_t i, n_given = 0;
    sbif_status status = SBIF_OK;
    if (op == NULL || sbif_json_string(op) == NULL || inputs == NULL || sbif_json_type(inputs) != SBIF_JSON_ARRAY) {
        return input_error(error, "op requests need 'op' (a name) and 'inputs' (a list of tensors)");
    }
    if (attrs != NULL && sbif_json_type(attrs) == SBIF_JSON_NULL) attrs = NULL;
    if (attrs != NULL && sbif_json_type(attrs) != SBIF_JSON_OBJECT) return input_error(error, "op request attrs must "
                                                                                       "be an object");
    if (count != NULL && (sbif_json_int64(count, &n_outputs) != 0 || n_outputs < 1 || n_outputs > MAX_OP_OUTPUTS)) {
        return input_error(error, "n_outputs must be an integer from 1 to %d", MAX_OP_OUTPUTS);
    }
    given = calloc(sbif_json_size(inputs) + 1, sizeof *given);
    results = calloc((size_t)n_outputs, sizeof *results);
    if (given == NULL || results == NULL) status = out_of_memory(error);
    for (item = sbif_json_first(inputs); status == SBIF_OK
         && n_given < sbif_json_size(inputs); item = sbif_json_next(item)) {
        char where[32];
        snprintf(where, sizeof where, "inputs[%lu]", (unsigned long)n_given);
        status = decode_tensor(item, where, &given[n_given], error);
        if (status == SBIF_OK) n_given++;
    }
    if (status == SBIF_OK) {
        status = sbif_op_run(sbif_json_string(op), attrs, given, n_given, (size_t)n_outputs, results, error);
    }
    if (status == SBIF_OK) {
        answer_start(out, id, "result");
        text_put(out, ",\"outputs\":{");
        for (i = 0; i < (size_t)n_outputs; i++) {
            text_printf(out, "%s\"%lu\":", i ? "," : "", (unsigned long)i);
            text_tensor(out, &results[i]);
            sbif_tensor_release(&results[i]);
        }
        text_put(out, "}}");
    }
    for (i = 0; i < n_given; i++) sbif_tensor_release(&given[i]);
    free(given);
    free(results);
    return status;
}

static void hello(text *out) {
    size_t i, n;
    const char *const *ops = sbif_op_names(&n);
    text_put(out,
             "{\"type\":\"hello\",\"protocol\":1,\"runtime\":{\"name\":\"" RUNTIME_NAME "\",\"version\":\"" SBIF_VERSION
                  "\",\"language\":");
    text_cstring(out, LANGUAGE);
    text_put(out, "},\"features\":[\"run\",\"op\",\"recurrent\",\"sampling\",\"load\"],\"ops\":[");
    for (i = 0; i < n; i++) {
        if (i > 0) text_add(out, ",", 1);
        text_cstring(out, ops[i]);
    }
    text_put(out, "]}");
}

/** Refuse a number literal longer than MAX_NUMBER_CHARS anywhere in a request (the parser bounds nesting, so the
 * recursion is at most its depth). */
static sbif_status bounded_numbers(const sbif_json *value, sbif_error *error) {
    const sbif_json *item;
    size_t i, length;
    const char *literal;
    switch (sbif_json_type(value)) {
    case SBIF_JSON_NUMBER:
        literal = sbif_json_number_text(value, &length);
        if (length <= MAX_NUMBER_CHARS) return SBIF_OK;
        return input_error(error, "the number %.12s...(%lu characters) is longer than %d characters", literal,
                           (unsigned long)length, MAX_NUMBER_CHARS);
    case SBIF_JSON_ARRAY:
        for (i = 0, item = sbif_json_first(value); i < sbif_json_size(value); i++, item = sbif_json_next(item)) {
            if (bounded_numbers(item, error) != SBIF_OK) return SBIF_ERR_INPUT;
        }
        return SBIF_OK;
    case SBIF_JSON_OBJECT:
        for (i = 0, item = sbif_json_first(value); i < sbif_json_size(value); i++, item = sbif_json_next(item)) {
            if (bounded_numbers(sbif_json_value(item), error) != SBIF_OK) return SBIF_ERR_INPUT;
        }
        return SBIF_OK;
    default:
        return SBIF_OK;
    }
}

/** Answer one request line into `out`; returns 1 after a shutdown request. */
static int handle_line(const char *line, size_t length, text *out) {
    sbif_json *request = NULL;
    const sbif_json *id = NULL;
    const char *type;
    sbif_error error;
    sbif_status status;
    int shutdown = 0, load = 0;
    out->length = 0;
    out->failed = 0;
    status = sbif_json_parse(line, length, &request, &error);
    if (status == SBIF_OK && sbif_json_type(request) != SBIF_JSON_OBJECT) {
        status = input_error(&error, "a message is a JSON object");
    }
    if (status == SBIF_OK) status = bounded_numbers(request, &error);
    if (status != SBIF_OK) {
        char message[sizeof error.message];
        memcpy(message, error.message, sizeof message);
        input_error(&error, "malformed request: %s", message);
        answer_failure(out, NULL, &error);
        sbif_json_free(request);
        return 0;
    }
    id = sbif_json_get(request, "id");
    type = sbif_json_get(request, "type") != NULL ? sbif_json_string(sbif_json_get(request, "type")) : NULL;
    if (type != NULL && strcmp(type, "hello") == 0) {
        hello(out);
    } else if (type != NULL && strcmp(type, "shutdown") == 0) {
        text_put(out, "{\"type\":\"bye\"}");
        shutdown = 1;
    } else if (type != NULL && strcmp(type, "run") == 0) {
        status = handle_run(request, id, out, &error);
    } else if (type != NULL && strcmp(type, "op") == 0) {
        status = handle_op(request, id, out, &error);
    } else if (type != NULL && strcmp(type, "load") == 0) {
        load = 1;
        status = handle_load(request, id, out, &error);
    } else if (type != NULL && strcmp(type, "predict") == 0) {
        error.status = status = SBIF_ERR_UNSUPPORTED;
        snprintf(error.message, sizeof error.message, RUNTIME_NAME " does not implement predict requests (feature "
                 "'predict'): SB2's predict conventions are applied by the harness");
    } else {
        status = input_error(&error, "unknown request type");
    }
    if (status == SBIF_OK && out->failed) status = out_of_memory(&error);
    if (status != SBIF_OK && load) answer_refusal(out, id, &error);
    else if (status != SBIF_OK) answer_failure(out, id, &error);
    sbif_json_free(request);
    return shutdown;
}

/** The next line of stdin (without its newline) in *line; 0 at end of input. A line longer than the limit is
 * consumed and reported with *too_long. */
static int read_line(char **line, size_t *length, size_t *capacity, int *too_long) {
    int c;
    *length = 0;
    *too_long = 0;
    while ((c = getchar()) != EOF && c != '\n') {
        if (*too_long) continue;
        if (*length + 1 >= *capacity) {
            size_t grown = *capacity ? *capacity * 2 : 65536;
            char *bigger = grown > MAX_LINE_BYTES ? NULL : realloc(*line, grown);
            if (bigger == NULL) {
                *too_long = 1;
                continue;
            }
            *line = bigger;
            *capacity = grown;
        }
        (*line)[(*length)++] = (char)c;
    }
    return c != EOF || *length > 0 || *too_long;
}

static int blank(const char *line, size_t length) {
    size_t i;
    for (i = 0; i < length; i++) {
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') return 0;
    }
    return 1;
}

int main(void) {
    char *line = NULL;
    size_t length, capacity = 0;
    int too_long, shutdown = 0;
    text out = {NULL, 0, 0, 0};
    while (!shutdown && read_line(&line, &length, &capacity, &too_long)) {
        if (too_long) {
            sbif_error error;
            input_error(&error, "malformed request: a request line is longer than this runtime accepts (or memory "
                        "ran out)");
            answer_failure(&out, NULL, &error);
        } else if (blank(line, length)) {
            continue;
        } else {
            shutdown = handle_line(line, length, &out);
        }
        if (out.data != NULL) {
            fwrite(out.data, 1, out.length, stdout);
            fputc('\n', stdout);
            fflush(stdout);
        }
    }
    while (cache_count > 0) cache_drop(cache_count - 1);
    free(line);
    free(out.data);
    return 0;
}
