/*
 * sbif.c: the SBIF runtime (see sbif.h and README.md); the float32 products of linear, matmul and conv2d run in
 * sbif_kernels.c.
 *
 * Sections: errors and checked arithmetic; JSON; names; the safetensors container; static types and the op
 * table (attributes, dtype/shape rules); kernels; document validation; the graph executor and workspaces; single
 * ops.
 *
 * Float32 semantics follow spec/ops.md: every element-wise step is rounded to the value's dtype (no fused
 * multiply-add: build with -ffp-contract=off), and the other sums (float64 products, means, softmax, layer_norm)
 * are accumulated in double and rounded to the dtype once, which the spec allows (summation order is free). The
 * float32 products accumulate in float32 in the kernels' order, fused where the target has FMA, which spec/ops.md
 * allows for those sums alone.
 */
#include "sbif.h"
#include "sbif_kernels.h"
#include "sbif_pool.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/** The largest safetensors header accepted, as the safetensors reference implementation (100 MiB). */
#define MAX_HEADER_BYTES ((uint64_t)100 * 1024 * 1024)
/** The deepest JSON nesting accepted. */
#define JSON_MAX_DEPTH 512
/** The longest JSON text accepted (node offsets are 32-bit). */
#define JSON_MAX_BYTES ((size_t)1 << 31)
/** Graph value names are at most this many characters (the schema's limit). */
#define MAX_NAME_CHARS 512
/** The largest single value one request may make, in bytes: a batch whose values would need more is refused before
 * anything is allocated (SPEC section 5.8). */
#ifndef SBIF_MAX_VALUE_BYTES
#define SBIF_MAX_VALUE_BYTES ((int64_t)1 << 32)
#endif
/** The largest value a file may declare, in bytes at batch 1 with zero dimensions counted as 1 (SPEC section 3.5). */
#define MAX_STATIC_VALUE_BYTES ((int64_t)1 << 28)
/** The most tensors a header lists, and the most keys its __metadata__ has (SPEC section 2). */
#define MAX_HEADER_ENTRIES 16384
/** The most JSON values an SBIF document holds, the document included (SPEC section 3): checked on its text before it
 * is parsed, so that a document of millions of tiny values costs no more than reading it. */
#define MAX_DOCUMENT_VALUES ((uint64_t)1 << 20)
/** The most nodes the graph has (SPEC section 3): hundreds of times a policy's; it bounds the static check's work. */
#define MAX_GRAPH_NODES 16384
#define MAX_DIM_TEXT "9223372036854775807"
/** The format versions this reader implements (SPEC section 8): version 1 (SB2) and version 2 (adds
 * Stable-Baselines3's predict contract); each has its own schema, which check_structure hand-codes. */
#define FORMAT_VERSION_1 1
#define FORMAT_VERSION_2 2
#define FORMAT_VERSIONS_TEXT "versions 1 and 2"
/** The observation input's name (SPEC section 3.2); a dict observation space's inputs are named the prefix + a key. */
#define OBSERVATION_INPUT "obs"
#define DICT_INPUT_PREFIX "obs/"
/** The most characters of a list a message quotes before "...", as the reference's preview() (sbif/errors.py). */
#define PREVIEW_CHARS 80

#if defined(__GNUC__)
#define PRINTF_LIKE(format_index, first_arg) __attribute__((format(printf, format_index, first_arg)))
#else
#define PRINTF_LIKE(format_index, first_arg)
#endif

/* ==== errors ====================================================================================================== */

const char *sbif_status_name(sbif_status status) {
    switch (status) {
    case SBIF_OK: return "ok";
    case SBIF_ERR_FILE_FORMAT: return "FileFormatError";
    case SBIF_ERR_DOCUMENT: return "DocumentError";
    case SBIF_ERR_UNSUPPORTED: return "UnsupportedError";
    case SBIF_ERR_INPUT: return "InputError";
    case SBIF_ERR_MEMORY: return "MemoryError";
    }
    return "UnknownError";
}

/** Keep messages on one line: control characters (from names, paths) become '?'. */
static void one_line(char *text) {
    for (; *text; text++) {
        if ((unsigned char)*text < 0x20 || *text == 0x7f) *text = '?';
    }
}

/** Set `error` to `status` and the formatted one-line message; returns `status` (fail and type_error with their
 * arguments). */
static sbif_status vfail(sbif_error *error, sbif_status status, const char *format, va_list args) {
    vsnprintf(error->message, sizeof error->message, format, args);
    one_line(error->message);
    error->status = status;
    return status;
}

static sbif_status fail(sbif_error *error, sbif_status status, const char *format, ...) PRINTF_LIKE(3, 4);
static sbif_status fail(sbif_error *error, sbif_status status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vfail(error, status, format, args);
    va_end(args);
    return status;
}

/** Put "context: " in front of the message already in `error` (the status is kept); the result is cut to fit. */
static sbif_status add_context(sbif_error *error, const char *format, ...) PRINTF_LIKE(2, 3);
static sbif_status add_context(sbif_error *error, const char *format, ...) {
    char message[sizeof error->message];
    size_t used;
    va_list args;
    memcpy(message, error->message, sizeof message);
    va_start(args, format);
    vsnprintf(error->message, sizeof error->message, format, args);
    va_end(args);
    used = strlen(error->message);
    if (used + 2 < sizeof error->message) {
        memcpy(error->message + used, ": ", 2);
        used += 2;
        strncpy(error->message + used, message, sizeof error->message - used - 1);
        error->message[sizeof error->message - 1] = '\0';
    }
    one_line(error->message);
    return error->status;
}

static sbif_status out_of_memory(sbif_error *error) {
    return fail(error, SBIF_ERR_MEMORY, "out of memory");
}

/* ==== checked arithmetic (dimensions are non-negative int64) ====================================================== */

static int checked_mul(int64_t a, int64_t b, int64_t *out) {
    if (a != 0 && b > INT64_MAX / a) return -1;
    *out = a * b;
    return 0;
}

static int checked_add(int64_t a, int64_t b, int64_t *out) {
    if (b > INT64_MAX - a) return -1;
    *out = a + b;
    return 0;
}

/** The element count of a shape (1 for a scalar); -1 if it exceeds int64. Dimensions must be >= 0. */
static int64_t element_count(const int64_t *shape, int rank) {
    int64_t count = 1;
    int i;
    for (i = 0; i < rank; i++) {
        if (checked_mul(count, shape[i], &count) != 0) return -1;
    }
    return count;
}

/* ==== dtypes ====================================================================================================== */

static const char *const DTYPE_NAMES[SBIF_DTYPE_COUNT] = {"float32", "float64", "int8",   "int16", "int32",
                                                          "int64",   "uint8",   "uint16", "bool"};
static const size_t DTYPE_SIZES[SBIF_DTYPE_COUNT] = {4, 8, 1, 2, 4, 8, 1, 2, 1};

const char *sbif_dtype_name(sbif_dtype dtype) {
    return (unsigned)dtype < SBIF_DTYPE_COUNT ? DTYPE_NAMES[dtype] : "?";
}

size_t sbif_dtype_size(sbif_dtype dtype) {
    return (unsigned)dtype < SBIF_DTYPE_COUNT ? DTYPE_SIZES[dtype] : 0;
}

int sbif_dtype_parse(const char *name, sbif_dtype *dtype) {
    int i;
    for (i = 0; i < SBIF_DTYPE_COUNT; i++) {
        if (strcmp(name, DTYPE_NAMES[i]) == 0) {
            *dtype = (sbif_dtype)i;
            return 0;
        }
    }
    return -1;
}

int sbif_dtype_holds_integer(sbif_dtype dtype, int64_t value) {
    switch (dtype) {
    case SBIF_INT8: return value >= INT8_MIN && value <= INT8_MAX;
    case SBIF_INT16: return value >= INT16_MIN && value <= INT16_MAX;
    case SBIF_INT32: return value >= INT32_MIN && value <= INT32_MAX;
    case SBIF_UINT8: return value >= 0 && value <= UINT8_MAX;
    case SBIF_UINT16: return value >= 0 && value <= UINT16_MAX;
    default: return 1;
    }
}

static int is_float_dtype(sbif_dtype dtype) {
    return dtype == SBIF_FLOAT32 || dtype == SBIF_FLOAT64;
}

/** The integer dtypes one_hot takes (bool is not one). */
static int is_int_dtype(sbif_dtype dtype) {
    return dtype == SBIF_INT8 || dtype == SBIF_INT16 || dtype == SBIF_INT32 || dtype == SBIF_INT64 ||
           dtype == SBIF_UINT8 || dtype == SBIF_UINT16;
}

int64_t sbif_tensor_count(const sbif_tensor *tensor) {
    return element_count(tensor->shape, tensor->rank);
}

void sbif_tensor_release(sbif_tensor *tensor) {
    if (tensor == NULL) return;
    free(tensor->data);
    tensor->data = NULL;
}

/* ==== JSON ======================================================================================================== */
/*
 * A parsed text is an array of nodes in pre-order: a container's children follow it, and `span` (the node count of
 * a value's subtree) jumps over a value. Strings are decoded in place in the parser's copy of the text (a decoded
 * string is never longer than its escaped form), so a node is 24 bytes and nothing else is allocated per value.
 * Node 0 is hidden: it holds the text buffer, so the root (node 1) can free everything.
 */

enum { JSON_INTEGER_LITERAL = 1, JSON_KEY = 2 };

struct sbif_json {
    const char *str;  /* string: decoded bytes, NUL-terminated; number: literal text; node 0: the text buffer */
    uint32_t length;  /* string, number: bytes; array: elements; object: members */
    uint32_t span;    /* nodes in this value's subtree, itself included */
    uint8_t kind;     /* sbif_json_kind */
    uint8_t flags;
};

typedef struct json_parser {
    char *text;
    size_t length;
    size_t pos;
    sbif_json *nodes;
    size_t count;
    size_t capacity;
    int depth;
    int out_of_memory;
    sbif_error *error;
} json_parser;

static sbif_status json_fail(json_parser *p, const char *what) {
    return fail(p->error, SBIF_ERR_INPUT, "%s at byte %lu", what, (unsigned long)p->pos);
}

/** Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. Returns the offset of the first bad
 * byte, or `length` if the text is valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t length) {
    size_t i = 0;
    while (i < length) {
        unsigned char c = s[i];
        size_t need;
        unsigned char low = 0x80, high = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) low = 0xA0;
            if (c == 0xED) high = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) low = 0x90;
            if (c == 0xF4) high = 0x8F;
        } else return i;
        if (length - i <= need) return i;
        if (s[i + 1] < low || s[i + 1] > high) return i;
        if (need >= 2 && (s[i + 2] < 0x80 || s[i + 2] > 0xBF)) return i;
        if (need == 3 && (s[i + 3] < 0x80 || s[i + 3] > 0xBF)) return i;
        i += need + 1;
    }
    return length;
}

static size_t json_new_node(json_parser *p, sbif_json_kind kind) {
    sbif_json *node;
    if (p->count == p->capacity) {
        size_t capacity = p->capacity * 2;
        sbif_json *grown = realloc(p->nodes, capacity * sizeof *grown);
        if (grown == NULL) {
            p->out_of_memory = 1;
            return 0;
        }
        p->nodes = grown;
        p->capacity = capacity;
    }
    node = &p->nodes[p->count];
    node->str = NULL;
    node->length = 0;
    node->span = 1;
    node->kind = (uint8_t)kind;
    node->flags = 0;
    return p->count++;
}

static void json_skip_space(json_parser *p) {
    while (p->pos < p->length) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/** Four hex digits at p->pos; -1 if malformed. */
static long json_hex4(json_parser *p) {
    long value = 0;
    int i;
    if (p->length - p->pos < 4) return -1;
    for (i = 0; i < 4; i++) {
        int digit = hex_value(p->text[p->pos + (size_t)i]);
        if (digit < 0) return -1;
        value = value * 16 + digit;
    }
    p->pos += 4;
    return value;
}

static size_t put_utf8(char *out, unsigned long code) {
    if (code < 0x80) {
        out[0] = (char)code;
        return 1;
    }
    if (code < 0x800) {
        out[0] = (char)(0xC0 | (code >> 6));
        out[1] = (char)(0x80 | (code & 0x3F));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (char)(0xE0 | (code >> 12));
        out[1] = (char)(0x80 | ((code >> 6) & 0x3F));
        out[2] = (char)(0x80 | (code & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (code >> 18));
    out[1] = (char)(0x80 | ((code >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((code >> 6) & 0x3F));
    out[3] = (char)(0x80 | (code & 0x3F));
    return 4;
}

/** A string starting at the opening quote, decoded in place. */
static sbif_status json_string(json_parser *p, int is_key) {
    size_t index = json_new_node(p, SBIF_JSON_STRING);
    size_t start, write;
    if (p->out_of_memory) return out_of_memory(p->error);
    start = write = ++p->pos;
    for (;;) {
        unsigned char c;
        if (p->pos >= p->length) return json_fail(p, "unterminated string");
        c = (unsigned char)p->text[p->pos];
        if (c == '"') break;
        if (c < 0x20) return json_fail(p, "control character in a string");
        if (c != '\\') {
            p->text[write++] = p->text[p->pos++];
            continue;
        }
        if (++p->pos >= p->length) return json_fail(p, "unterminated string");
        c = (unsigned char)p->text[p->pos++];
        switch (c) {
        case '"': p->text[write++] = '"'; break;
        case '\\': p->text[write++] = '\\'; break;
        case '/': p->text[write++] = '/'; break;
        case 'b': p->text[write++] = '\b'; break;
        case 'f': p->text[write++] = '\f'; break;
        case 'n': p->text[write++] = '\n'; break;
        case 'r': p->text[write++] = '\r'; break;
        case 't': p->text[write++] = '\t'; break;
        case 'u': {
            long code = json_hex4(p);
            if (code < 0) return json_fail(p, "invalid \\u escape");
            if (code >= 0xDC00 && code <= 0xDFFF) return json_fail(p, "lone surrogate in a \\u escape");
            if (code >= 0xD800 && code <= 0xDBFF) {
                long low;
                if (p->length - p->pos < 2 || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u') {
                    return json_fail(p, "lone surrogate in a \\u escape");
                }
                p->pos += 2;
                low = json_hex4(p);
                if (low < 0xDC00 || low > 0xDFFF) return json_fail(p, "lone surrogate in a \\u escape");
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            }
            write += put_utf8(p->text + write, (unsigned long)code);
            break;
        }
        default:
            p->pos--;
            return json_fail(p, "invalid escape in a string");
        }
    }
    p->text[write] = '\0';
    p->pos++;
    p->nodes[index].str = p->text + start;
    p->nodes[index].length = (uint32_t)(write - start);
    if (is_key) p->nodes[index].flags = JSON_KEY;
    return SBIF_OK;
}

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

static sbif_status json_number(json_parser *p) {
    size_t start = p->pos;
    size_t index;
    int integer = 1;
    if (p->text[p->pos] == '-') p->pos++;
    if (p->pos >= p->length || !is_digit(p->text[p->pos])) return json_fail(p, "invalid number");
    if (p->text[p->pos] == '0') p->pos++;
    else while (p->pos < p->length && is_digit(p->text[p->pos])) p->pos++;
    if (p->pos < p->length && p->text[p->pos] == '.') {
        integer = 0;
        p->pos++;
        if (p->pos >= p->length || !is_digit(p->text[p->pos])) return json_fail(p, "invalid number");
        while (p->pos < p->length && is_digit(p->text[p->pos])) p->pos++;
    }
    if (p->pos < p->length && (p->text[p->pos] == 'e' || p->text[p->pos] == 'E')) {
        integer = 0;
        p->pos++;
        if (p->pos < p->length && (p->text[p->pos] == '+' || p->text[p->pos] == '-')) p->pos++;
        if (p->pos >= p->length || !is_digit(p->text[p->pos])) return json_fail(p, "invalid number");
        while (p->pos < p->length && is_digit(p->text[p->pos])) p->pos++;
    }
    /* strict JSON (SPEC section 1): a number with a fraction or an exponent must be finite as a double (strtod rounds
     * correctly, as every reader does, so 1e400 is refused everywhere); integer literals are kept exact */
    if (!integer && isinf(strtod(p->text + start, NULL))) {
        size_t length = p->pos - start;
        return fail(p->error, SBIF_ERR_INPUT, "the number %.*s%s at byte %lu is beyond the range of a double",
                    (int)(length > 40 ? 40 : length), p->text + start, length > 40 ? "..." : "", (unsigned long)start);
    }
    index = json_new_node(p, SBIF_JSON_NUMBER);
    if (p->out_of_memory) return out_of_memory(p->error);
    p->nodes[index].str = p->text + start;
    p->nodes[index].length = (uint32_t)(p->pos - start);
    p->nodes[index].flags = integer ? JSON_INTEGER_LITERAL : 0;
    return SBIF_OK;
}

/** Whether the text at p->pos starts with `word`. */
static int json_at(const json_parser *p, const char *word) {
    size_t n = strlen(word);
    return p->length - p->pos >= n && memcmp(p->text + p->pos, word, n) == 0;
}

static sbif_status json_literal(json_parser *p, const char *word, sbif_json_kind kind) {
    if (!json_at(p, word)) return json_fail(p, "invalid literal");
    p->pos += strlen(word);
    json_new_node(p, kind);
    return p->out_of_memory ? out_of_memory(p->error) : SBIF_OK;
}

static int json_key_order(const void *a, const void *b) {
    const sbif_json *x = *(const sbif_json *const *)a;
    const sbif_json *y = *(const sbif_json *const *)b;
    size_t n = x->length < y->length ? x->length : y->length;
    int c = memcmp(x->str, y->str, n);
    if (c != 0) return c;
    return x->length < y->length ? -1 : x->length > y->length ? 1 : 0;
}

/** Refuse an object with two equal keys (O(n log n), so a huge header cannot make this quadratic). */
static sbif_status json_check_unique_keys(json_parser *p, size_t object) {
    size_t count = p->nodes[object].length;
    const sbif_json **keys;
    size_t i, at = object + 1;
    if (count < 2) return SBIF_OK;
    keys = malloc(count * sizeof *keys);
    if (keys == NULL) return out_of_memory(p->error);
    for (i = 0; i < count; i++) {
        keys[i] = &p->nodes[at];
        at += 1 + p->nodes[at + 1].span;
    }
    qsort(keys, count, sizeof *keys, json_key_order);
    for (i = 1; i < count; i++) {
        if (json_key_order(&keys[i - 1], &keys[i]) == 0) {
            sbif_status status = fail(p->error, SBIF_ERR_INPUT, "duplicate key \"%.80s\" in an object", keys[i]->str);
            free(keys);
            return status;
        }
    }
    free(keys);
    return SBIF_OK;
}

static sbif_status json_value(json_parser *p);

static sbif_status json_container(json_parser *p, int is_object) {
    size_t index = json_new_node(p, is_object ? SBIF_JSON_OBJECT : SBIF_JSON_ARRAY);
    char close = is_object ? '}' : ']';
    uint32_t members = 0;
    sbif_status status;
    if (p->out_of_memory) return out_of_memory(p->error);
    if (++p->depth > JSON_MAX_DEPTH) return json_fail(p, "JSON nested too deeply");
    p->pos++;
    json_skip_space(p);
    if (p->pos < p->length && p->text[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            json_skip_space(p);
            if (is_object) {
                if (p->pos >= p->length || p->text[p->pos] != '"') return json_fail(p, "expected a string key");
                if ((status = json_string(p, 1)) != SBIF_OK) return status;
                json_skip_space(p);
                if (p->pos >= p->length || p->text[p->pos] != ':') return json_fail(p, "expected ':'");
                p->pos++;
            }
            if ((status = json_value(p)) != SBIF_OK) return status;
            members++;
            json_skip_space(p);
            if (p->pos < p->length && p->text[p->pos] == ',') {
                p->pos++;
                continue;
            }
            if (p->pos < p->length && p->text[p->pos] == close) {
                p->pos++;
                break;
            }
            return json_fail(p, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    p->depth--;
    p->nodes[index].length = members;
    p->nodes[index].span = (uint32_t)(p->count - index);
    return is_object ? json_check_unique_keys(p, index) : SBIF_OK;
}

static sbif_status json_value(json_parser *p) {
    json_skip_space(p);
    if (p->pos >= p->length) return json_fail(p, "expected a value");
    if (json_at(p, "NaN") || json_at(p, "Infinity") || json_at(p, "-Infinity")) { /* what lenient parsers accept */
        return json_fail(p, "NaN, Infinity and -Infinity are not JSON");
    }
    switch (p->text[p->pos]) {
    case '{': return json_container(p, 1);
    case '[': return json_container(p, 0);
    case '"': return json_string(p, 0);
    case 't': return json_literal(p, "true", SBIF_JSON_TRUE);
    case 'f': return json_literal(p, "false", SBIF_JSON_FALSE);
    case 'n': return json_literal(p, "null", SBIF_JSON_NULL);
    default:
        if (p->text[p->pos] == '-' || is_digit(p->text[p->pos])) return json_number(p);
        return json_fail(p, "expected a value");
    }
}

sbif_status sbif_json_parse(const char *text, size_t length, sbif_json **root, sbif_error *error) {
    json_parser p;
    sbif_error ignored;
    size_t bad;
    sbif_status status;
    if (error == NULL) error = &ignored;
    *root = NULL;
    if (length >= JSON_MAX_BYTES) {
        return fail(error, SBIF_ERR_INPUT, "JSON text of %lu bytes is too long", (unsigned long)length);
    }
    bad = utf8_invalid_at((const unsigned char *)text, length);
    if (bad != length) return fail(error, SBIF_ERR_INPUT, "invalid UTF-8 at byte %lu", (unsigned long)bad);
    memset(&p, 0, sizeof p);
    p.error = error;
    p.length = length;
    p.text = malloc(length + 1);
    p.capacity = 64;
    p.nodes = malloc(p.capacity * sizeof *p.nodes);
    if (p.text == NULL || p.nodes == NULL) {
        free(p.text);
        free(p.nodes);
        return out_of_memory(error);
    }
    memcpy(p.text, text, length);
    p.text[length] = '\0';
    json_new_node(&p, SBIF_JSON_NULL);
    p.nodes[0].str = p.text;
    status = json_value(&p);
    if (status == SBIF_OK) {
        json_skip_space(&p);
        if (p.pos != p.length) status = json_fail(&p, "extra data after the JSON value");
    }
    if (status != SBIF_OK) {
        free(p.text);
        free(p.nodes);
        return status;
    }
    *root = &p.nodes[1];
    return SBIF_OK;
}

void sbif_json_free(sbif_json *root) {
    if (root == NULL) return;
    free((char *)root[-1].str);
    free(root - 1);
}

sbif_json_kind sbif_json_type(const sbif_json *value) {
    return (sbif_json_kind)value->kind;
}

size_t sbif_json_size(const sbif_json *value) {
    switch (value->kind) {
    case SBIF_JSON_ARRAY:
    case SBIF_JSON_OBJECT:
    case SBIF_JSON_STRING: return value->length;
    default: return 0;
    }
}

const sbif_json *sbif_json_first(const sbif_json *container) {
    if ((container->kind != SBIF_JSON_ARRAY && container->kind != SBIF_JSON_OBJECT) || container->length == 0) {
        return NULL;
    }
    return container + 1;
}

const sbif_json *sbif_json_next(const sbif_json *item) {
    if (item->flags & JSON_KEY) return item + 1 + item[1].span;
    return item + item->span;
}

const sbif_json *sbif_json_value(const sbif_json *key) {
    return key + 1;
}

const sbif_json *sbif_json_get(const sbif_json *object, const char *key) {
    size_t i, n = strlen(key);
    const sbif_json *item;
    if (object == NULL || object->kind != SBIF_JSON_OBJECT) return NULL;
    for (i = 0, item = sbif_json_first(object); i < object->length; i++, item = sbif_json_next(item)) {
        if (item->length == n && memcmp(item->str, key, n) == 0) return item + 1;
    }
    return NULL;
}

const char *sbif_json_string(const sbif_json *value) {
    return value->kind == SBIF_JSON_STRING ? value->str : NULL;
}

int sbif_json_is_integer(const sbif_json *value) {
    return value->kind == SBIF_JSON_NUMBER && (value->flags & JSON_INTEGER_LITERAL);
}

int sbif_json_int64(const sbif_json *value, int64_t *out) {
    const char *s;
    size_t i = 0;
    int negative = 0;
    uint64_t magnitude = 0;
    uint64_t limit;
    if (!sbif_json_is_integer(value)) return -1;
    s = value->str;
    if (s[0] == '-') {
        negative = 1;
        i = 1;
    }
    limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < value->length; i++) {
        unsigned digit = (unsigned)(s[i] - '0');
        if (magnitude > (limit - digit) / 10) return -1;
        magnitude = magnitude * 10 + digit;
    }
    if (!negative) *out = (int64_t)magnitude;
    else if (magnitude == (uint64_t)INT64_MAX + 1) *out = INT64_MIN;
    else *out = -(int64_t)magnitude;
    return 0;
}

int sbif_json_double(const sbif_json *value, double *out) {
    if (value->kind != SBIF_JSON_NUMBER) return -1;
    /* the literal is followed by a delimiter or the text's terminating NUL, where strtod stops */
    *out = strtod(value->str, NULL);
    return 0;
}

const char *sbif_json_number_text(const sbif_json *value, size_t *length) {
    if (value->kind != SBIF_JSON_NUMBER) return NULL;
    *length = value->length;
    return value->str;
}

/** A short rendering of a JSON value for messages (truncated with "..."). */
static void json_render(const sbif_json *value, char *out, size_t size) {
    size_t used = 0;
    size_t i;
    const sbif_json *item;
    if (size == 0) return;
    out[0] = '\0';
#define RENDER(...) do { if (used < size) used += (size_t)snprintf(out + used, size - used, __VA_ARGS__); } while (0)
    switch (value->kind) {
    case SBIF_JSON_NULL: RENDER("null"); break;
    case SBIF_JSON_TRUE: RENDER("true"); break;
    case SBIF_JSON_FALSE: RENDER("false"); break;
    case SBIF_JSON_NUMBER: RENDER("%.*s", (int)(value->length > 40 ? 40 : value->length), value->str);
        if (value->length > 40) RENDER("...");
        break;
    case SBIF_JSON_STRING: RENDER("\"%.60s%s\"", value->str, value->length > 60 ? "..." : ""); break;
    case SBIF_JSON_ARRAY:
    case SBIF_JSON_OBJECT:
        RENDER(value->kind == SBIF_JSON_ARRAY ? "[" : "{");
        for (i = 0, item = sbif_json_first(value); i < value->length && used < size; i++, item = sbif_json_next(item)) {
            char part[96];
            if (i > 0) RENDER(", ");
            if (used > 80) {
                RENDER("...");
                break;
            }
            json_render(item, part, sizeof part);
            RENDER("%s", part);
            if (value->kind == SBIF_JSON_OBJECT) {
                json_render(item + 1, part, sizeof part);
                RENDER(": %s", part);
            }
        }
        RENDER(value->kind == SBIF_JSON_ARRAY ? "]" : "}");
        break;
    }
#undef RENDER
}

/* ==== names ======================================================================================================= */
/* An open-addressing hash table from NUL-terminated names (owned elsewhere) to indices, sized once. */

typedef struct name_map {
    const char **keys;
    uint32_t *values;
    size_t mask;
} name_map;

static uint64_t name_hash(const char *name) {
    uint64_t hash = 1469598103934665603u;
    for (; *name; name++) {
        hash ^= (unsigned char)*name;
        hash *= 1099511628211u;
    }
    return hash;
}

static int map_init(name_map *map, size_t entries) {
    size_t capacity = 16;
    while (capacity < 2 * entries + 1) capacity *= 2;
    map->keys = calloc(capacity, sizeof *map->keys);
    map->values = malloc(capacity * sizeof *map->values);
    map->mask = capacity - 1;
    return map->keys != NULL && map->values != NULL ? 0 : -1;
}

static void map_free(name_map *map) {
    free((void *)map->keys);
    free(map->values);
    map->keys = NULL;
    map->values = NULL;
}

/** The index stored for `name`, or -1. */
static long map_find(const name_map *map, const char *name) {
    size_t slot = (size_t)name_hash(name) & map->mask;
    while (map->keys[slot] != NULL) {
        if (strcmp(map->keys[slot], name) == 0) return (long)map->values[slot];
        slot = (slot + 1) & map->mask;
    }
    return -1;
}

/** Add `name`; returns 0, or 1 if it is already there (the table never fills: it was sized for every entry). */
static int map_add(name_map *map, const char *name, uint32_t value) {
    size_t slot = (size_t)name_hash(name) & map->mask;
    while (map->keys[slot] != NULL) {
        if (strcmp(map->keys[slot], name) == 0) return 1;
        slot = (slot + 1) & map->mask;
    }
    map->keys[slot] = name;
    map->values[slot] = value;
    return 0;
}

/* ==== the safetensors container =================================================================================== */

/** A safetensors dtype code: its element size, and the SBIF dtype it holds (-1: not an SBIF dtype). */
typedef struct container_dtype {
    const char *code;
    const char *numpy_name;
    size_t size;
    int sbif;
} container_dtype;

static const container_dtype CONTAINER_DTYPES[] = {
    {"BOOL", "bool", 1, SBIF_BOOL},      {"U8", "uint8", 1, SBIF_UINT8},     {"I8", "int8", 1, SBIF_INT8},
    {"I16", "int16", 2, SBIF_INT16},     {"U16", "uint16", 2, SBIF_UINT16},  {"I32", "int32", 4, SBIF_INT32},
    {"U32", "uint32", 4, -1},            {"I64", "int64", 8, SBIF_INT64},    {"U64", "uint64", 8, -1},
    {"F16", "float16", 2, -1},           {"F32", "float32", 4, SBIF_FLOAT32}, {"F64", "float64", 8, SBIF_FLOAT64},
};
#define CONTAINER_DTYPE_COUNT (sizeof CONTAINER_DTYPES / sizeof CONTAINER_DTYPES[0])

typedef struct container_entry {
    const char *name;
    const container_dtype *dtype;
    const sbif_json *shape;  /* a checked list of at most SBIF_MAX_RANK int64 dimensions */
    int64_t begin, end;
    int listed;              /* named by the document */
    void *data;
} container_entry;

typedef struct container {
    const char *path;
    FILE *file;
    int64_t data_length;
    sbif_json *header;
    const sbif_json *metadata; /* NULL when the header has no __metadata__ */
    container_entry *entries;  /* in data order */
    size_t count;
    name_map names;            /* name -> index in entries */
} container;

static void container_close(container *c) {
    size_t i;
    if (c->file != NULL) fclose(c->file);
    c->file = NULL;
    for (i = 0; i < c->count && c->entries != NULL; i++) free(c->entries[i].data);
    free(c->entries);
    c->entries = NULL;
    map_free(&c->names);
    sbif_json_free(c->header);
    c->header = NULL;
}

static int is_little_endian(void) {
    const uint16_t probe = 1;
    return *(const unsigned char *)&probe == 1;
}

static uint64_t read_le64(const unsigned char *bytes) {
    uint64_t value = 0;
    int i;
    for (i = 7; i >= 0; i--) value = (value << 8) | bytes[i];
    return value;
}

static const container_dtype *container_dtype_of(const char *code) {
    size_t i;
    for (i = 0; i < CONTAINER_DTYPE_COUNT; i++) {
        if (strcmp(code, CONTAINER_DTYPES[i].code) == 0) return &CONTAINER_DTYPES[i];
    }
    return NULL;
}

/** A JSON integer literal >= 0 (`-0` is 0, as every JSON reader reads it); *fits says whether it fits in int64 (larger
 * ones are valid counts too). */
static int is_count(const sbif_json *value, int64_t *out, int *fits) {
    if (!sbif_json_is_integer(value) || (value->str[0] == '-' && !(value->length == 2 && value->str[1] == '0'))) {
        return 0;
    }
    *fits = sbif_json_int64(value, out) == 0;
    return 1;
}

/** Check one header entry, as sbif/format/container.py's parse_header does. */
static sbif_status check_entry(container *c, const char *name, const sbif_json *entry, container_entry *out,
                               sbif_error *error) {
    const sbif_json *dtype = sbif_json_get(entry, "dtype");
    const sbif_json *shape = sbif_json_get(entry, "shape");
    const sbif_json *offsets = sbif_json_get(entry, "data_offsets");
    const sbif_json *item;
    char text[160];
    int64_t dims_product = 1, nbytes, begin = 0, end = 0;
    int overflow = 0, unrepresentable = 0, has_zero = 0, fits = 1, begin_fits = 0, end_fits = 0;
    size_t i;
    if (entry->kind != SBIF_JSON_OBJECT || entry->length != 3 || dtype == NULL || shape == NULL || offsets == NULL) {
        return fail(error, SBIF_ERR_FILE_FORMAT, "%s: tensor '%s' needs exactly the keys dtype, shape, data_offsets",
                    c->path, name);
    }
    out->name = name;
    out->dtype = dtype->kind == SBIF_JSON_STRING && strlen(dtype->str) == dtype->length ? container_dtype_of(dtype->str)
                                                                                        : NULL;
    if (out->dtype == NULL) {
        json_render(dtype, text, sizeof text);
        return fail(error, SBIF_ERR_FILE_FORMAT, "%s: tensor '%s' has unknown dtype %s", c->path, name, text);
    }
    if (shape->kind != SBIF_JSON_ARRAY) {
        json_render(shape, text, sizeof text);
        return fail(error, SBIF_ERR_FILE_FORMAT, "%s: tensor '%s' has an invalid shape %s", c->path, name, text);
    }
    for (i = 0, item = sbif_json_first(shape); i < shape->length; i++, item = sbif_json_next(item)) {
        int64_t dim = 0;
        if (!is_count(item, &dim, &fits)) {
            json_render(shape, text, sizeof text);
            return fail(error, SBIF_ERR_FILE_FORMAT, "%s: tensor '%s' has an invalid shape %s", c->path, name, text);
        }
        if (!fits) unrepresentable = overflow = 1;
        else if (dim == 0) has_zero = 1;
        else if (checked_mul(dims_product, dim, &dims_product) != 0) unrepresentable = overflow = 1;
    }
    /* offsets + 2 is the second element only when the first is a scalar, which is_count checks first */
    json_render(offsets, text, sizeof text);
    if (offsets->kind != SBIF_JSON_ARRAY || offsets->length != 2 || !is_count(offsets + 1, &begin, &begin_fits) ||
        !is_count(offsets + 2, &end, &end_fits) || (begin_fits && end_fits && begin > end)) {
        return fail(error, SBIF_ERR_FILE_FORMAT, "%s: tensor '%s' has invalid data_offsets %s", c->path, name, text);
    }
    if (!begin_fits || !end_fits) {
        return fail(error, SBIF_ERR_FILE_FORMAT, "%s: truncated file: tensor '%s' has data_offsets %s beyond any file",
                    c->path, name, text);
    }
    if (checked_mul(dims_product, (int64_t)out->dtype->size, &nbytes) != 0) unrepresentable = overflow = 1;
    if (has_zero) {
        nbytes = 0;
        overflow = 0;
    }
    json_render(shape, text, sizeof text);
    if (overflow) {
        return fail(error, SBIF_ERR_FILE_FORMAT, "%s: tensor '%s': shape %s of %s needs more than %s bytes but "
                    "data_offsets span %lld", c->path, name, text, out->dtype->numpy_name, MAX_DIM_TEXT,
                    (long long)(end - begin));
    }
    if (nbytes != end - begin) {
        return fail(error, SBIF_ERR_FILE_FORMAT, "%s: tensor '%s': shape %s of %s needs %lld bytes but data_offsets "
                    "span %lld", c->path, name, text, out->dtype->numpy_name, (long long)nbytes,
                    (long long)(end - begin));
    }
    if (unrepresentable || shape->length > SBIF_MAX_RANK) {
        return fail(error, SBIF_ERR_FILE_FORMAT, "%s: tensor '%s' has shape %s, which this runtime cannot represent "
                    "(at most %d dimensions, %s elements)", c->path, name, text, SBIF_MAX_RANK, MAX_DIM_TEXT);
    }
    out->shape = shape;
    out->begin = begin;
    out->end = end;
    return SBIF_OK;
}

static int entry_order(const void *a, const void *b) {
    const container_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end ? 1 : 0;
}

/** The tensors must tile the data buffer exactly: in bounds, contiguous, no overlap, no gap. */
static sbif_status check_layout(container *c, sbif_error *error) {
    int64_t position = 0;
    size_t i;
    qsort(c->entries, c->count, sizeof *c->entries, entry_order);
    for (i = 0; i < c->count; i++) {
        const container_entry *e = &c->entries[i];
        if (e->begin != position) {
            const char *problem = e->begin < position ? "overlaps the previous tensor" : "leaves a gap before it";
            return fail(error, SBIF_ERR_FILE_FORMAT, "%s: tensor '%s' at byte %lld %s", c->path, e->name,
                        (long long)e->begin, problem);
        }
        if (e->end > c->data_length) {
            return fail(error, SBIF_ERR_FILE_FORMAT, "%s: truncated file: tensor '%s' ends at byte %lld of a %lld byte "
                        "data buffer", c->path, e->name, (long long)e->end, (long long)c->data_length);
        }
        position = e->end;
    }
    if (position != c->data_length) {
        return fail(error, SBIF_ERR_FILE_FORMAT, "%s: %lld trailing bytes after the last tensor", c->path,
                    (long long)(c->data_length - position));
    }
    return SBIF_OK;
}

/** Parse `text` into *root, which must be a JSON object: invalid JSON or another value is a `status` error
 * naming `what` in the file at `path` (running out of memory stays SBIF_ERR_MEMORY). */
static sbif_status parse_object(const char *text, size_t length, sbif_json **root, sbif_status status,
                                const char *path, const char *what, sbif_error *error) {
    sbif_status parsed = sbif_json_parse(text, length, root, error);
    if (parsed == SBIF_ERR_MEMORY) return parsed;
    if (parsed != SBIF_OK) {
        error->status = status;
        return add_context(error, "%s: %s is not valid JSON", path, what);
    }
    if ((*root)->kind != SBIF_JSON_OBJECT) return fail(error, status, "%s: %s must be a JSON object", path, what);
    return SBIF_OK;
}

/** Whether a header's text has at most the objects, arrays and commas (outside strings) that a header within
 * MAX_HEADER_ENTRIES tensors and metadata keys can have (one object per tensor, a shape and data_offsets each, and per
 * tensor at most 2 commas between its keys, 31 in a shape of SBIF_MAX_RANK dimensions and 1 in data_offsets, besides
 * the commas between the header's and __metadata__'s members). Counted before parsing, so that a header of a million
 * empty entries is refused for the cost of reading it, as in the reference (sbif/format/container.py). */
static int header_structure_fits(const char *raw, size_t length) {
    const uint64_t most_objects = MAX_HEADER_ENTRIES + 2, most_arrays = 2 * (uint64_t)MAX_HEADER_ENTRIES;
    const uint64_t most_commas = 2 * (uint64_t)MAX_HEADER_ENTRIES + (uint64_t)MAX_HEADER_ENTRIES * (SBIF_MAX_RANK + 2);
    uint64_t objects = 0, arrays = 0, commas = 0;
    int in_string = 0, escaped = 0;
    size_t i;
    for (i = 0; i < length; i++) {
        char ch = raw[i];
        if (in_string) {
            if (escaped) escaped = 0;
            else if (ch == '\\') escaped = 1;
            else if (ch == '"') in_string = 0;
        } else if (ch == '"') {
            in_string = 1;
        } else {
            objects += ch == '{';
            arrays += ch == '[';
            commas += ch == ',';
        }
    }
    return objects <= most_objects && arrays <= most_arrays && commas <= most_commas;
}

static sbif_status parse_header(container *c, const char *raw, size_t length, sbif_error *error) {
    const sbif_json *item;
    size_t i, n = 0;
    sbif_status status;
    if (!header_structure_fits(raw, length)) {
        return fail(error, SBIF_ERR_FILE_FORMAT, "%s: the header holds more objects, arrays or commas than a header of "
                    "at most %d tensors and %d metadata keys can have", c->path, MAX_HEADER_ENTRIES,
                    MAX_HEADER_ENTRIES);
    }
    status = parse_object(raw, length, &c->header, SBIF_ERR_FILE_FORMAT, c->path, "the header", error);
    if (status != SBIF_OK) return status;
    c->metadata = sbif_json_get(c->header, "__metadata__");
    if (c->metadata != NULL) {
        int strings = c->metadata->kind == SBIF_JSON_OBJECT;
        for (i = 0, item = sbif_json_first(c->metadata); strings && i < c->metadata->length; i++) {
            strings = item[1].kind == SBIF_JSON_STRING;
            item = sbif_json_next(item);
        }
        if (!strings) return fail(error, SBIF_ERR_FILE_FORMAT, "%s: __metadata__ must map strings to strings", c->path);
    }
    c->count = c->header->length - (c->metadata != NULL);
    if (c->count > MAX_HEADER_ENTRIES || (c->metadata != NULL && c->metadata->length > MAX_HEADER_ENTRIES)) {
        return fail(error, SBIF_ERR_FILE_FORMAT, "%s: the header lists %lu tensors and %lu metadata keys: at most %d "
                    "of each", c->path, (unsigned long)c->count,
                    (unsigned long)(c->metadata != NULL ? c->metadata->length : 0), MAX_HEADER_ENTRIES);
    }
    c->entries = calloc(c->count + 1, sizeof *c->entries);
    if (c->entries == NULL || map_init(&c->names, c->count) != 0) return out_of_memory(error);
    for (i = 0, item = sbif_json_first(c->header); i < c->header->length; i++, item = sbif_json_next(item)) {
        if (item + 1 == c->metadata) continue;
        if (strlen(item->str) != item->length) {
            return fail(error, SBIF_ERR_FILE_FORMAT, "%s: a tensor name may not contain U+0000 (SPEC section 2)",
                        c->path);
        }
        if ((status = check_entry(c, item->str, item + 1, &c->entries[n], error)) != SBIF_OK) return status;
        n++;
    }
    if ((status = check_layout(c, error)) != SBIF_OK) return status;
    for (i = 0; i < c->count; i++) map_add(&c->names, c->entries[i].name, (uint32_t)i);
    return SBIF_OK;
}

/** Read and check the file's length prefix, header and layout (section 2 of the spec). No tensor data is read. */
static sbif_status container_open(container *c, const char *path, sbif_error *error) {
    unsigned char prefix[8];
    size_t got;
    long size;
    uint64_t header_length;
    char *raw;
    sbif_status status;
    memset(c, 0, sizeof *c);
    c->path = path;
    c->file = fopen(path, "rb");
    if (c->file == NULL) return fail(error, SBIF_ERR_FILE_FORMAT, "cannot open %s: %s", path, strerror(errno));
    got = fread(prefix, 1, sizeof prefix, c->file);
    if (ferror(c->file)) return fail(error, SBIF_ERR_FILE_FORMAT, "cannot open %s: %s", path, strerror(errno));
    if (got < sizeof prefix) {
        return fail(error, SBIF_ERR_FILE_FORMAT, "%s: truncated file (%lu bytes; a safetensors file starts with an "
                    "8-byte header length)", path, (unsigned long)got);
    }
    if (fseek(c->file, 0, SEEK_END) != 0 || (size = ftell(c->file)) < 8 || fseek(c->file, 8, SEEK_SET) != 0) {
        return fail(error, SBIF_ERR_FILE_FORMAT, "cannot read %s: its size cannot be determined", path);
    }
    header_length = read_le64(prefix);
    if (header_length > MAX_HEADER_BYTES) {
        return fail(error, SBIF_ERR_FILE_FORMAT, "%s: header length %llu exceeds the %llu byte limit (is this a "
                    "safetensors file?)", path, (unsigned long long)header_length,
                    (unsigned long long)MAX_HEADER_BYTES);
    }
    if (header_length > (uint64_t)size - 8) {
        return fail(error, SBIF_ERR_FILE_FORMAT, "%s: truncated file: header says %llu bytes but only %ld follow", path,
                    (unsigned long long)header_length, size - 8);
    }
    raw = malloc((size_t)header_length + 1);
    if (raw == NULL) return out_of_memory(error);
    if (fread(raw, 1, (size_t)header_length, c->file) != (size_t)header_length) {
        free(raw);
        return fail(error, SBIF_ERR_FILE_FORMAT, "cannot read %s: the file changed while it was read", path);
    }
    c->data_length = (int64_t)size - 8 - (int64_t)header_length;
    status = parse_header(c, raw, (size_t)header_length, error);
    free(raw);
    return status;
}

static void swap_bytes(unsigned char *data, size_t count, size_t size) {
    size_t i, j;
    for (i = 0; i < count; i++, data += size) {
        for (j = 0; j < size / 2; j++) {
            unsigned char t = data[j];
            data[j] = data[size - 1 - j];
            data[size - 1 - j] = t;
        }
    }
}

/** Read every tensor's bytes (they tile the data buffer, so in order, without seeking) into its own buffer. */
static sbif_status container_read_data(container *c, sbif_error *error) {
    size_t i;
    for (i = 0; i < c->count; i++) {
        container_entry *e = &c->entries[i];
        size_t bytes = (size_t)(e->end - e->begin);
        if ((uint64_t)(e->end - e->begin) > (uint64_t)SIZE_MAX) return out_of_memory(error);
        e->data = malloc(bytes > 0 ? bytes : 1);
        if (e->data == NULL) return out_of_memory(error);
        if (bytes > 0 && fread(e->data, 1, bytes, c->file) != bytes) {
            return fail(error, SBIF_ERR_FILE_FORMAT, "cannot read %s: the file changed while it was read", c->path);
        }
        if (!is_little_endian() && e->dtype->size > 1) swap_bytes(e->data, bytes / e->dtype->size, e->dtype->size);
    }
    fclose(c->file);
    c->file = NULL;
    return SBIF_OK;
}

/* ==== static types and operands =================================================================================== */
/*
 * A value's type is an sbif_tensor without data: its dtype and shape, where -1 stands for the batch dimension (only
 * ever the first). The op rules below run on these types when a file is validated (batch unknown) and on the
 * concrete types of an op request; at run time a value's shape is its static shape with the batch size put in.
 */

struct sbif_model;
static void value_type(const struct sbif_model *model, uint32_t id, int64_t batch, sbif_tensor *type);
static int has_batch(const struct sbif_model *m, uint32_t id);
static int is_uniform(const struct sbif_model *m, uint32_t id);
static int64_t type_count(const sbif_tensor *t);

/** A node's inputs: either concrete tensors (op requests) or graph values (validation and execution). */
typedef struct operands {
    size_t count;
    const sbif_tensor *tensors;
    const struct sbif_model *model;
    const uint32_t *ids;
    void *const *data;  /* per value id at run time; NULL in static checks */
    int64_t batch;      /* the run's batch size, or -1 in static checks */
    int64_t first_row;  /* the rows computed are rows first_row .. first_row + batch of the bound values */
    const int64_t *local_rows; /* per value id: > 0 where the buffer holds only the rows being computed, or NULL */
    const float *packed; /* a float32 product's weights in the kernels' panels, packed at load; NULL: pack now */
    void *scratch;       /* at least scratch_bytes() of the node, owned by the caller (a workspace) */
    sbif_kernel_activation activation; /* a float32 product's: relu when its relu node is fused into it */
} operands;

/** Where operand `index` of type `out` has the rows the node computes (row first_row on): its buffer's start where it
 * has no batch or holds only those rows (local_rows). */
static void *rows_computed(const operands *in, size_t index, const sbif_tensor *out) {
    uint32_t id = in->ids[index];
    if (!has_batch(in->model, id) || (in->local_rows != NULL && in->local_rows[id] > 0)) return out->data;
    return (char *)out->data + in->first_row * (type_count(out) / in->batch) * sbif_dtype_size(out->dtype);
}

static void operand(const operands *in, size_t index, sbif_tensor *out) {
    if (in->tensors != NULL) {
        *out = in->tensors[index];
        return;
    }
    value_type(in->model, in->ids[index], in->batch, out);
    out->data = in->data != NULL ? in->data[in->ids[index]] : NULL;
    if (out->data != NULL && in->first_row > 0) out->data = rows_computed(in, index, out);
}

/** "[B,4]" */
static void format_shape(const sbif_tensor *t, char *out, size_t size) {
    size_t used = 0;
    int i;
    used += (size_t)snprintf(out, size, "[");
    for (i = 0; i < t->rank && used < size; i++) {
        if (t->shape[i] < 0) used += (size_t)snprintf(out + used, size - used, "%sB", i ? "," : "");
        else used += (size_t)snprintf(out + used, size - used, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    }
    if (used < size) snprintf(out + used, size - used, "]");
}

/** "float32[B,4]", as the reference implementation's ValueSpec prints. */
static void format_type(const sbif_tensor *t, char *out, size_t size) {
    int n = snprintf(out, size, "%s", sbif_dtype_name(t->dtype));
    if (n > 0 && (size_t)n < size) format_shape(t, out + n, size - (size_t)n);
}

static int same_type(const sbif_tensor *a, const sbif_tensor *b) {
    int i;
    if (a->dtype != b->dtype || a->rank != b->rank) return 0;
    for (i = 0; i < a->rank; i++) {
        if (a->shape[i] != b->shape[i]) return 0;
    }
    return 1;
}

/** The element count of a value; -1 beyond int64. Batch dims must have been replaced. */
static int64_t type_count(const sbif_tensor *t) {
    return element_count(t->shape, t->rank);
}

/** The size the limits of SPEC sections 3.5 and 5.8 bound: bytes with one row in place of the batch (-1) and every
 * zero dimension counted as 1; -1 beyond int64. */
static int64_t nominal_row_bytes(const sbif_tensor *t) {
    int64_t bytes = (int64_t)sbif_dtype_size(t->dtype);
    int i;
    for (i = 0; i < t->rank; i++) {
        if (checked_mul(bytes, t->shape[i] > 1 ? t->shape[i] : 1, &bytes) != 0) return -1;
    }
    return bytes;
}

/* ==== op attributes =============================================================================================== */

typedef enum attr_kind {
    ATTR_INT,    /* a JSON integer literal */
    ATTR_FLOAT,  /* a JSON number with a fraction or an exponent */
    ATTR_NUMBER, /* either */
    ATTR_SCALAR, /* a number or a bool */
    ATTR_STRING,
    ATTR_LIST
} attr_kind;

typedef struct attr_def {
    const char *name;
    attr_kind kind;
} attr_def;

/** A node's attributes, resolved. Every attribute of every op is required; no op has two of one kind. */
typedef struct op_attrs {
    const char *text;             /* cast.to, constant.dtype, conv2d.padding */
    const sbif_json *integer_json;
    int64_t integer;              /* axis, or one_hot.depth */
    int integer_fits;             /* the literal fits in int64 */
    double real;                  /* leaky_relu.alpha, layer_norm.epsilon */
    const sbif_json *value;       /* constant.value */
    const sbif_json *list_json;   /* conv2d.strides, split.sizes, reshape.shape, transpose.perm */
    int64_t *list;                /* its elements when every one is an int64 literal, else NULL */
    size_t list_length;
} op_attrs;

static void attrs_free(op_attrs *a) {
    free(a->list);
    a->list = NULL;
}

static int attr_has_kind(const sbif_json *v, attr_kind kind) {
    switch (kind) {
    case ATTR_INT: return sbif_json_is_integer(v);
    case ATTR_FLOAT: return v->kind == SBIF_JSON_NUMBER && !sbif_json_is_integer(v);
    case ATTR_NUMBER: return v->kind == SBIF_JSON_NUMBER;
    case ATTR_SCALAR: return v->kind == SBIF_JSON_NUMBER || v->kind == SBIF_JSON_TRUE || v->kind == SBIF_JSON_FALSE;
    case ATTR_STRING: return v->kind == SBIF_JSON_STRING;
    case ATTR_LIST: return v->kind == SBIF_JSON_ARRAY;
    }
    return 0;
}

static sbif_status store_attr(op_attrs *a, const sbif_json *v, attr_kind kind, sbif_error *error) {
    size_t i;
    const sbif_json *item;
    switch (kind) {
    case ATTR_INT:
        a->integer_json = v;
        a->integer_fits = sbif_json_int64(v, &a->integer) == 0;
        break;
    case ATTR_FLOAT:
    case ATTR_NUMBER: sbif_json_double(v, &a->real); break;
    case ATTR_SCALAR: a->value = v; break;
    case ATTR_STRING: a->text = v->str; break;
    case ATTR_LIST:
        a->list_json = v;
        a->list_length = v->length;
        a->list = malloc((v->length > 0 ? v->length : 1) * sizeof *a->list);
        if (a->list == NULL) return out_of_memory(error);
        for (i = 0, item = sbif_json_first(v); i < v->length; i++, item = sbif_json_next(item)) {
            if (sbif_json_int64(item, &a->list[i]) != 0) {
                attrs_free(a);
                break;
            }
        }
        break;
    }
    return SBIF_OK;
}

/** Check attribute names and types against the op's definitions (as resolve_attrs in sbif/ops/base.py). */
static sbif_status resolve_attrs(const char *op, const attr_def *defs, size_t n_defs, const sbif_json *attrs,
                                 op_attrs *out, sbif_error *error) {
    size_t i, j;
    const sbif_json *key;
    char text[160];
    sbif_status status;
    memset(out, 0, sizeof *out);
    if (attrs != NULL && attrs->kind != SBIF_JSON_OBJECT) {
        return fail(error, SBIF_ERR_DOCUMENT, "the attributes of op %s must be a JSON object", op);
    }
    for (i = 0, key = attrs != NULL ? sbif_json_first(attrs) : NULL; attrs != NULL && i < attrs->length;
         i++, key = sbif_json_next(key)) {
        for (j = 0; j < n_defs && strcmp(defs[j].name, key->str) != 0; j++) {
        }
        if (j == n_defs || strlen(key->str) != key->length) {
            return fail(error, SBIF_ERR_DOCUMENT, "op %s has no attribute %.80s", op, key->str);
        }
    }
    for (j = 0; j < n_defs; j++) {
        const sbif_json *v = sbif_json_get(attrs, defs[j].name);
        if (v == NULL) {
            status = fail(error, SBIF_ERR_DOCUMENT, "op %s needs attribute '%s'", op, defs[j].name);
        } else if (!attr_has_kind(v, defs[j].kind)) {
            json_render(v, text, sizeof text);
            status = fail(error, SBIF_ERR_DOCUMENT, "attribute '%s' of op %s has the wrong type (%s)", defs[j].name,
                          op, text);
        } else if (defs[j].kind == ATTR_STRING && strlen(v->str) != v->length) {
            /* read as a C string, float32 followed by U+0000 and more would be the dtype float32: no value of a
             * string attribute (a dtype, a padding) contains U+0000, so the reference refuses it as unknown */
            status = fail(error, SBIF_ERR_DOCUMENT, "attribute '%s' of op %s contains U+0000, which none of its values "
                          "holds", defs[j].name, op);
        } else {
            status = store_attr(out, v, defs[j].kind, error);
        }
        if (status != SBIF_OK) {
            attrs_free(out);
            return status;
        }
    }
    return SBIF_OK;
}

/* ==== op rules (dtype and shape inference, as the `infer` methods in sbif/ops) ==================================== */

static sbif_status type_error(sbif_error *error, const char *format, ...) PRINTF_LIKE(2, 3);
static sbif_status type_error(sbif_error *error, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vfail(error, SBIF_ERR_DOCUMENT, format, args);
    va_end(args);
    return SBIF_ERR_DOCUMENT;
}

static sbif_status dimension_too_large(sbif_error *error) {
    return type_error(error, "a dimension exceeds " MAX_DIM_TEXT);
}

/** A graph value has at most SBIF_MAX_RANK dimensions (SPEC section 3.5): a format rule, so a DocumentError. */
static sbif_status check_rank(int rank, sbif_error *error) {
    if (rank <= SBIF_MAX_RANK) return SBIF_OK;
    return type_error(error, "a value of rank %d is above the limit of %d dimensions", rank, SBIF_MAX_RANK);
}

static sbif_status require_float(const sbif_tensor *t, const char *role, sbif_error *error) {
    if (is_float_dtype(t->dtype)) return SBIF_OK;
    return type_error(error, "%s has dtype %s, expected one of float32, float64", role, sbif_dtype_name(t->dtype));
}

/** An op along the last axis (argmax, softmax, reduce_mean, layer_norm) needs one, and it must not be the batch: along
 * a [B] value's last axis the op would mix the rows, which stay independent (SPEC section 3.5). A batch-free value
 * (a tensor's) may have any last axis. */
static sbif_status require_rows(const sbif_tensor *t, const char *op, sbif_error *error) {
    char text[128];
    format_type(t, text, sizeof text);
    if (t->rank < 1) {
        return type_error(error, "%s works along the last axis and needs an input of rank at least 1, got %s", op,
                          text);
    }
    if (t->shape[t->rank - 1] < 0) {
        return type_error(error, "%s works along the last axis, which of %s is the batch: rows must stay independent",
                          op, text);
    }
    return SBIF_OK;
}

static sbif_status normalize_axis(const op_attrs *a, int rank, int *axis, sbif_error *error) {
    *axis = 0; /* defined on failure too, which optimisers cannot always see is never read */
    if (!a->integer_fits || a->integer < -(int64_t)rank || a->integer >= rank) {
        char text[64];
        json_render(a->integer_json, text, sizeof text);
        return type_error(error, "axis %s is out of range for rank %d", text, rank);
    }
    *axis = (int)(a->integer < 0 ? a->integer + rank : a->integer);
    return SBIF_OK;
}

/** NumPy broadcasting of static shapes; the batch dimension (-1) broadcasts with 1 and itself only. */
static sbif_status broadcast_types(const sbif_tensor *const *types, int n, sbif_tensor *out, sbif_error *error) {
    int rank = 0, axis, k;
    for (k = 0; k < n; k++) {
        if (types[k]->rank > rank) rank = types[k]->rank;
    }
    out->rank = rank;
    for (axis = 0; axis < rank; axis++) {
        int64_t size = 1;
        int have = 0;
        for (k = 0; k < n; k++) {
            int at = axis - (rank - types[k]->rank);
            int64_t d;
            if (at < 0) continue;
            d = types[k]->shape[at];
            if (d == 1) continue;
            if (have && d != size) {
                char shapes[3][96];
                for (k = 0; k < n; k++) format_shape(types[k], shapes[k], sizeof shapes[k]);
                return type_error(error, "shapes %s and %s%s%s do not broadcast", shapes[0], shapes[1],
                                  n > 2 ? " and " : "", n > 2 ? shapes[2] : "");
            }
            size = d;
            have = 1;
        }
        out->shape[axis] = size;
    }
    return SBIF_OK;
}

typedef sbif_status (*infer_fn)(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                sbif_error *error);

static sbif_status infer_unary_float(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                     sbif_error *error) {
    (void)a;
    (void)n_outputs;
    operand(in, 0, out);
    return require_float(out, "input", error);
}

static sbif_status infer_same_dtype_broadcast(const operands *in, sbif_tensor *out, sbif_error *error) {
    sbif_tensor x, y;
    const sbif_tensor *both[2];
    operand(in, 0, &x);
    operand(in, 1, &y);
    if (x.dtype != y.dtype) {
        return type_error(error, "operands have different dtypes (%s and %s)", sbif_dtype_name(x.dtype),
                          sbif_dtype_name(y.dtype));
    }
    both[0] = &x;
    both[1] = &y;
    out->dtype = x.dtype;
    return broadcast_types(both, 2, out, error);
}

static sbif_status infer_arithmetic(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                    sbif_error *error) {
    sbif_status status = infer_same_dtype_broadcast(in, out, error);
    (void)a;
    (void)n_outputs;
    if (status == SBIF_OK && out->dtype == SBIF_BOOL) {
        return type_error(error, "arithmetic on bool operands is not defined");
    }
    return status;
}

static sbif_status infer_div(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                             sbif_error *error) {
    sbif_tensor x;
    (void)a;
    (void)n_outputs;
    operand(in, 0, &x);
    if (require_float(&x, "input", error) != SBIF_OK) return error->status;
    return infer_same_dtype_broadcast(in, out, error);
}

static sbif_status infer_less(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                              sbif_error *error) {
    sbif_status status = infer_same_dtype_broadcast(in, out, error);
    (void)a;
    (void)n_outputs;
    out->dtype = SBIF_BOOL;
    return status;
}

static sbif_status infer_clip(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                              sbif_error *error) {
    sbif_tensor x, low, high, shape;
    const sbif_tensor *all[3];
    char shapes[3][96];
    (void)a;
    (void)n_outputs;
    operand(in, 0, &x);
    operand(in, 1, &low);
    operand(in, 2, &high);
    if (x.dtype != low.dtype || x.dtype != high.dtype) {
        return type_error(error, "clip operands have different dtypes (%s, %s, %s)", sbif_dtype_name(x.dtype),
                          sbif_dtype_name(low.dtype), sbif_dtype_name(high.dtype));
    }
    if (x.dtype == SBIF_BOOL) return type_error(error, "clip of bool values is not defined");
    all[0] = &x;
    all[1] = &low;
    all[2] = &high;
    if (broadcast_types(all, 3, &shape, error) != SBIF_OK) return error->status;
    shape.dtype = x.dtype;
    if (!same_type(&shape, &x)) {
        format_shape(&low, shapes[0], sizeof shapes[0]);
        format_shape(&high, shapes[1], sizeof shapes[1]);
        format_shape(&x, shapes[2], sizeof shapes[2]);
        return type_error(error, "clip bounds of shape %s and %s would change the shape %s of x", shapes[0], shapes[1],
                          shapes[2]);
    }
    *out = x;
    return SBIF_OK;
}

static sbif_status infer_where(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                               sbif_error *error) {
    sbif_tensor condition, x, y;
    const sbif_tensor *all[3];
    (void)a;
    (void)n_outputs;
    operand(in, 0, &condition);
    operand(in, 1, &x);
    operand(in, 2, &y);
    if (condition.dtype != SBIF_BOOL) {
        return type_error(error, "where's condition is %s, not bool", sbif_dtype_name(condition.dtype));
    }
    if (x.dtype != y.dtype) {
        return type_error(error, "where's operands have different dtypes (%s and %s)", sbif_dtype_name(x.dtype),
                          sbif_dtype_name(y.dtype));
    }
    all[0] = &condition;
    all[1] = &x;
    all[2] = &y;
    if (broadcast_types(all, 3, out, error) != SBIF_OK) return error->status;
    out->dtype = x.dtype;
    return SBIF_OK;
}

static sbif_status infer_matmul(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                sbif_error *error) {
    sbif_tensor x, w;
    char tx[128], tw[128];
    (void)a;
    (void)n_outputs;
    operand(in, 0, &x);
    operand(in, 1, &w);
    if (require_float(&x, "x", error) != SBIF_OK) return error->status;
    if (x.dtype != w.dtype || x.rank != 2 || w.rank != 2 || x.shape[1] != w.shape[0]) {
        format_type(&x, tx, sizeof tx);
        format_type(&w, tw, sizeof tw);
        return type_error(error, "matmul needs x [B, K] and w [K, N] of one dtype, got %s and %s", tx, tw);
    }
    out->dtype = x.dtype;
    out->rank = 2;
    out->shape[0] = x.shape[0];
    out->shape[1] = w.shape[1];
    return SBIF_OK;
}

/** The operands x, w, b of linear and conv2d, and their types written out for messages. */
typedef struct weighted_operands {
    sbif_tensor x, w, b;
    char tx[128], tw[128], tb[128];
} weighted_operands;

/** Read x, w, b (x must be float); their remaining checks are the op's own. */
static sbif_status read_weighted(const operands *in, weighted_operands *v, sbif_error *error) {
    operand(in, 0, &v->x);
    operand(in, 1, &v->w);
    operand(in, 2, &v->b);
    if (require_float(&v->x, "x", error) != SBIF_OK) return error->status;
    format_type(&v->x, v->tx, sizeof v->tx);
    format_type(&v->w, v->tw, sizeof v->tw);
    format_type(&v->b, v->tb, sizeof v->tb);
    return SBIF_OK;
}

static sbif_status infer_linear(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                sbif_error *error) {
    weighted_operands v;
    (void)a;
    (void)n_outputs;
    if (read_weighted(in, &v, error) != SBIF_OK) return error->status;
    if (v.x.dtype != v.w.dtype || v.x.dtype != v.b.dtype) {
        return type_error(error, "x, w and b have different dtypes (%s, %s, %s)", sbif_dtype_name(v.x.dtype),
                          sbif_dtype_name(v.w.dtype), sbif_dtype_name(v.b.dtype));
    }
    if (v.x.rank != 2 || v.w.rank != 2 || v.b.rank != 1) {
        return type_error(error, "linear needs x of rank 2, w of rank 2 and b of rank 1, got %s, %s, %s", v.tx, v.tw,
                          v.tb);
    }
    if (v.x.shape[1] != v.w.shape[0] || v.w.shape[1] != v.b.shape[0]) {
        return type_error(error, "linear shapes do not chain: x %s, w %s, b %s", v.tx, v.tw, v.tb);
    }
    out->dtype = v.x.dtype;
    out->rank = 2;
    out->shape[0] = v.x.shape[0];
    out->shape[1] = v.w.shape[1];
    return SBIF_OK;
}

/** conv2d output size along one axis: SAME ceil(size / stride), VALID floor((size - kernel) / stride) + 1. */
static int64_t conv_output_size(int64_t size, int64_t kernel, int64_t stride, int same) {
    if (same) return size / stride + (size % stride != 0);
    return size < kernel ? 0 : (size - kernel) / stride + 1;
}

static sbif_status infer_conv2d(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                sbif_error *error) {
    weighted_operands v;
    char text[160];
    int same;
    (void)n_outputs;
    if (read_weighted(in, &v, error) != SBIF_OK) return error->status;
    if (v.x.dtype != v.w.dtype || v.x.dtype != v.b.dtype) {
        return type_error(error, "conv2d operands have different dtypes");
    }
    if (v.x.rank != 4 || v.w.rank != 4 || v.b.rank != 1 || v.b.shape[0] != v.w.shape[3] ||
        v.x.shape[3] != v.w.shape[2]) {
        return type_error(error, "conv2d needs x [B,H,W,C], w [kh,kw,C,O], b [O]; got %s, %s, %s", v.tx, v.tw, v.tb);
    }
    if (v.w.shape[0] < 0 || v.b.shape[0] < 0) { /* only a first dimension can be the batch */
        return type_error(error, "conv2d needs a fixed kernel and bias, got %s and %s", v.tw, v.tb);
    }
    if (a->list == NULL || a->list_length != 2 || a->list[0] < 1 || a->list[1] < 1) {
        json_render(a->list_json, text, sizeof text);
        return type_error(error, "conv2d strides must be two positive integers, got %s", text);
    }
    if (strcmp(a->text, "VALID") != 0 && strcmp(a->text, "SAME") != 0) {
        return type_error(error, "conv2d padding must be VALID or SAME, got '%.60s'", a->text);
    }
    same = a->text[0] == 'S';
    *out = v.x;
    out->shape[1] = conv_output_size(v.x.shape[1], v.w.shape[0], a->list[0], same);
    out->shape[2] = conv_output_size(v.x.shape[2], v.w.shape[1], a->list[1], same);
    out->shape[3] = v.w.shape[3];
    if (out->shape[1] < 1 || out->shape[2] < 1) {
        return type_error(error, "conv2d input %s is smaller than the kernel %s", v.tx, v.tw);
    }
    return SBIF_OK;
}

static sbif_status infer_layer_norm(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                    sbif_error *error) {
    sbif_tensor x, gamma, beta;
    (void)a;
    (void)n_outputs;
    operand(in, 0, &x);
    operand(in, 1, &gamma);
    operand(in, 2, &beta);
    if (require_float(&x, "x", error) != SBIF_OK || require_rows(&x, "layer_norm", error) != SBIF_OK) {
        return error->status;
    }
    if (x.dtype != gamma.dtype || x.dtype != beta.dtype || gamma.rank != 1 || beta.rank != 1 ||
        gamma.shape[0] != x.shape[x.rank - 1] || beta.shape[0] != x.shape[x.rank - 1]) {
        return type_error(error, "layer_norm needs gamma and beta of shape [%lld] and x's dtype",
                          (long long)x.shape[x.rank - 1]);
    }
    *out = x;
    return SBIF_OK;
}

static sbif_status infer_reduce_mean(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                     sbif_error *error) {
    (void)a;
    (void)n_outputs;
    operand(in, 0, out);
    if (require_float(out, "input", error) != SBIF_OK || require_rows(out, "reduce_mean", error) != SBIF_OK) {
        return error->status;
    }
    out->shape[out->rank - 1] = 1;
    return SBIF_OK;
}

static sbif_status infer_reshape(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                 sbif_error *error) {
    sbif_tensor x;
    char tx[128], text[160];
    int64_t target = 1;
    size_t i;
    int valid = a->list != NULL;
    (void)n_outputs;
    operand(in, 0, &x);
    for (i = 0; (int)i < x.rank; i++) {
        if (x.shape[i] < 0) {
            return type_error(error, "reshape applies to tensors without a batch dimension (use flatten for batches)");
        }
    }
    for (i = 0; valid && i < a->list_length; i++) {
        valid = a->list[i] >= 0 && checked_mul(target, a->list[i], &target) == 0;
    }
    if (!valid || a->list_length > SBIF_MAX_RANK || target != type_count(&x) || target < 0) {
        format_type(&x, tx, sizeof tx);
        json_render(a->list_json, text, sizeof text);
        return type_error(error, "cannot reshape %s to %s", tx, text);
    }
    out->dtype = x.dtype;
    out->rank = (int)a->list_length;
    for (i = 0; i < a->list_length; i++) out->shape[i] = a->list[i];
    return SBIF_OK;
}

/** transpose (spec/ops.md): `perm` holds each axis of x once, as integers counted from 0 (never a bool, never from
 * the end); on a batched value perm[0] is 0, since the batch stays first (SPEC section 3.5). The same decisions, in
 * the same order, as Transpose.infer in sbif/ops/shape.py. */
static sbif_status infer_transpose(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                   sbif_error *error) {
    sbif_tensor x;
    char tx[128], text[160];
    unsigned char seen[SBIF_MAX_RANK] = {0};
    const sbif_json *item;
    size_t i;
    int valid;
    (void)n_outputs;
    operand(in, 0, &x);
    format_type(&x, tx, sizeof tx);
    json_render(a->list_json, text, sizeof text);
    for (i = 0, item = sbif_json_first(a->list_json); i < a->list_length; i++, item = sbif_json_next(item)) {
        if (!sbif_json_is_integer(item)) return type_error(error, "transpose perm %s must hold axis indices (integers)",
                                                           text);
    }
    for (i = 0; a->list != NULL && i < a->list_length; i++) {
        if (a->list[i] < 0) {
            return type_error(error, "transpose perm %s has a negative axis: perm counts axes from 0, never from the "
                              "end", text);
        }
    }
    /* a->list is NULL when an entry does not fit in int64: no axis of a value of rank <= SBIF_MAX_RANK */
    valid = a->list != NULL && a->list_length == (size_t)x.rank;
    for (i = 0; valid && i < a->list_length; i++) {
        valid = a->list[i] < x.rank && !seen[a->list[i]];
        if (valid) seen[a->list[i]] = 1;
    }
    if (!valid) {
        return type_error(error, "transpose perm %s is not a permutation of the %d axes of %s (each of 0..%d once)",
                          text, x.rank, tx, x.rank - 1);
    }
    if (x.rank > 0 && x.shape[0] < 0 && a->list[0] != 0) {
        return type_error(error, "transpose cannot move the batch dimension: perm %s of %s must start with 0", text,
                          tx);
    }
    out->dtype = x.dtype;
    out->rank = x.rank;
    for (i = 0; i < a->list_length; i++) out->shape[i] = x.shape[a->list[i]];
    return SBIF_OK;
}

/** Insert a dimension of `size` at `axis` (the output's rank is in->rank + 1). */
static void insert_dim(const sbif_tensor *in, int axis, int64_t size, sbif_tensor *out) {
    int i;
    *out = *in;
    out->rank = in->rank + 1;
    for (i = in->rank; i > axis; i--) out->shape[i] = in->shape[i - 1];
    out->shape[axis] = size;
}

static sbif_status infer_expand_dims(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                     sbif_error *error) {
    sbif_tensor x;
    int axis;
    (void)n_outputs;
    operand(in, 0, &x);
    if (check_rank(x.rank + 1, error) != SBIF_OK || normalize_axis(a, x.rank + 1, &axis, error) != SBIF_OK) {
        return error->status;
    }
    insert_dim(&x, axis, 1, out);
    return SBIF_OK;
}

static sbif_status infer_flatten(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                 sbif_error *error) {
    sbif_tensor x;
    int64_t width = 1;
    int i;
    (void)a;
    (void)n_outputs;
    operand(in, 0, &x);
    if (x.rank < 1) return type_error(error, "flatten needs a batch dimension");
    for (i = 1; i < x.rank; i++) {
        if (checked_mul(width, x.shape[i], &width) != 0) return dimension_too_large(error);
    }
    *out = x;
    out->rank = 2;
    out->shape[1] = width;
    return SBIF_OK;
}

static sbif_status infer_concat(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                sbif_error *error) {
    sbif_tensor first, t;
    char t1[128], t2[128];
    int64_t total = 0;
    int axis, i;
    size_t k;
    (void)n_outputs;
    operand(in, 0, &first);
    if (normalize_axis(a, first.rank, &axis, error) != SBIF_OK) return error->status;
    for (k = 0; k < in->count; k++) {
        operand(in, k, &t);
        format_type(&first, t1, sizeof t1);
        format_type(&t, t2, sizeof t2);
        if (t.dtype != first.dtype || t.rank != first.rank) {
            return type_error(error, "concat inputs differ in dtype or rank: %s and %s", t1, t2);
        }
        for (i = 0; i < t.rank; i++) {
            if (i != axis && t.shape[i] != first.shape[i]) {
                return type_error(error, "concat inputs differ outside axis %d: %s and %s", axis, t1, t2);
            }
        }
        if (t.shape[axis] < 0) return type_error(error, "concat cannot join along the batch dimension");
        if (checked_add(total, t.shape[axis], &total) != 0) return dimension_too_large(error);
    }
    *out = first;
    out->shape[axis] = total;
    return SBIF_OK;
}

static sbif_status infer_split(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                               sbif_error *error) {
    sbif_tensor x;
    char tx[128], text[160];
    int64_t total = 0;
    int axis, valid = a->list != NULL && a->list_length == n_outputs;
    size_t i;
    operand(in, 0, &x);
    if (normalize_axis(a, x.rank, &axis, error) != SBIF_OK) return error->status;
    json_render(a->list_json, text, sizeof text);
    for (i = 0; valid && i < a->list_length; i++) valid = a->list[i] > 0;
    if (!valid) {
        return type_error(error, "split sizes %s must be positive and one per output (%lu)", text,
                          (unsigned long)n_outputs);
    }
    if (x.shape[axis] < 0) return type_error(error, "split cannot cut along the batch dimension");
    for (i = 0; valid && i < a->list_length; i++) valid = checked_add(total, a->list[i], &total) == 0;
    if (!valid || total != x.shape[axis]) {
        format_type(&x, tx, sizeof tx);
        return type_error(error, "split sizes %s do not add up to dimension %d of %s", text, axis, tx);
    }
    *out = x;
    return SBIF_OK;
}

static sbif_status infer_stack(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                               sbif_error *error) {
    sbif_tensor first, t;
    int axis;
    size_t k;
    (void)n_outputs;
    operand(in, 0, &first);
    for (k = 1; k < in->count; k++) {
        operand(in, k, &t);
        if (!same_type(&t, &first)) {
            char t1[128], t2[128];
            format_type(&first, t1, sizeof t1);
            format_type(&t, t2, sizeof t2);
            return type_error(error, "stack inputs must share dtype and shape: %s, %s", t1, t2);
        }
    }
    if (check_rank(first.rank + 1, error) != SBIF_OK || normalize_axis(a, first.rank + 1, &axis, error) != SBIF_OK) {
        return error->status;
    }
    insert_dim(&first, axis, (int64_t)in->count, out);
    return SBIF_OK;
}

static sbif_status infer_squeeze(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                 sbif_error *error) {
    sbif_tensor x;
    int axis, i;
    (void)n_outputs;
    operand(in, 0, &x);
    if (normalize_axis(a, x.rank, &axis, error) != SBIF_OK) return error->status;
    if (x.shape[axis] < 0) return type_error(error, "squeeze cannot remove the batch dimension");
    if (x.shape[axis] != 1) {
        char tx[128];
        format_type(&x, tx, sizeof tx);
        return type_error(error, "squeeze axis %d of %s does not have size 1", axis, tx);
    }
    *out = x;
    out->rank = x.rank - 1;
    for (i = axis; i < out->rank; i++) out->shape[i] = x.shape[i + 1];
    return SBIF_OK;
}

/* DBL_MAX written out (2^1024 - 2^971): an integer literal above it is beyond the range of a double, also where strtod
 * would round it down to DBL_MAX, as the reference compares it exactly */
static const char DBL_MAX_DIGITS[] = "179769313486231570814527423731704356798070567525844996598917476803157260780028"
                                     "538760589558632766878171540458953514382464234321326889464182768467546703537516"
                                     "986049910576551282076245490090389328944075868508455133942304583236903222948165"
                                     "808559332123348274797826204144723168738177180919299881250404026184124858368";

/** Whether an integer literal's magnitude exceeds DBL_MAX (compared digit by digit: JSON has no leading zeros). */
static int integer_beyond_double(const sbif_json *value) {
    size_t sign = value->str[0] == '-', digits = value->length - sign, limit = sizeof DBL_MAX_DIGITS - 1;
    return digits > limit || (digits == limit && memcmp(value->str + sign, DBL_MAX_DIGITS, limit) > 0);
}

/** The value/dtype pairs `constant` allows (spec/ops.md): true and false suit every dtype; a number must be finite as
 * a double (the JSON parser refuses a fraction or exponent beyond it; an integer literal is compared here), is never
 * a bool, and is integral and within range for an integer dtype, where TF refuses it and a cast would wrap or
 * truncate it. */
static sbif_status check_constant_value(const sbif_json *value, sbif_dtype dtype, sbif_error *error) {
    char text[64];
    double real = 0.0;
    int64_t integer;
    if (value->kind != SBIF_JSON_NUMBER) return SBIF_OK;
    json_render(value, text, sizeof text);
    if (dtype == SBIF_BOOL) return type_error(error, "constant of dtype bool takes true or false, not a number");
    if (sbif_json_is_integer(value)) {
        if (integer_beyond_double(value)) return type_error(error, "constant value %s is not finite as a double", text);
        if (is_int_dtype(dtype) &&
            (sbif_json_int64(value, &integer) != 0 || !sbif_dtype_holds_integer(dtype, integer))) {
            return type_error(error, "constant value %s is out of range for %s", text, sbif_dtype_name(dtype));
        }
        return SBIF_OK;
    }
    if (!is_int_dtype(dtype)) return SBIF_OK;
    sbif_json_double(value, &real);
    if (real != floor(real)) {
        return type_error(error, "constant value %s is not an integer, as dtype %s needs", text,
                          sbif_dtype_name(dtype));
    }
    if (!(real >= -9223372036854775808.0 && real < 9223372036854775808.0) ||
        !sbif_dtype_holds_integer(dtype, (int64_t)real)) {
        return type_error(error, "constant value %s is out of range for %s", text, sbif_dtype_name(dtype));
    }
    return SBIF_OK;
}

static sbif_status infer_constant(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                  sbif_error *error) {
    sbif_dtype dtype;
    (void)in;
    (void)n_outputs;
    if (strlen(a->text) > 40 || sbif_dtype_parse(a->text, &dtype) != 0) {
        return type_error(error, "constant of unknown dtype '%.40s'", a->text);
    }
    if (check_constant_value(a->value, dtype, error) != SBIF_OK) return error->status;
    out->dtype = dtype;
    out->rank = 0;
    return SBIF_OK;
}

static sbif_status infer_cast(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                              sbif_error *error) {
    sbif_dtype to;
    (void)n_outputs;
    if (strlen(a->text) > 40 || sbif_dtype_parse(a->text, &to) != 0) {
        return type_error(error, "cast to unknown dtype '%.40s'", a->text);
    }
    operand(in, 0, out);
    out->dtype = to;
    return SBIF_OK;
}

static sbif_status infer_one_hot(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                 sbif_error *error) {
    sbif_tensor x;
    int negative = a->integer_json->str[0] == '-';
    (void)n_outputs;
    operand(in, 0, &x);
    if (!is_int_dtype(x.dtype)) {
        return type_error(error, "input has dtype %s, expected one of int32, int64, uint8, int8, int16, uint16",
                          sbif_dtype_name(x.dtype));
    }
    if (negative || (a->integer_fits && a->integer < 1)) {
        char text[64];
        json_render(a->integer_json, text, sizeof text);
        return type_error(error, "one_hot depth must be positive, got %s", text);
    }
    if (!a->integer_fits) return dimension_too_large(error);
    if (check_rank(x.rank + 1, error) != SBIF_OK) return error->status;
    insert_dim(&x, x.rank, a->integer, out);
    out->dtype = SBIF_FLOAT32;
    return SBIF_OK;
}

static sbif_status infer_softmax(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                 sbif_error *error) {
    (void)a;
    (void)n_outputs;
    operand(in, 0, out);
    if (require_float(out, "input", error) != SBIF_OK) return error->status;
    return require_rows(out, "softmax", error);
}

static sbif_status infer_argmax(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                sbif_error *error) {
    (void)a;
    (void)n_outputs;
    operand(in, 0, out);
    if (!is_float_dtype(out->dtype) && !is_int_dtype(out->dtype)) { /* TF 1.15 has no ArgMax kernel for bool */
        return type_error(error, "input has dtype %s, expected one of float32, float64, int32, int64, uint8, int8, "
                          "int16, uint16", sbif_dtype_name(out->dtype));
    }
    if (require_rows(out, "argmax", error) != SBIF_OK) return error->status;
    if (out->shape[out->rank - 1] == 0) return type_error(error, "argmax needs a last axis of at least one element");
    out->dtype = SBIF_INT64;
    out->rank--;
    return SBIF_OK;
}

static sbif_status infer_inverse_cdf_sample(const operands *in, const op_attrs *a, size_t n_outputs, sbif_tensor *out,
                                            sbif_error *error) {
    sbif_tensor p, u, expected;
    char tp[128], tu[128];
    (void)a;
    (void)n_outputs;
    operand(in, 0, &p);
    operand(in, 1, &u);
    if (require_float(&p, "p", error) != SBIF_OK || require_float(&u, "u", error) != SBIF_OK) return error->status;
    format_type(&p, tp, sizeof tp);
    format_type(&u, tu, sizeof tu);
    if (p.rank < 1 || p.shape[p.rank - 1] < 1) {
        return type_error(error, "inverse_cdf_sample needs p with a last axis of at least one entry, got %s", tp);
    }
    expected = p;
    expected.dtype = u.dtype;
    expected.shape[p.rank - 1] = 1;
    if (!same_type(&expected, &u)) {
        return type_error(error, "inverse_cdf_sample needs u of shape p.shape[:-1] + (1,), got p %s and u %s", tp, tu);
    }
    *out = p;
    out->dtype = SBIF_INT64;
    out->rank--;
    return SBIF_OK;
}

/* ==== kernels ===================================================================================================== */
/*
 * A kernel reads its operands and writes outputs whose types (and buffers, at least one byte each) the caller has
 * set up from the op's rule. Loops are bounded by the element counts of real buffers: a kernel returns early on an
 * empty output, so zero-sized dimensions cannot make it spin over the others.
 */

typedef sbif_status (*compute_fn)(const operands *in, const op_attrs *a, const sbif_tensor *out, void *const *out_data,
                                  size_t n_outputs, sbif_error *error);

/* ---- element-wise functions of one float ---- */

static float neg_f32(float x, float p) { (void)p; return -x; }
static double neg_f64(double x, double p) { (void)p; return -x; }
static float exp_f32(float x, float p) { (void)p; return expf(x); }
static double exp_f64(double x, double p) { (void)p; return exp(x); }
static float log_f32(float x, float p) { (void)p; return logf(x); }
static double log_f64(double x, double p) { (void)p; return log(x); }
/* nearbyint rounds to the nearest integer, ties to even, in the default rounding mode */
static float round_f32(float x, float p) { (void)p; return nearbyintf(x); }
static double round_f64(double x, double p) { (void)p; return nearbyint(x); }
static float relu_f32(float x, float p) { (void)p; return x < 0.0f ? 0.0f : x; }
static double relu_f64(double x, double p) { (void)p; return x < 0.0 ? 0.0 : x; }

static float relu6_f32(float x, float p) {
    float t = x < 0.0f ? 0.0f : x;
    (void)p;
    return 6.0f < t ? 6.0f : t;
}

static double relu6_f64(double x, double p) {
    double t = x < 0.0 ? 0.0 : x;
    (void)p;
    return 6.0 < t ? 6.0 : t;
}

/* TF 1.15's float32 tanh (Eigen's generic_fast_tanh_float): x clamped to [-9, 9], then x * p(x^2) / q(x^2), each
 * polynomial by Horner's rule from its highest coefficient, every step rounded (spec/ops.md "tanh"). */
#define TANH_CLAMP 9.0f
static const float TANH_NUMERATOR[7] = {-2.76076847742355e-16f, 2.00018790482477e-13f, -8.60467152213735e-11f,
                                        5.12229709037114e-08f, 1.48572235717979e-05f, 6.37261928875436e-04f,
                                        4.89352455891786e-03f};
static const float TANH_DENOMINATOR[4] = {1.19825839466702e-06f, 1.18534705686654e-04f, 2.26843463243900e-03f,
                                          4.89352518554385e-03f};
#define TANH_NUMERATOR_TERMS ((int)(sizeof TANH_NUMERATOR / sizeof TANH_NUMERATOR[0]))
#define TANH_DENOMINATOR_TERMS ((int)(sizeof TANH_DENOMINATOR / sizeof TANH_DENOMINATOR[0]))

/** TF 1.15's float32 tanh of one value, reproduced operation for operation. */
static float tanh_f32(float a, float unused) {
    float x = TANH_CLAMP < a ? TANH_CLAMP : a; /* clamp to [-9, 9]; NaN stays NaN */
    float x2, p, q;
    int i;
    (void)unused;
    x = x < -TANH_CLAMP ? -TANH_CLAMP : x;
    x2 = x * x;
    p = TANH_NUMERATOR[0];
    for (i = 1; i < TANH_NUMERATOR_TERMS; i++) p = x2 * p + TANH_NUMERATOR[i];
    p = x * p;
    q = TANH_DENOMINATOR[0];
    for (i = 1; i < TANH_DENOMINATOR_TERMS; i++) q = x2 * q + TANH_DENOMINATOR[i];
    return p / q;
}

#if defined(__AVX__) && defined(__GNUC__) && !defined(SBIF_KERNELS_PORTABLE)
#include <immintrin.h>
/** Vectors of 8 floats per iteration of tanh_f32_array's loop. */
#define TANH_VECTORS 2
#endif

/** y[i] = tanh_f32(x[i]) for i < n. With AVX the same steps on 8 floats at once, the clamp as min and max (which
 * return their second operand when one is NaN, as the comparisons above do): the same bits. Left to itself, the
 * compiler vectorises tanh_f32 with the clamp as comparisons and blends after the division, a slower loop. */
static void tanh_f32_array(const float *x, float *y, int64_t n) {
    int64_t i = 0;
#ifdef TANH_VECTORS
    const __m256 high = _mm256_set1_ps(TANH_CLAMP), low = _mm256_set1_ps(-TANH_CLAMP);
    for (; i + 8 * TANH_VECTORS <= n; i += 8 * TANH_VECTORS) {
        __m256 v[TANH_VECTORS], v2[TANH_VECTORS], p[TANH_VECTORS], q[TANH_VECTORS];
        int k, j;
        for (k = 0; k < TANH_VECTORS; k++) {
            v[k] = _mm256_max_ps(low, _mm256_min_ps(high, _mm256_loadu_ps(x + i + 8 * k)));
            v2[k] = _mm256_mul_ps(v[k], v[k]);
            p[k] = _mm256_set1_ps(TANH_NUMERATOR[0]);
            q[k] = _mm256_set1_ps(TANH_DENOMINATOR[0]);
        }
        for (j = 1; j < TANH_NUMERATOR_TERMS; j++)
            for (k = 0; k < TANH_VECTORS; k++) {
                p[k] = _mm256_add_ps(_mm256_mul_ps(v2[k], p[k]), _mm256_set1_ps(TANH_NUMERATOR[j]));
                if (j < TANH_DENOMINATOR_TERMS)
                    q[k] = _mm256_add_ps(_mm256_mul_ps(v2[k], q[k]), _mm256_set1_ps(TANH_DENOMINATOR[j]));
            }
        for (k = 0; k < TANH_VECTORS; k++)
            _mm256_storeu_ps(y + i + 8 * k, _mm256_div_ps(_mm256_mul_ps(v[k], p[k]), q[k]));
    }
#endif
    for (; i < n; i++) y[i] = tanh_f32(x[i], 0.0f);
}

static double tanh_f64(double x, double p) { (void)p; return tanh(x); }

/** TF's float32 exp on packets (Eigen's pexp: Cephes range reduction and polynomial, no fused multiply-add), within
 * 1 ULP of e^x like expf (spec/ops.md `exp`), but a loop of it vectorises where calls to expf cannot: sigmoid takes
 * it, an LSTM's gates being most of that op's work. -inf gives 0, +inf and NaN themselves; from 88.3763 on it is
 * +inf, in spec/ops.md's unspecified band below 88.7228. The constants are TF's (sbif/runtime/numba/kernels.py
 * computes the same function for the numba backend). */
static inline float exp_packet_f32(float v) {
    const float hi = 88.3762626647950f, lo = -88.3762626647949f, log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    float x = v < hi ? v : hi; /* clamped (NaN too, so that the conversion to an integer is defined; the last line */
    float m, r, r2, y, scale;  /* gives NaN back) */
    int32_t bits;
    x = x > lo ? x : lo;
    m = floorf(x * log2e + 0.5f);
    r = x - m * ln2_hi;
    r = r - m * ln2_lo;
    r2 = r * r;
    y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r2 + r;
    y = y + 1.0f;
    bits = (int32_t)(m + 127.0f) * (INT32_C(1) << 23); /* 2^m as a float's bits (+inf when m is 128) */
    memcpy(&scale, &bits, sizeof scale);
    y = y * scale;
    return v <= y ? y : v; /* v where it is NaN or above the result (+inf), in one comparison a vector takes */
}

/** TF's float32 sigmoid: exactly 0 below -18 and 1 above 18, else 1 / (1 + e^-x) (spec/ops.md), written without
 * branches so that a loop of it vectorises (NaN fails both comparisons and gives NaN). */
static float sigmoid_f32(float x, float p) {
    float y = 1.0f / (1.0f + exp_packet_f32(-x));
    (void)p;
    return x < -18.0f ? 0.0f : 18.0f < x ? 1.0f : y;
}

static double sigmoid_f64(double x, double p) {
    (void)p;
    return 1.0 / (1.0 + exp(-x));
}

/* TF computes exp(x) - 1, not expm1 */
static float elu_f32(float x, float p) { (void)p; return x < 0.0f ? expf(x) - 1.0f : x; }
static double elu_f64(double x, double p) { (void)p; return x < 0.0 ? exp(x) - 1.0 : x; }

static float selu_f32(float x, float p) {
    const float scale = 1.0507009873554804934193349852946f, scale_alpha = 1.7580993408473768599402175208123f;
    (void)p;
    return x < 0.0f ? scale_alpha * (expf(x) - 1.0f) : scale * x;
}

static double selu_f64(double x, double p) {
    const double scale = 1.0507009873554804934193349852946, scale_alpha = 1.7580993408473768599402175208123;
    (void)p;
    return x < 0.0 ? scale_alpha * (exp(x) - 1.0) : scale * x;
}

/** TF 1.15's composition, with threshold t = log(eps) + 2: x above -t, exp(x) below t, log(exp(x) + 1) between. */
static float softplus_f32(float x, float t) {
    if (x > -t) return x;
    if (x < t) return expf(x);
    return logf(expf(x) + 1.0f);
}

static double softplus_f64(double x, double t) {
    if (x > -t) return x;
    if (x < t) return exp(x);
    return log(exp(x) + 1.0);
}

static float softsign_f32(float x, float p) { (void)p; return x / (fabsf(x) + 1.0f); }
static double softsign_f64(double x, double p) { (void)p; return x / (fabs(x) + 1.0); }
/* torch's erf, of which SB3's GELU is composed: C99's erff and erf */
static float erf_f32(float x, float p) { (void)p; return erff(x); }
static double erf_f64(double x, double p) { (void)p; return erf(x); }
static float swish_f32(float x, float p) { return x * sigmoid_f32(x, p); }
static double swish_f64(double x, double p) { return x * sigmoid_f64(x, p); }
/* a selection, not max(x, alpha * x), so any alpha works */
static float leaky_relu_f32(float x, float alpha) { return x > 0.0f ? x : x * alpha; }
static double leaky_relu_f64(double x, double alpha) { return x > 0.0 ? x : x * alpha; }

/* compute_NAME of an element-wise op: CALL, from the operands `in`, the output `out` and the attributes `a` */
#define ELEMENTWISE_OP(NAME, CALL)                                                                                  \
    static sbif_status compute_##NAME(const operands *in, const op_attrs *a, const sbif_tensor *out,               \
                                      void *const *out_data, size_t n_outputs, sbif_error *error) {                 \
        (void)a;                                                                                                    \
        (void)out_data;                                                                                             \
        (void)n_outputs;                                                                                            \
        (void)error;                                                                                                \
        return CALL;                                                                                                \
    }

/* compute_NAME of a function of one float: the loops are written out per op, so that NAME_f32 and NAME_f64 are
 * inlined (and vectorised where they can be) rather than called through a pointer per element */
#define UNARY_OP(NAME, PARAMETER)                                                                                  \
    UNARY_OP_LOOP(NAME, PARAMETER, for (i = 0; i < n; i++) target[i] = NAME##_f32(source[i], p))
/* UNARY_OP with the float32 loop given: FLOAT_LOOP writes target[0..n) from source[0..n) (p: the parameter) */
#define UNARY_OP_LOOP(NAME, PARAMETER, FLOAT_LOOP)                                                                 \
    static sbif_status compute_##NAME(const operands *in, const op_attrs *a, const sbif_tensor *out,               \
                                      void *const *out_data, size_t n_outputs, sbif_error *error) {                 \
        sbif_tensor x;                                                                                              \
        int64_t i, n = type_count(out);                                                                             \
        double parameter = PARAMETER;                                                                               \
        (void)a;                                                                                                    \
        (void)out_data;                                                                                             \
        (void)n_outputs;                                                                                            \
        (void)error;                                                                                                \
        operand(in, 0, &x);                                                                                         \
        if (x.dtype == SBIF_FLOAT32) {                                                                              \
            const float *source = x.data;                                                                           \
            float *target = out->data, p = (float)parameter;                                                        \
            (void)p;                                                                                                \
            FLOAT_LOOP;                                                                                             \
        } else {                                                                                                    \
            const double *source = x.data;                                                                          \
            double *target = out->data;                                                                             \
            for (i = 0; i < n; i++) target[i] = NAME##_f64(source[i], parameter);                                   \
        }                                                                                                           \
        return SBIF_OK;                                                                                             \
    }
UNARY_OP(neg, 0.0)
UNARY_OP(exp, 0.0)
UNARY_OP(log, 0.0)
UNARY_OP(round, 0.0)
UNARY_OP(relu, 0.0)
UNARY_OP(relu6, 0.0)
UNARY_OP_LOOP(tanh, 0.0, tanh_f32_array(source, target, n))
UNARY_OP(sigmoid, 0.0)
UNARY_OP(elu, 0.0)
UNARY_OP(selu, 0.0)
UNARY_OP(softsign, 0.0)
UNARY_OP(swish, 0.0)
UNARY_OP(erf, 0.0)
UNARY_OP(leaky_relu, a->real)
UNARY_OP(softplus, out->dtype == SBIF_FLOAT32 ? (double)(logf(FLT_EPSILON) + 2.0f) : log(DBL_EPSILON) + 2.0)
#undef UNARY_OP
#undef UNARY_OP_LOOP

/* ---- broadcasting ---- */

/** Walks the rows (all axes but the last) of a broadcast output, tracking each operand's element offset. The axes
 * are the output's coalesced: extent-1 axes dropped and adjacent axes merged wherever every operand is contiguous
 * across them, so that x [B,84,84,4] - low [84,84,4] walks B rows of 28224 unit-stride elements rather than
 * B x 84 x 84 rows of 4. */
typedef struct broadcast_walk {
    int rank;
    int operands;
    int64_t shape[SBIF_MAX_RANK];
    int64_t stride[3][SBIF_MAX_RANK]; /* in elements; 0 along axes the operand is stretched on */
    int64_t index[SBIF_MAX_RANK];
    int64_t offset[3];
} broadcast_walk;

static void walk_start(broadcast_walk *w, const sbif_tensor *out, const sbif_tensor *const *in, int n) {
    int64_t stride[3][SBIF_MAX_RANK]; /* each operand's strides along the output's axes, before coalescing */
    int k, i, merge;
    memset(w, 0, sizeof *w);
    memset(stride, 0, sizeof stride);
    w->operands = n;
    for (k = 0; k < n; k++) {
        int64_t step = 1;
        for (i = in[k]->rank - 1; i >= 0; i--) {
            int axis = out->rank - (in[k]->rank - i);
            stride[k][axis] = in[k]->shape[i] == 1 ? 0 : step;
            step *= in[k]->shape[i];
        }
    }
    /* the output is contiguous, so an axis merges into the one outside it when every operand's outer stride is
     * its inner stride times the inner extent (zero strides, a broadcast's, thus merge only with zero strides) */
    for (i = 0; i < out->rank; i++) {
        if (out->shape[i] == 1) continue;
        merge = w->rank > 0;
        for (k = 0; k < n && merge; k++) merge = w->stride[k][w->rank - 1] == stride[k][i] * out->shape[i];
        if (merge) w->shape[w->rank - 1] *= out->shape[i];
        else w->shape[w->rank++] = out->shape[i];
        for (k = 0; k < n; k++) w->stride[k][w->rank - 1] = stride[k][i];
    }
    if (w->rank == 0) {
        w->rank = 1;
        w->shape[0] = 1;
    }
}

static int64_t walk_rows(const broadcast_walk *w) {
    int64_t rows = 1;
    int i;
    for (i = 0; i < w->rank - 1; i++) rows *= w->shape[i];
    return rows;
}

static void walk_next_row(broadcast_walk *w) {
    int axis, k;
    for (axis = w->rank - 2; axis >= 0; axis--) {
        for (k = 0; k < w->operands; k++) w->offset[k] += w->stride[k][axis];
        if (++w->index[axis] < w->shape[axis]) return;
        for (k = 0; k < w->operands; k++) w->offset[k] -= w->stride[k][axis] * w->shape[axis];
        w->index[axis] = 0;
    }
}

typedef void (*binary_kernel)(const void *x, const void *y, void *z, broadcast_walk *w);

/* One row z[j] = EXPR(u = a[j * SX], v = b[j * SY]). The kernels instantiate it with the literal strides 1 and 0
 * that coalesced walks mostly have (both unit, or one operand a broadcast scalar), which the compiler vectorises,
 * and with the row's own strides otherwise. */
#define BINARY_ROW(T, R, EXPR, SX, SY)                                                                             \
    for (j = 0; j < inner; j++) {                                                                                 \
        T u = a[j * (SX)], v = b[j * (SY)];                                                                       \
        z[j] = (R)(EXPR);                                                                                         \
    }

/* integer arithmetic wraps modulo 2^n, computed in unsigned types so that it is defined behaviour in C */
#define DEFINE_BINARY(NAME, T, R, EXPR)                                                                            \
    static void NAME(const void *xs, const void *ys, void *zs, broadcast_walk *w) {                               \
        const T *x = (const T *)xs, *y = (const T *)ys;                                                           \
        R *z = (R *)zs;                                                                                           \
        int64_t rows = walk_rows(w), inner = w->shape[w->rank - 1], r, j;                                         \
        int64_t sx = w->stride[0][w->rank - 1], sy = w->stride[1][w->rank - 1];                                   \
        for (r = 0; r < rows; r++, z += inner) {                                                                  \
            const T *a = x + w->offset[0], *b = y + w->offset[1];                                                 \
            if (sx == 1 && sy == 1) BINARY_ROW(T, R, EXPR, 1, 1)                                                  \
            else if (sx == 1 && sy == 0) BINARY_ROW(T, R, EXPR, 1, 0)                                             \
            else if (sx == 0 && sy == 1) BINARY_ROW(T, R, EXPR, 0, 1)                                             \
            else BINARY_ROW(T, R, EXPR, sx, sy)                                                                   \
            walk_next_row(w);                                                                                     \
        }                                                                                                         \
    }

#define DEFINE_ARITHMETIC(OP, SYMBOL)                                                                              \
    DEFINE_BINARY(OP##_f32, float, float, u SYMBOL v)                                                              \
    DEFINE_BINARY(OP##_f64, double, double, u SYMBOL v)                                                            \
    DEFINE_BINARY(OP##_i8, int8_t, int8_t, (uint8_t)((uint32_t)u SYMBOL(uint32_t) v))                              \
    DEFINE_BINARY(OP##_i16, int16_t, int16_t, (uint16_t)((uint32_t)u SYMBOL(uint32_t) v))                          \
    DEFINE_BINARY(OP##_i32, int32_t, int32_t, (uint32_t)u SYMBOL(uint32_t) v)                                      \
    DEFINE_BINARY(OP##_i64, int64_t, int64_t, (uint64_t)u SYMBOL(uint64_t) v)                                      \
    DEFINE_BINARY(OP##_u8, uint8_t, uint8_t, (uint32_t)u SYMBOL(uint32_t) v)                                       \
    DEFINE_BINARY(OP##_u16, uint16_t, uint16_t, (uint32_t)u SYMBOL(uint32_t) v)                                    \
    static const binary_kernel OP##_KERNELS[SBIF_DTYPE_COUNT] = {OP##_f32, OP##_f64, OP##_i8, OP##_i16, OP##_i32,  \
                                                                 OP##_i64, OP##_u8,  OP##_u16, NULL};
DEFINE_ARITHMETIC(add, +)
DEFINE_ARITHMETIC(sub, -)
DEFINE_ARITHMETIC(mul, *)
#undef DEFINE_ARITHMETIC

DEFINE_BINARY(div_f32, float, float, u / v)
DEFINE_BINARY(div_f64, double, double, u / v)
static const binary_kernel div_KERNELS[SBIF_DTYPE_COUNT] = {div_f32, div_f64, NULL, NULL, NULL, NULL, NULL, NULL, NULL};

DEFINE_BINARY(less_f32, float, uint8_t, u < v)
DEFINE_BINARY(less_f64, double, uint8_t, u < v)
DEFINE_BINARY(less_i8, int8_t, uint8_t, u < v)
DEFINE_BINARY(less_i16, int16_t, uint8_t, u < v)
DEFINE_BINARY(less_i32, int32_t, uint8_t, u < v)
DEFINE_BINARY(less_i64, int64_t, uint8_t, u < v)
DEFINE_BINARY(less_u8, uint8_t, uint8_t, u < v)
DEFINE_BINARY(less_u16, uint16_t, uint8_t, u < v)
static const binary_kernel less_KERNELS[SBIF_DTYPE_COUNT] = {less_f32, less_f64, less_i8, less_i16, less_i32,
                                                             less_i64, less_u8,  less_u16, less_u8};
#undef DEFINE_BINARY
#undef BINARY_ROW

/** An element-wise operand: a uniform file tensor (find_uniform_tensors) as its one value, a scalar broadcast to the
 * output as the tensor was. */
static void elementwise_operand(const operands *in, size_t index, sbif_tensor *t) {
    operand(in, index, t);
    if (in->tensors == NULL && is_uniform(in->model, in->ids[index])) t->rank = 0;
}

static sbif_status map_binary(const operands *in, const sbif_tensor *out, const binary_kernel *kernels) {
    sbif_tensor x, y;
    const sbif_tensor *both[2];
    broadcast_walk w;
    if (type_count(out) == 0) return SBIF_OK;
    elementwise_operand(in, 0, &x);
    elementwise_operand(in, 1, &y);
    both[0] = &x;
    both[1] = &y;
    walk_start(&w, out, both, 2);
    kernels[x.dtype](x.data, y.data, out->data, &w);
    return SBIF_OK;
}

#define BINARY_OP(NAME) ELEMENTWISE_OP(NAME, map_binary(in, out, NAME##_KERNELS))
BINARY_OP(add)
BINARY_OP(sub)
BINARY_OP(mul)
BINARY_OP(div)
BINARY_OP(less)
#undef BINARY_OP
#undef ELEMENTWISE_OP

/* numpy.minimum / maximum: NaN in either operand wins */
static float max_f32(float a, float b) { return a != a ? a : b != b ? b : a < b ? b : a; }
static float min_f32(float a, float b) { return a != a ? a : b != b ? b : b < a ? b : a; }
static double max_f64(double a, double b) { return a != a ? a : b != b ? b : a < b ? b : a; }
static double min_f64(double a, double b) { return a != a ? a : b != b ? b : b < a ? b : a; }
#define MAX_INT(a, b) ((a) < (b) ? (b) : (a))
#define MIN_INT(a, b) ((b) < (a) ? (b) : (a))

typedef void (*clip_kernel)(const void *x, const void *low, const void *high, void *y, broadcast_walk *w);

/* one row of clip, its strides literal (and vectorised) in the common rows as in BINARY_ROW: all unit, or scalar
 * bounds */
#define CLIP_ROW(T, LOWER, UPPER, SX, SL, SH)                                                                      \
    for (j = 0; j < inner; j++) {                                                                                 \
        T t = LOWER(a[j * (SX)], b[j * (SL)]);                                                                    \
        y[j] = UPPER(t, c[j * (SH)]);                                                                             \
    }

#define DEFINE_CLIP(NAME, T, LOWER, UPPER)                                                                         \
    static void NAME(const void *xs, const void *ls, const void *hs, void *ys, broadcast_walk *w) {               \
        const T *x = (const T *)xs, *low = (const T *)ls, *high = (const T *)hs;                                  \
        T *y = (T *)ys;                                                                                           \
        int64_t rows = walk_rows(w), inner = w->shape[w->rank - 1], r, j;                                         \
        int64_t sx = w->stride[0][w->rank - 1], sl = w->stride[1][w->rank - 1], sh = w->stride[2][w->rank - 1];   \
        for (r = 0; r < rows; r++, y += inner) {                                                                  \
            const T *a = x + w->offset[0], *b = low + w->offset[1], *c = high + w->offset[2];                     \
            if (sx == 1 && sl == 1 && sh == 1) CLIP_ROW(T, LOWER, UPPER, 1, 1, 1)                                 \
            else if (sx == 1 && sl == 0 && sh == 0) CLIP_ROW(T, LOWER, UPPER, 1, 0, 0)                            \
            else CLIP_ROW(T, LOWER, UPPER, sx, sl, sh)                                                            \
            walk_next_row(w);                                                                                     \
        }                                                                                                         \
    }
DEFINE_CLIP(clip_f32, float, max_f32, min_f32)
DEFINE_CLIP(clip_f64, double, max_f64, min_f64)
DEFINE_CLIP(clip_i8, int8_t, MAX_INT, MIN_INT)
DEFINE_CLIP(clip_i16, int16_t, MAX_INT, MIN_INT)
DEFINE_CLIP(clip_i32, int32_t, MAX_INT, MIN_INT)
DEFINE_CLIP(clip_i64, int64_t, MAX_INT, MIN_INT)
DEFINE_CLIP(clip_u8, uint8_t, MAX_INT, MIN_INT)
DEFINE_CLIP(clip_u16, uint16_t, MAX_INT, MIN_INT)
#undef DEFINE_CLIP
#undef CLIP_ROW
static const clip_kernel CLIP_KERNELS[SBIF_DTYPE_COUNT] = {clip_f32, clip_f64, clip_i8, clip_i16, clip_i32,
                                                           clip_i64, clip_u8,  clip_u16, NULL};

static sbif_status compute_clip(const operands *in, const op_attrs *a, const sbif_tensor *out, void *const *out_data,
                                size_t n_outputs, sbif_error *error) {
    sbif_tensor x, low, high;
    const sbif_tensor *all[3];
    broadcast_walk w;
    (void)a;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    if (type_count(out) == 0) return SBIF_OK;
    operand(in, 0, &x);
    operand(in, 1, &low);
    operand(in, 2, &high);
    all[0] = &x;
    all[1] = &low;
    all[2] = &high;
    walk_start(&w, out, all, 3);
    CLIP_KERNELS[x.dtype](x.data, low.data, high.data, out->data, &w);
    return SBIF_OK;
}

/* where: the selected element's bytes copied as a word of its size, whatever its dtype (NaN payloads, -0 kept) */
typedef void (*where_kernel)(const uint8_t *condition, const void *x, const void *y, void *z, broadcast_walk *w);

#define DEFINE_WHERE(NAME, T)                                                                                      \
    static void NAME(const uint8_t *condition, const void *xs, const void *ys, void *zs, broadcast_walk *w) {     \
        const T *x = (const T *)xs, *y = (const T *)ys;                                                           \
        T *z = (T *)zs;                                                                                           \
        int64_t rows = walk_rows(w), inner = w->shape[w->rank - 1], r, j;                                         \
        int64_t sc = w->stride[0][w->rank - 1], sx = w->stride[1][w->rank - 1], sy = w->stride[2][w->rank - 1];   \
        for (r = 0; r < rows; r++, z += inner) {                                                                  \
            const uint8_t *k = condition + w->offset[0];                                                          \
            const T *a = x + w->offset[1], *b = y + w->offset[2];                                                 \
            if (sc == 1 && sx == 1 && sy == 1) /* the common row, as in BINARY_ROW: literal strides vectorise */  \
                for (j = 0; j < inner; j++) z[j] = k[j] ? a[j] : b[j];                                            \
            else                                                                                                  \
                for (j = 0; j < inner; j++) z[j] = k[j * sc] ? a[j * sx] : b[j * sy];                             \
            walk_next_row(w);                                                                                     \
        }                                                                                                         \
    }
DEFINE_WHERE(where_8, uint8_t)
DEFINE_WHERE(where_16, uint16_t)
DEFINE_WHERE(where_32, uint32_t)
DEFINE_WHERE(where_64, uint64_t)
#undef DEFINE_WHERE

static sbif_status compute_where(const operands *in, const op_attrs *a, const sbif_tensor *out, void *const *out_data,
                                 size_t n_outputs, sbif_error *error) {
    sbif_tensor condition, x, y;
    const sbif_tensor *all[3];
    broadcast_walk w;
    where_kernel kernel;
    (void)a;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    if (type_count(out) == 0) return SBIF_OK;
    operand(in, 0, &condition);
    operand(in, 1, &x);
    operand(in, 2, &y);
    all[0] = &condition;
    all[1] = &x;
    all[2] = &y;
    switch (sbif_dtype_size(out->dtype)) {
    case 8: kernel = where_64; break;
    case 4: kernel = where_32; break;
    case 2: kernel = where_16; break;
    default: kernel = where_8; break;
    }
    walk_start(&w, out, all, 3);
    kernel((const uint8_t *)condition.data, x.data, y.data, out->data, &w);
    return SBIF_OK;
}

/* ---- conversions ---- */

/** One element of any dtype: a float (as double) or an integer (bools are 0 and 1). */
typedef struct scalar {
    int is_float;
    double real;
    int64_t integer;
} scalar;

static scalar load_scalar(const void *data, sbif_dtype dtype, int64_t k) {
    scalar s = {0, 0.0, 0};
    switch (dtype) {
    case SBIF_FLOAT32: s.is_float = 1; s.real = ((const float *)data)[k]; break;
    case SBIF_FLOAT64: s.is_float = 1; s.real = ((const double *)data)[k]; break;
    case SBIF_INT8: s.integer = ((const int8_t *)data)[k]; break;
    case SBIF_INT16: s.integer = ((const int16_t *)data)[k]; break;
    case SBIF_INT32: s.integer = ((const int32_t *)data)[k]; break;
    case SBIF_INT64: s.integer = ((const int64_t *)data)[k]; break;
    case SBIF_UINT8: s.integer = ((const uint8_t *)data)[k]; break;
    case SBIF_UINT16: s.integer = ((const uint16_t *)data)[k]; break;
    case SBIF_BOOL: s.integer = ((const uint8_t *)data)[k] != 0; break;
    }
    return s;
}

/* float -> int truncates toward zero, to int64 for an int64 target and to int32 for the others (spec/ops.md cast);
 * NaN, +-inf and truncations outside that type give its lowest value (then wrapped to narrower types: 0), as TF and
 * NumPy give on x86, without the undefined conversion C would make of them */
static int64_t truncate_to_int64(double v) {
    return v >= -9223372036854775808.0 && v < 9223372036854775808.0 ? (int64_t)v : INT64_MIN;
}

static int64_t truncate_to_int32(double v) {
    return v > -2147483649.0 && v < 2147483648.0 ? (int64_t)v : INT32_MIN;
}

/** Store with the cast rules of spec/ops.md: float rounding to nearest even, integer wrap-around modulo 2^n, x != 0
 * for bool. int64 -> float32 converts directly (one rounding). */
static void store_scalar(void *data, sbif_dtype dtype, int64_t k, scalar s) {
    int64_t i = s.integer;
    if (s.is_float) i = dtype == SBIF_INT64 ? truncate_to_int64(s.real) : truncate_to_int32(s.real);
    switch (dtype) {
    case SBIF_FLOAT32: ((float *)data)[k] = s.is_float ? (float)s.real : (float)s.integer; break;
    case SBIF_FLOAT64: ((double *)data)[k] = s.is_float ? s.real : (double)s.integer; break;
    case SBIF_INT8: ((int8_t *)data)[k] = (int8_t)(uint8_t)(uint64_t)i; break;
    case SBIF_INT16: ((int16_t *)data)[k] = (int16_t)(uint16_t)(uint64_t)i; break;
    case SBIF_INT32: ((int32_t *)data)[k] = (int32_t)(uint32_t)(uint64_t)i; break;
    case SBIF_INT64: ((int64_t *)data)[k] = i; break;
    case SBIF_UINT8: ((uint8_t *)data)[k] = (uint8_t)(uint64_t)i; break;
    case SBIF_UINT16: ((uint16_t *)data)[k] = (uint16_t)(uint64_t)i; break;
    case SBIF_BOOL: ((uint8_t *)data)[k] = s.is_float ? s.real != 0.0 : s.integer != 0; break;
    }
}

static sbif_status compute_cast(const operands *in, const op_attrs *a, const sbif_tensor *out, void *const *out_data,
                                size_t n_outputs, sbif_error *error) {
    sbif_tensor x;
    int64_t k, n = type_count(out);
    (void)a;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    operand(in, 0, &x);
    /* the casts every observation goes through, without a conversion per element: to its own dtype (bool excepted:
     * the general path makes any nonzero byte 1) and images' uint8 to float32 */
    if (x.dtype == out->dtype && x.dtype != SBIF_BOOL) {
        if (n > 0) memcpy(out->data, x.data, (size_t)n * sbif_dtype_size(x.dtype));
    } else if (x.dtype == SBIF_UINT8 && out->dtype == SBIF_FLOAT32) {
        const uint8_t *source = x.data;
        float *target = out->data;
        for (k = 0; k < n; k++) target[k] = (float)source[k];
    } else {
        for (k = 0; k < n; k++) store_scalar(out->data, out->dtype, k, load_scalar(x.data, x.dtype, k));
    }
    return SBIF_OK;
}

static sbif_status compute_constant(const operands *in, const op_attrs *a, const sbif_tensor *out,
                                    void *const *out_data, size_t n_outputs, sbif_error *error) {
    scalar s = {0, 0.0, 0};
    (void)in;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    if (a->value->kind == SBIF_JSON_TRUE) s.integer = 1;
    else if (a->value->kind == SBIF_JSON_NUMBER && sbif_json_int64(a->value, &s.integer) != 0) {
        s.is_float = 1;
        sbif_json_double(a->value, &s.real);
    }
    store_scalar(out->data, out->dtype, 0, s);
    return SBIF_OK;
}

static sbif_status compute_one_hot(const operands *in, const op_attrs *a, const sbif_tensor *out,
                                   void *const *out_data, size_t n_outputs, sbif_error *error) {
    sbif_tensor x;
    float *y = out->data;
    int64_t k, n, depth = out->shape[out->rank - 1];
    (void)a;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    operand(in, 0, &x);
    n = type_count(&x);
    if (type_count(out) == 0) return SBIF_OK;
    memset(y, 0, (size_t)type_count(out) * sizeof *y);
    for (k = 0; k < n; k++) {
        int64_t index = load_scalar(x.data, x.dtype, k).integer;
        if (index >= 0 && index < depth) y[k * depth + index] = 1.0f;
    }
    return SBIF_OK;
}

/* ---- reductions over the last axis ---- */

/** rows x n: the shape's leading axes and its last one. */
static void rows_of(const sbif_tensor *t, int64_t *rows, int64_t *n) {
    *n = t->rank > 0 ? t->shape[t->rank - 1] : 1;
    *rows = t->rank > 0 ? element_count(t->shape, t->rank - 1) : 1;
}

/** The first operand x of an op over the last axis, as rows x n; 0 when `out` is empty, so there is nothing to
 * compute. */
static int rows_to_compute(const operands *in, const sbif_tensor *out, sbif_tensor *x, int64_t *rows, int64_t *n) {
    operand(in, 0, x);
    rows_of(x, rows, n);
    return type_count(out) != 0;
}

/* TF's ArgMaxTupleReducer: move only to a strictly greater element, starting from (0, lowest finite value), so NaN
 * is never chosen, ties keep the first index and a row with nothing above the lowest value gives 0 */
#define DEFINE_ARGMAX(NAME, T, LOWEST)                                                                             \
    static void NAME(const void *xs, int64_t *y, int64_t rows, int64_t n) {                                       \
        const T *x = (const T *)xs;                                                                               \
        int64_t r, j;                                                                                             \
        for (r = 0; r < rows; r++, x += n) {                                                                      \
            int64_t best = 0;                                                                                     \
            T value = LOWEST;                                                                                     \
            for (j = 0; j < n; j++) {                                                                             \
                if (x[j] > value) {                                                                               \
                    best = j;                                                                                     \
                    value = x[j];                                                                                 \
                }                                                                                                 \
            }                                                                                                     \
            y[r] = best;                                                                                          \
        }                                                                                                         \
    }
DEFINE_ARGMAX(argmax_f32, float, -FLT_MAX)
DEFINE_ARGMAX(argmax_f64, double, -DBL_MAX)
DEFINE_ARGMAX(argmax_i8, int8_t, INT8_MIN)
DEFINE_ARGMAX(argmax_i16, int16_t, INT16_MIN)
DEFINE_ARGMAX(argmax_i32, int32_t, INT32_MIN)
DEFINE_ARGMAX(argmax_i64, int64_t, INT64_MIN)
DEFINE_ARGMAX(argmax_u8, uint8_t, 0)
DEFINE_ARGMAX(argmax_u16, uint16_t, 0)
#undef DEFINE_ARGMAX
typedef void (*argmax_kernel)(const void *x, int64_t *y, int64_t rows, int64_t n);
static const argmax_kernel ARGMAX_KERNELS[SBIF_DTYPE_COUNT] = {argmax_f32, argmax_f64, argmax_i8,
                                                               argmax_i16, argmax_i32, argmax_i64,
                                                               argmax_u8,  argmax_u16, NULL /* bool: refused */};

static sbif_status compute_argmax(const operands *in, const op_attrs *a, const sbif_tensor *out, void *const *out_data,
                                  size_t n_outputs, sbif_error *error) {
    sbif_tensor x;
    int64_t rows, n;
    (void)a;
    (void)out_data;
    (void)n_outputs;
    if (!rows_to_compute(in, out, &x, &rows, &n)) return SBIF_OK;
    if (n == 0) return fail(error, SBIF_ERR_INPUT, "argmax of an empty row (the batch is empty)");
    ARGMAX_KERNELS[x.dtype](x.data, out->data, rows, n);
    return SBIF_OK;
}

/* exp(x - max) * (1 / sum) per row, as TF (the difference is rounded before exp) */
#define DEFINE_SOFTMAX(NAME, T, EXP)                                                                               \
    static void NAME(const T *x, T *y, int64_t rows, int64_t n) {                                                 \
        int64_t r, j;                                                                                             \
        for (r = 0; r < rows; r++, x += n, y += n) {                                                              \
            T top = x[0], total, inverse;                                                                         \
            double sum = 0.0;                                                                                     \
            for (j = 1; j < n; j++) {                                                                             \
                if (x[j] > top) top = x[j];                                                                       \
            }                                                                                                     \
            for (j = 0; j < n; j++) {                                                                             \
                T shifted = x[j] - top;                                                                           \
                y[j] = EXP(shifted);                                                                              \
                sum += y[j];                                                                                      \
            }                                                                                                     \
            total = (T)sum;                                                                                       \
            inverse = (T)1 / total;                                                                               \
            for (j = 0; j < n; j++) y[j] = y[j] * inverse;                                                        \
        }                                                                                                         \
    }
DEFINE_SOFTMAX(softmax_f32, float, expf)
DEFINE_SOFTMAX(softmax_f64, double, exp)
#undef DEFINE_SOFTMAX

static sbif_status compute_softmax(const operands *in, const op_attrs *a, const sbif_tensor *out,
                                   void *const *out_data, size_t n_outputs, sbif_error *error) {
    sbif_tensor x;
    int64_t rows, n;
    (void)a;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    if (!rows_to_compute(in, out, &x, &rows, &n)) return SBIF_OK;
    if (x.dtype == SBIF_FLOAT32) softmax_f32(x.data, out->data, rows, n);
    else softmax_f64(x.data, out->data, rows, n);
    return SBIF_OK;
}

/* (x - m) / sqrt(v + epsilon) * gamma + beta per row, each step rounded; m and v are sums rounded once */
#define DEFINE_LAYER_NORM(NAME, T, SQRT)                                                                           \
    static void NAME(const T *x, const T *gamma, const T *beta, T epsilon, T *y, int64_t rows, int64_t n) {       \
        int64_t r, j;                                                                                             \
        for (r = 0; r < rows; r++, x += n, y += n) {                                                              \
            double sum = 0.0;                                                                                     \
            T mean, variance, scale;                                                                              \
            for (j = 0; j < n; j++) sum += x[j];                                                                  \
            mean = (T)sum / (T)n;                                                                                 \
            sum = 0.0;                                                                                            \
            for (j = 0; j < n; j++) {                                                                             \
                T centered = x[j] - mean;                                                                         \
                T square = centered * centered;                                                                   \
                sum += square;                                                                                    \
            }                                                                                                     \
            variance = (T)sum / (T)n;                                                                             \
            scale = SQRT(variance + epsilon);                                                                     \
            for (j = 0; j < n; j++) {                                                                             \
                T centered = x[j] - mean;                                                                         \
                T normalized = centered / scale;                                                                  \
                T scaled = normalized * gamma[j];                                                                 \
                y[j] = scaled + beta[j];                                                                          \
            }                                                                                                     \
        }                                                                                                         \
    }
DEFINE_LAYER_NORM(layer_norm_f32, float, sqrtf)
DEFINE_LAYER_NORM(layer_norm_f64, double, sqrt)
#undef DEFINE_LAYER_NORM

static sbif_status compute_layer_norm(const operands *in, const op_attrs *a, const sbif_tensor *out,
                                      void *const *out_data, size_t n_outputs, sbif_error *error) {
    sbif_tensor x, gamma, beta;
    int64_t rows, n;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    if (!rows_to_compute(in, out, &x, &rows, &n)) return SBIF_OK;
    operand(in, 1, &gamma);
    operand(in, 2, &beta);
    if (x.dtype == SBIF_FLOAT32) {
        layer_norm_f32(x.data, gamma.data, beta.data, (float)a->real, out->data, rows, n);
    } else {
        layer_norm_f64(x.data, gamma.data, beta.data, a->real, out->data, rows, n);
    }
    return SBIF_OK;
}

static sbif_status compute_reduce_mean(const operands *in, const op_attrs *a, const sbif_tensor *out,
                                       void *const *out_data, size_t n_outputs, sbif_error *error) {
    sbif_tensor x;
    int64_t rows, n, r, j;
    (void)a;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    if (!rows_to_compute(in, out, &x, &rows, &n)) return SBIF_OK;
    for (r = 0; r < rows; r++) {
        double sum = 0.0;
        if (x.dtype == SBIF_FLOAT32) {
            const float *row = (const float *)x.data + r * n;
            for (j = 0; j < n; j++) sum += row[j];
            ((float *)out->data)[r] = (float)sum / (float)n;
        } else {
            const double *row = (const double *)x.data + r * n;
            for (j = 0; j < n; j++) sum += row[j];
            ((double *)out->data)[r] = sum / (double)n;
        }
    }
    return SBIF_OK;
}

/* ---- dense layers and convolution ----
 * float32: sbif_kernels.c's blocked kernels (float32 accumulation in any order, products fused where the target has
 * FMA: spec/ops.md allows both in these sums); float64: float products, double accumulation, one rounding. Either
 * way the sum is rounded before the bias is added. */

/** The start of `bytes` of a scratch region at `*cursor`, aligned for the kernels; the cursor moves past it. */
static void *take_scratch(unsigned char **cursor, size_t bytes) {
    unsigned char *start = *cursor + (SBIF_KERNEL_ALIGN - (uintptr_t)*cursor % SBIF_KERNEL_ALIGN) % SBIF_KERNEL_ALIGN;
    *cursor = start + bytes;
    return start;
}

/** Scratch bytes for `floats` floats taken by take_scratch, whatever the region's alignment. */
static size_t scratch_for(size_t floats) { return floats * sizeof(float) + SBIF_KERNEL_ALIGN; }

/** The weights w [k, n] of a float32 product in the kernels' panels: packed at load, or now into scratch. */
static const float *packed_weights(const operands *in, const sbif_tensor *w, int64_t k, int64_t n,
                                   unsigned char **cursor) {
    float *packed;
    if (in->packed != NULL) return in->packed;
    packed = take_scratch(cursor, sbif_kernel_packed_floats(k, n) * sizeof(float));
    sbif_kernel_pack(w->data, k, n, packed);
    return packed;
}

static void dense_f64(const double *x, const double *w, const double *b, double *y, int64_t rows, int64_t k,
                      int64_t n, double *acc) {
    int64_t r, i, c;
    for (r = 0; r < rows; r++, x += k, y += n) {
        for (c = 0; c < n; c++) acc[c] = 0.0;
        for (i = 0; i < k; i++) {
            const double *row = w + i * n;
            double value = x[i];
            for (c = 0; c < n; c++) acc[c] += value * row[c];
        }
        for (c = 0; c < n; c++) y[c] = b != NULL ? acc[c] + b[c] : acc[c];
    }
}

static sbif_status dense(const operands *in, int with_bias, const sbif_tensor *out) {
    sbif_tensor x, w, b;
    int64_t rows, k, n;
    operand(in, 0, &x);
    operand(in, 1, &w);
    if (with_bias) operand(in, 2, &b);
    rows = x.shape[0];
    k = x.shape[1];
    n = w.shape[1];
    if (type_count(out) == 0) return SBIF_OK;
    if (x.dtype == SBIF_FLOAT32) {
        unsigned char *cursor = in->scratch;
        const float *packed = packed_weights(in, &w, k, n, &cursor);
        sbif_kernel_gemm(x.data, rows, k, packed, n, with_bias ? b.data : NULL, in->activation, out->data);
    } else {
        dense_f64(x.data, w.data, with_bias ? b.data : NULL, out->data, rows, k, n, in->scratch);
    }
    return SBIF_OK;
}

static sbif_status compute_linear(const operands *in, const op_attrs *a, const sbif_tensor *out,
                                  void *const *out_data, size_t n_outputs, sbif_error *error) {
    (void)a;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    return dense(in, 1, out);
}

static sbif_status compute_matmul(const operands *in, const op_attrs *a, const sbif_tensor *out,
                                  void *const *out_data, size_t n_outputs, sbif_error *error) {
    (void)a;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    return dense(in, 0, out);
}

/* padded positions are zeros that still multiply the weights (0 * inf is NaN, as in TF) */
static void conv2d_f64(const double *x, const double *w, const double *b, double *y, const sbif_conv_geometry *g,
                       double *acc) {
    int64_t n, i, j, p, q, c, o;
    for (n = 0; n < g->batch; n++) {
        for (i = 0; i < g->out_h; i++) {
            for (j = 0; j < g->out_w; j++, y += g->filters) {
                for (o = 0; o < g->filters; o++) acc[o] = 0.0;
                for (p = 0; p < g->kernel_h; p++) {
                    int64_t row = i * g->stride_h + p - g->pad_top;
                    for (q = 0; q < g->kernel_w; q++) {
                        int64_t col = j * g->stride_w + q - g->pad_left;
                        int inside = row >= 0 && row < g->height && col >= 0 && col < g->width;
                        const double *pixel = x + ((n * g->height + (inside ? row : 0)) * g->width +
                                                   (inside ? col : 0)) * g->channels;
                        const double *kernel = w + (p * g->kernel_w + q) * g->channels * g->filters;
                        for (c = 0; c < g->channels; c++, kernel += g->filters) {
                            double value = inside ? pixel[c] : 0.0;
                            for (o = 0; o < g->filters; o++) acc[o] += value * kernel[o];
                        }
                    }
                }
                for (o = 0; o < g->filters; o++) y[o] = acc[o] + b[o];
            }
        }
    }
}

/** SAME padding before the data: half the total, rounded down (TF's rule). */
static int64_t same_padding(int64_t size, int64_t kernel, int64_t stride, int64_t out) {
    int64_t total = kernel - (size - (out - 1) * stride); /* out >= 1, so (out - 1) * stride < size: no overflow */
    return total > 0 ? total / 2 : 0;
}

/** The geometry of a conv2d node's operands (x and w) and output type. */
static void conv_geometry_of(const sbif_tensor *x, const sbif_tensor *w, const op_attrs *a, const sbif_tensor *out,
                             sbif_conv_geometry *g) {
    g->batch = x->shape[0];
    g->height = x->shape[1];
    g->width = x->shape[2];
    g->channels = x->shape[3];
    g->kernel_h = w->shape[0];
    g->kernel_w = w->shape[1];
    g->filters = w->shape[3];
    g->stride_h = a->list[0];
    g->stride_w = a->list[1];
    g->out_h = out->shape[1];
    g->out_w = out->shape[2];
    g->pad_top = a->text[0] == 'S' && g->out_h > 0 ? same_padding(g->height, g->kernel_h, g->stride_h, g->out_h) : 0;
    g->pad_left = a->text[0] == 'S' && g->out_w > 0 ? same_padding(g->width, g->kernel_w, g->stride_w, g->out_w) : 0;
    if (g->channels == 0) g->kernel_h = g->kernel_w = 0; /* empty sums: the bias alone (no spinning over the kernel) */
}

static sbif_status compute_conv2d(const operands *in, const op_attrs *a, const sbif_tensor *out,
                                  void *const *out_data, size_t n_outputs, sbif_error *error) {
    sbif_tensor x, w, b;
    sbif_conv_geometry g;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    operand(in, 0, &x);
    operand(in, 1, &w);
    operand(in, 2, &b);
    if (type_count(out) == 0) return SBIF_OK;
    conv_geometry_of(&x, &w, a, out, &g);
    if (x.dtype == SBIF_FLOAT32) {
        unsigned char *cursor = in->scratch;
        const float *packed = packed_weights(in, &w, w.shape[0] * w.shape[1] * w.shape[2], g.filters, &cursor);
        float *windows = take_scratch(&cursor, sbif_kernel_conv2d_scratch_floats(&g) * sizeof(float));
        sbif_kernel_conv2d(x.data, packed, b.data, in->activation, out->data, &g, windows);
    } else {
        conv2d_f64(x.data, w.data, b.data, out->data, &g, in->scratch);
    }
    return SBIF_OK;
}

/* ---- sampling (spec/ops-sampling.md) ---- */

static double load_real(const void *data, sbif_dtype dtype, int64_t k) {
    return dtype == SBIF_FLOAT32 ? (double)((const float *)data)[k] : ((const double *)data)[k];
}

/** NumPy's RandomState.choice(n, p=row) given its uniform draw: in double, cdf = cumsum(p) left to right,
 * d = cdf / cdf[n-1], y = #{j : d[j] <= u}, clamped to n - 1. */
static sbif_status compute_inverse_cdf_sample(const operands *in, const op_attrs *a, const sbif_tensor *out,
                                              void *const *out_data, size_t n_outputs, sbif_error *error) {
    sbif_tensor p, u;
    int64_t rows, n, r, j;
    int64_t *y = out->data;
    (void)a;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    operand(in, 0, &p);
    operand(in, 1, &u);
    rows_of(&p, &rows, &n);
    if (type_count(out) == 0) return SBIF_OK;
    for (r = 0; r < rows; r++) {
        double total = 0.0, cumulative = 0.0, uniform = load_real(u.data, u.dtype, r);
        int64_t count = 0;
        for (j = 0; j < n; j++) total += load_real(p.data, p.dtype, r * n + j);
        for (j = 0; j < n; j++) {
            cumulative += load_real(p.data, p.dtype, r * n + j);
            if (cumulative / total <= uniform) count++;
        }
        y[r] = count < n - 1 ? count : n - 1;
    }
    return SBIF_OK;
}

/* ---- moving data ---- */

/** Reshaping ops (flatten, reshape, squeeze, expand_dims): the bytes are unchanged. Graphs share the input's buffer
 * instead of calling this; single op requests copy. */
static sbif_status compute_copy(const operands *in, const op_attrs *a, const sbif_tensor *out, void *const *out_data,
                                size_t n_outputs, sbif_error *error) {
    sbif_tensor x;
    (void)a;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    operand(in, 0, &x);
    if (x.data != out->data) memcpy(out->data, x.data, (size_t)type_count(out) * sbif_dtype_size(out->dtype));
    return SBIF_OK;
}

/** Elements before `axis` (outer) and bytes from `axis + 1` on (inner) of a type. */
static void split_at_axis(const sbif_tensor *t, int axis, int64_t *outer, int64_t *inner) {
    *outer = element_count(t->shape, axis);
    *inner = element_count(t->shape + axis + 1, t->rank - axis - 1) * (int64_t)sbif_dtype_size(t->dtype);
}

/** Copy `count` blocks of `bytes` bytes, `source_step` bytes apart in `source`, to `target_step` bytes apart in
 * `target`: how concat, split and stack move slices along an axis. Nothing is touched when `bytes` is 0. */
static void copy_blocks(char *target, int64_t target_step, const char *source, int64_t source_step, int64_t count,
                        int64_t bytes) {
    int64_t i;
    if (bytes <= 0) return;
    for (i = 0; i < count; i++) memcpy(target + i * target_step, source + i * source_step, (size_t)bytes);
}

static sbif_status compute_concat(const operands *in, const op_attrs *a, const sbif_tensor *out,
                                  void *const *out_data, size_t n_outputs, sbif_error *error) {
    sbif_tensor t;
    int64_t outer, inner, start = 0, total;
    int axis = (int)(a->integer < 0 ? a->integer + out->rank : a->integer);
    size_t k;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    if (type_count(out) == 0) return SBIF_OK;
    split_at_axis(out, axis, &outer, &inner);
    total = out->shape[axis];
    for (k = 0; k < in->count; k++) {
        int64_t size;
        operand(in, k, &t);
        size = t.shape[axis];
        copy_blocks((char *)out->data + start * inner, total * inner, t.data, size * inner, outer, size * inner);
        start += size;
    }
    return SBIF_OK;
}

static sbif_status compute_split(const operands *in, const op_attrs *a, const sbif_tensor *out, void *const *out_data,
                                 size_t n_outputs, sbif_error *error) {
    sbif_tensor x;
    int64_t outer, inner, start = 0, total;
    int axis = (int)(a->integer < 0 ? a->integer + out->rank : a->integer);
    size_t k;
    (void)error;
    operand(in, 0, &x);
    if (type_count(&x) == 0) return SBIF_OK;
    split_at_axis(&x, axis, &outer, &inner);
    total = x.shape[axis];
    for (k = 0; k < n_outputs; k++) {
        int64_t size = a->list[k];
        copy_blocks(out_data[k], size * inner, (const char *)x.data + start * inner, total * inner, outer,
                    size * inner);
        start += size;
    }
    return SBIF_OK;
}

static sbif_status compute_stack(const operands *in, const op_attrs *a, const sbif_tensor *out, void *const *out_data,
                                 size_t n_outputs, sbif_error *error) {
    sbif_tensor t;
    int64_t outer, inner, n = (int64_t)in->count;
    int axis = (int)(a->integer < 0 ? a->integer + out->rank : a->integer);
    size_t k;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    if (type_count(out) == 0) return SBIF_OK;
    operand(in, 0, &t);
    outer = element_count(t.shape, axis);
    inner = element_count(t.shape + axis, t.rank - axis) * (int64_t)sbif_dtype_size(t.dtype);
    for (k = 0; k < in->count; k++) {
        operand(in, k, &t);
        copy_blocks((char *)out->data + (int64_t)k * inner, n * inner, t.data, inner, outer, inner);
    }
    return SBIF_OK;
}

/** y[i_0..i_{r-1}] = x[j] with j[perm[k]] = i_k: y's elements in order, each read from x by an odometer over y's
 * index that moves the source offset by x's stride along the axis perm names. */
static sbif_status compute_transpose(const operands *in, const op_attrs *a, const sbif_tensor *out,
                                     void *const *out_data, size_t n_outputs, sbif_error *error) {
    sbif_tensor x;
    int64_t stride[SBIF_MAX_RANK], step[SBIF_MAX_RANK], index[SBIF_MAX_RANK], total, k, source = 0, elements = 1;
    size_t size;
    int i;
    (void)out_data;
    (void)n_outputs;
    (void)error;
    operand(in, 0, &x);
    total = type_count(out);
    if (total == 0) return SBIF_OK;
    size = sbif_dtype_size(x.dtype);
    for (i = x.rank - 1; i >= 0; i--) {
        stride[i] = elements;
        elements *= x.shape[i];
    }
    for (i = 0; i < x.rank; i++) {
        step[i] = stride[a->list[i]];
        index[i] = 0;
    }
    for (k = 0; k < total; k++) {
        memcpy((char *)out->data + k * (int64_t)size, (const char *)x.data + source * (int64_t)size, size);
        for (i = x.rank - 1; i >= 0; i--) {
            source += step[i];
            if (++index[i] < out->shape[i]) break;
            source -= step[i] * out->shape[i];
            index[i] = 0;
        }
    }
    return SBIF_OK;
}

/* ==== the op table ================================================================================================ */

typedef struct op_def {
    const char *name;
    int arity;         /* inputs; -1: one or more */
    int outputs;       /* 1, or -1: as many as the node lists (split) */
    const attr_def *attrs;
    size_t n_attrs;
    infer_fn infer;
    compute_fn compute;
    int view;          /* a reshaping op: in a graph its output shares its input's buffer */
} op_def;

static const attr_def AXIS_ATTRS[] = {{"axis", ATTR_INT}};
static const attr_def CAST_ATTRS[] = {{"to", ATTR_STRING}};
static const attr_def CONSTANT_ATTRS[] = {{"value", ATTR_SCALAR}, {"dtype", ATTR_STRING}};
static const attr_def CONV2D_ATTRS[] = {{"strides", ATTR_LIST}, {"padding", ATTR_STRING}};
static const attr_def DEPTH_ATTRS[] = {{"depth", ATTR_INT}};
static const attr_def EPSILON_ATTRS[] = {{"epsilon", ATTR_FLOAT}};
static const attr_def ALPHA_ATTRS[] = {{"alpha", ATTR_NUMBER}};
static const attr_def RESHAPE_ATTRS[] = {{"shape", ATTR_LIST}};
static const attr_def SPLIT_ATTRS[] = {{"sizes", ATTR_LIST}, {"axis", ATTR_INT}};
static const attr_def TRANSPOSE_ATTRS[] = {{"perm", ATTR_LIST}};
#define NO_ATTRS NULL, 0
#define WITH(defs) defs, sizeof defs / sizeof defs[0]

/* every op of spec/ops.md and spec/ops-sampling.md, sorted by name: name, arity, outputs, attributes, rule, kernel,
 * view */
#define OP_TABLE(X)                                                                                                \
    X(add, 2, 1, NO_ATTRS, infer_arithmetic, compute_add, 0)                                                       \
    X(argmax, 1, 1, NO_ATTRS, infer_argmax, compute_argmax, 0)                                                     \
    X(cast, 1, 1, WITH(CAST_ATTRS), infer_cast, compute_cast, 0)                                                   \
    X(clip, 3, 1, NO_ATTRS, infer_clip, compute_clip, 0)                                                           \
    X(concat, -1, 1, WITH(AXIS_ATTRS), infer_concat, compute_concat, 0)                                            \
    X(constant, 0, 1, WITH(CONSTANT_ATTRS), infer_constant, compute_constant, 0)                                   \
    X(conv2d, 3, 1, WITH(CONV2D_ATTRS), infer_conv2d, compute_conv2d, 0)                                           \
    X(div, 2, 1, NO_ATTRS, infer_div, compute_div, 0)                                                              \
    X(elu, 1, 1, NO_ATTRS, infer_unary_float, compute_elu, 0)                                                      \
    X(erf, 1, 1, NO_ATTRS, infer_unary_float, compute_erf, 0)                                                      \
    X(exp, 1, 1, NO_ATTRS, infer_unary_float, compute_exp, 0)                                                      \
    X(expand_dims, 1, 1, WITH(AXIS_ATTRS), infer_expand_dims, compute_copy, 1)                                     \
    X(flatten, 1, 1, NO_ATTRS, infer_flatten, compute_copy, 1)                                                     \
    X(inverse_cdf_sample, 2, 1, NO_ATTRS, infer_inverse_cdf_sample, compute_inverse_cdf_sample, 0)                 \
    X(layer_norm, 3, 1, WITH(EPSILON_ATTRS), infer_layer_norm, compute_layer_norm, 0)                              \
    X(leaky_relu, 1, 1, WITH(ALPHA_ATTRS), infer_unary_float, compute_leaky_relu, 0)                               \
    X(less, 2, 1, NO_ATTRS, infer_less, compute_less, 0)                                                           \
    X(linear, 3, 1, NO_ATTRS, infer_linear, compute_linear, 0)                                                     \
    X(log, 1, 1, NO_ATTRS, infer_unary_float, compute_log, 0)                                                      \
    X(matmul, 2, 1, NO_ATTRS, infer_matmul, compute_matmul, 0)                                                     \
    X(mul, 2, 1, NO_ATTRS, infer_arithmetic, compute_mul, 0)                                                       \
    X(neg, 1, 1, NO_ATTRS, infer_unary_float, compute_neg, 0)                                                      \
    X(one_hot, 1, 1, WITH(DEPTH_ATTRS), infer_one_hot, compute_one_hot, 0)                                         \
    X(reduce_mean, 1, 1, NO_ATTRS, infer_reduce_mean, compute_reduce_mean, 0)                                      \
    X(relu, 1, 1, NO_ATTRS, infer_unary_float, compute_relu, 0)                                                    \
    X(relu6, 1, 1, NO_ATTRS, infer_unary_float, compute_relu6, 0)                                                  \
    X(reshape, 1, 1, WITH(RESHAPE_ATTRS), infer_reshape, compute_copy, 1)                                          \
    X(round_half_even, 1, 1, NO_ATTRS, infer_unary_float, compute_round, 0)                                        \
    X(selu, 1, 1, NO_ATTRS, infer_unary_float, compute_selu, 0)                                                    \
    X(sigmoid, 1, 1, NO_ATTRS, infer_unary_float, compute_sigmoid, 0)                                              \
    X(softmax, 1, 1, NO_ATTRS, infer_softmax, compute_softmax, 0)                                                  \
    X(softplus, 1, 1, NO_ATTRS, infer_unary_float, compute_softplus, 0)                                            \
    X(softsign, 1, 1, NO_ATTRS, infer_unary_float, compute_softsign, 0)                                            \
    X(split, 1, -1, WITH(SPLIT_ATTRS), infer_split, compute_split, 0)                                              \
    X(squeeze, 1, 1, WITH(AXIS_ATTRS), infer_squeeze, compute_copy, 1)                                             \
    X(stack, -1, 1, WITH(AXIS_ATTRS), infer_stack, compute_stack, 0)                                               \
    X(sub, 2, 1, NO_ATTRS, infer_arithmetic, compute_sub, 0)                                                       \
    X(swish, 1, 1, NO_ATTRS, infer_unary_float, compute_swish, 0)                                                  \
    X(tanh, 1, 1, NO_ATTRS, infer_unary_float, compute_tanh, 0)                                                     \
    X(transpose, 1, 1, WITH(TRANSPOSE_ATTRS), infer_transpose, compute_transpose, 0)                               \
    X(where, 3, 1, NO_ATTRS, infer_where, compute_where, 0)

#define OP_ENTRY(name, arity, outputs, attrs, infer, compute, view) {#name, arity, outputs, attrs, infer, compute, \
                                                                    view},
#define OP_NAME(name, ...) #name,
static const op_def OPS[] = {OP_TABLE(OP_ENTRY)};
static const char *const OP_NAMES[] = {OP_TABLE(OP_NAME)};
#undef OP_ENTRY
#undef OP_NAME
#define OP_COUNT (sizeof OPS / sizeof OPS[0])

const char *const *sbif_op_names(size_t *count) {
    *count = OP_COUNT;
    return OP_NAMES;
}

static const op_def *find_op(const char *name) {
    size_t i;
    for (i = 0; i < OP_COUNT; i++) {
        if (strcmp(OPS[i].name, name) == 0) return &OPS[i];
    }
    return NULL;
}

static sbif_status unknown_op(const char *source, const char *name, sbif_error *error) {
    char list[600];
    size_t i, used = 0;
    for (i = 0; i < OP_COUNT && used < sizeof list; i++) {
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", OPS[i].name);
    }
    return fail(error, SBIF_ERR_UNSUPPORTED, "%s%sunknown op '%.64s': this runtime implements %s", source,
                *source ? ": " : "", name, list);
}

/** The type of output `index` of a node whose rule gave `whole` (split's pieces; the only output otherwise). */
static void output_type(const op_def *op, const op_attrs *a, const sbif_tensor *whole, size_t index, sbif_tensor *out) {
    *out = *whole;
    if (op->compute == compute_split) {
        int axis = (int)(a->integer < 0 ? a->integer + whole->rank : a->integer);
        out->shape[axis] = a->list[index];
    }
}

/** The bytes of a value of `type`, within the runtime's limit for one value. */
static sbif_status value_bytes(const sbif_tensor *type, const char *name, int64_t *bytes, sbif_error *error) {
    int64_t count = type_count(type);
    if (count < 0 || checked_mul(count, (int64_t)sbif_dtype_size(type->dtype), bytes) != 0 ||
        *bytes > SBIF_MAX_VALUE_BYTES || (uint64_t)*bytes > (uint64_t)SIZE_MAX) {
        char text[128];
        format_type(type, text, sizeof text);
        return fail(error, SBIF_ERR_MEMORY, "value '%.80s' of type %s would take more than %lld bytes, this runtime's "
                    "limit for one value", name, text, (long long)SBIF_MAX_VALUE_BYTES);
    }
    return SBIF_OK;
}

/** A buffer for a value of `type` (at least one byte, so no pointer is ever NULL), within the runtime's limit. */
static sbif_status allocate_value(const sbif_tensor *type, const char *name, void **data, sbif_error *error) {
    int64_t bytes = -1;
    if (value_bytes(type, name, &bytes, error) != SBIF_OK) return error->status;
    *data = malloc(bytes > 0 ? (size_t)bytes : 1);
    return *data != NULL ? SBIF_OK : out_of_memory(error);
}

/** Whether a node's op is a product of x (operand 0) by weights (operand 1) that the kernels compute. */
static int is_product(const op_def *op) {
    return op->compute == compute_linear || op->compute == compute_matmul || op->compute == compute_conv2d;
}

/** The scratch memory a node's kernel needs for operands of these types and this output type (0: none). */
static size_t scratch_bytes(const op_def *op, const operands *in, const op_attrs *a, const sbif_tensor *out) {
    sbif_tensor x, w;
    sbif_conv_geometry g;
    size_t bytes = 0;
    int64_t depth, filters = 0;
    if (!is_product(op)) return 0;
    operand(in, 0, &x);
    operand(in, 1, &w);
    filters = w.shape[w.rank - 1];
    if (x.dtype != SBIF_FLOAT32) return (size_t)filters * sizeof(double);
    depth = op->compute == compute_conv2d ? w.shape[0] * w.shape[1] * w.shape[2] : w.shape[0];
    if (in->packed == NULL) bytes += scratch_for(sbif_kernel_packed_floats(depth, filters));
    if (op->compute == compute_conv2d) {
        conv_geometry_of(&x, &w, a, out, &g);
        bytes += scratch_for(sbif_kernel_conv2d_scratch_floats(&g));
    }
    return bytes;
}

/* ==== models ====================================================================================================== */

/** A graph value: a tensor of the file, a graph input or a node output, with its static type. */
typedef struct value_info {
    const char *name;
    int32_t producer; /* node index, or -1 */
    int32_t input;    /* index in model->inputs, or -1 */
    int32_t tensor;   /* index in the container's entries, or -1 */
    uint8_t dtype;
    uint8_t rank;
    uint8_t uniform;  /* a file tensor whose elements all have the same bytes (find_uniform_tensors) */
    uint32_t dims;    /* offset of the shape in model->dims (-1 = batch) */
} value_info;

typedef struct node {
    const op_def *op;
    op_attrs attrs;
    uint32_t n_inputs, n_outputs;
    size_t ids;          /* model->ids[ids ...]: the input value ids, then the output value ids */
    float *packed;       /* a float32 product whose weights are a file tensor: them in the kernels' panels, or NULL */
    void *packed_block;  /* the allocation `packed` is aligned within */
} node;

typedef struct graph_input {
    uint32_t value;
    const char *kind;
} graph_input;

struct sbif_model {
    char *path;
    container file;
    sbif_json *document;
    value_info *values;
    size_t n_values;
    name_map names;
    int64_t *dims;
    size_t n_dims, dims_capacity;
    node *nodes;
    size_t n_nodes;
    uint32_t *ids;
    graph_input *inputs;
    size_t n_inputs;
    uint32_t *outputs;
    size_t n_outputs;
    name_map output_names;
};

static void value_type(const sbif_model *m, uint32_t id, int64_t batch, sbif_tensor *t) {
    const value_info *v = &m->values[id];
    int i;
    t->dtype = (sbif_dtype)v->dtype;
    t->rank = v->rank;
    t->data = NULL;
    for (i = 0; i < v->rank; i++) {
        int64_t d = m->dims[v->dims + (uint32_t)i];
        t->shape[i] = d < 0 && batch >= 0 ? batch : d;
    }
}

void sbif_model_free(sbif_model *m) {
    size_t i;
    if (m == NULL) return;
    for (i = 0; m->nodes != NULL && i < m->n_nodes; i++) {
        attrs_free(&m->nodes[i].attrs);
        free(m->nodes[i].packed_block);
    }
    free(m->nodes);
    free(m->ids);
    free(m->values);
    free(m->dims);
    free(m->inputs);
    free(m->outputs);
    map_free(&m->names);
    map_free(&m->output_names);
    sbif_json_free(m->document);
    container_close(&m->file);
    free(m->path);
    free(m);
}

/** Add a value to the graph: names are unique and only the first dimension may be the batch. */
static sbif_status define_value(sbif_model *m, const char *name, const sbif_tensor *type, const char *where,
                                const char *role, value_info **out, sbif_error *error) {
    value_info *v = &m->values[m->n_values];
    int i;
    for (i = 1; i < type->rank; i++) {
        if (type->shape[i] < 0) {
            return fail(error, SBIF_ERR_DOCUMENT, "%s: %s '%s': only the first dimension may be the batch (null)",
                        where, role, name);
        }
    }
    if (map_add(&m->names, name, (uint32_t)m->n_values) != 0) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: %s name '%s' is already defined", where, role, name);
    }
    {
        int64_t bytes = nominal_row_bytes(type);
        if (bytes < 0 || bytes > MAX_STATIC_VALUE_BYTES) {
            char text[160];
            format_type(type, text, sizeof text);
            return fail(error, SBIF_ERR_DOCUMENT, "%s: %s '%.80s' of type %s needs more than %lld bytes at batch 1 (a "
                        "zero dimension counted as 1), the limit for one value", where, role, name, text,
                        (long long)MAX_STATIC_VALUE_BYTES);
        }
    }
    if (m->n_dims + SBIF_MAX_RANK > m->dims_capacity) {
        size_t capacity = 2 * m->dims_capacity + SBIF_MAX_RANK;
        int64_t *grown = realloc(m->dims, capacity * sizeof *grown);
        if (grown == NULL) return out_of_memory(error);
        m->dims = grown;
        m->dims_capacity = capacity;
    }
    v->name = name;
    v->producer = v->input = v->tensor = -1;
    v->dtype = (uint8_t)type->dtype;
    v->rank = (uint8_t)type->rank;
    v->dims = (uint32_t)m->n_dims;
    for (i = 0; i < type->rank; i++) m->dims[m->n_dims++] = type->shape[i];
    m->n_values++;
    *out = v;
    return SBIF_OK;
}

/** A declared dtype and shape (null = batch = -1). Returns 0, or -1 when a dimension does not fit in int64. */
static int declared_type(const sbif_json *dtype, const sbif_json *shape, sbif_tensor *t) {
    const sbif_json *item;
    size_t i;
    int fits = 1;
    sbif_dtype_parse(dtype->str, &t->dtype);
    t->rank = (int)shape->length;
    t->data = NULL;
    for (i = 0, item = sbif_json_first(shape); i < shape->length; i++, item = sbif_json_next(item)) {
        if (item->kind == SBIF_JSON_NULL) t->shape[i] = -1;
        else if (sbif_json_int64(item, &t->shape[i]) != 0) fits = 0;
    }
    return fits ? 0 : -1;
}

/* ---- the document's structure (the parts of the JSON Schema a runtime relies on; all objects are closed) ---- */

typedef struct schema {
    const char *source;
    sbif_error *error;
    int64_t version; /* the document's format_version: which schema applies */
} schema;

static sbif_status schema_violation(const schema *s, const char *where, const char *format, ...) PRINTF_LIKE(3, 4);
static sbif_status schema_violation(const schema *s, const char *where, const char *format, ...) {
    const char *at = *where ? where : "(top level)";
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    return fail(s->error, SBIF_ERR_DOCUMENT, "%s: schema violation at %s: %s", s->source, at, message);
}

static sbif_status expect_kind(const schema *s, const sbif_json *v, const char *where, sbif_json_kind kind,
                               const char *name) {
    char text[160];
    if (v->kind == kind) return SBIF_OK;
    json_render(v, text, sizeof text);
    return schema_violation(s, where, "%s is not of type '%s'", text, name);
}

static int listed(const char *key, const char *const *names) {
    for (; names != NULL && *names != NULL; names++) {
        if (strcmp(key, *names) == 0) return 1;
    }
    return 0;
}

static sbif_status expect_object(const schema *s, const sbif_json *v, const char *where, const char *const *required,
                                 const char *const *optional) {
    const sbif_json *key;
    const char *const *name;
    size_t i;
    if (expect_kind(s, v, where, SBIF_JSON_OBJECT, "object") != SBIF_OK) return s->error->status;
    for (name = required; *name != NULL; name++) {
        if (sbif_json_get(v, *name) == NULL) return schema_violation(s, where, "'%s' is a required property", *name);
    }
    for (i = 0, key = sbif_json_first(v); i < v->length; i++, key = sbif_json_next(key)) {
        if (strlen(key->str) != key->length || (!listed(key->str, required) && !listed(key->str, optional))) {
            return schema_violation(s, where, "Additional properties are not allowed ('%.80s' was unexpected)",
                                    key->str);
        }
    }
    return SBIF_OK;
}

static const char *const DTYPE_ENUM[] = {"float32", "float64", "int32", "int64", "uint8", "int8", "int16", "uint16",
                                         "bool", NULL};

static sbif_status expect_enum(const schema *s, const sbif_json *v, const char *where, const char *const *values) {
    char text[160], choices[400];
    size_t used = 0;
    const char *const *value;
    if (v->kind == SBIF_JSON_STRING && strlen(v->str) == v->length && listed(v->str, values)) return SBIF_OK;
    json_render(v, text, sizeof text);
    choices[0] = '\0';
    for (value = values; *value != NULL && used < sizeof choices; value++) {
        used += (size_t)snprintf(choices + used, sizeof choices - used, "%s'%s'", value == values ? "" : ", ", *value);
    }
    return schema_violation(s, where, "%s is not one of [%s]", text, choices);
}

static sbif_status expect_name(const schema *s, const sbif_json *v, const char *where) {
    size_t i, chars = 0;
    if (expect_kind(s, v, where, SBIF_JSON_STRING, "string") != SBIF_OK) return s->error->status;
    if (strlen(v->str) != v->length) return schema_violation(s, where, "names may not contain U+0000");
    for (i = 0; i < v->length; i++) chars += ((unsigned char)v->str[i] & 0xC0) != 0x80;
    if (chars < 1) return schema_violation(s, where, "'' is too short");
    if (chars > MAX_NAME_CHARS) return schema_violation(s, where, "'%.40s...' is too long", v->str);
    return SBIF_OK;
}

static sbif_status expect_integer(const schema *s, const sbif_json *v, const char *where, int64_t minimum) {
    char text[160];
    int64_t value;
    json_render(v, text, sizeof text);
    if (!sbif_json_is_integer(v)) return schema_violation(s, where, "%s is not of type 'integer'", text);
    if (sbif_json_int64(v, &value) == 0 ? value < minimum : v->str[0] == '-') {
        return schema_violation(s, where, "%s is less than the minimum of %lld", text, (long long)minimum);
    }
    return SBIF_OK;
}

static sbif_status expect_array(const schema *s, const sbif_json *v, const char *where, size_t min_items) {
    char text[160];
    if (expect_kind(s, v, where, SBIF_JSON_ARRAY, "array") != SBIF_OK) return s->error->status;
    if (v->length >= min_items) return SBIF_OK;
    json_render(v, text, sizeof text);
    return schema_violation(s, where, "%s is too short", text);
}

static sbif_status expect_bool(const schema *s, const sbif_json *v, const char *where) {
    char text[160];
    if (v->kind == SBIF_JSON_TRUE || v->kind == SBIF_JSON_FALSE) return SBIF_OK;
    json_render(v, text, sizeof text);
    return schema_violation(s, where, "%s is not of type 'boolean'", text);
}

/** A shape: integers >= 0, and null (the batch) where allowed. */
static sbif_status expect_shape(const schema *s, const sbif_json *v, const char *where, int allow_null) {
    const sbif_json *item;
    char at[200];
    size_t i;
    if (expect_array(s, v, where, 0) != SBIF_OK) return s->error->status;
    for (i = 0, item = sbif_json_first(v); i < v->length; i++, item = sbif_json_next(item)) {
        if (allow_null && item->kind == SBIF_JSON_NULL) continue;
        snprintf(at, sizeof at, "%s/%lu", where, (unsigned long)i);
        if (expect_integer(s, item, at, 0) != SBIF_OK) return s->error->status;
    }
    return SBIF_OK;
}

/** A float written exactly: a number, or "inf", "-inf", "nan". */
static sbif_status expect_float(const schema *s, const sbif_json *v, const char *where) {
    static const char *const SPECIAL[] = {"inf", "-inf", "nan", NULL};
    char text[160];
    if (v->kind == SBIF_JSON_NUMBER || (v->kind == SBIF_JSON_STRING && listed(v->str, SPECIAL))) return SBIF_OK;
    json_render(v, text, sizeof text);
    return schema_violation(s, where, "%s is not a float (a number, or 'inf', '-inf', 'nan')", text);
}

static sbif_status expect_bound(const schema *s, const sbif_json *v, const char *where) {
    const sbif_json *item;
    char at[200];
    size_t i;
    if (v->kind != SBIF_JSON_ARRAY) return expect_float(s, v, where);
    for (i = 0, item = sbif_json_first(v); i < v->length; i++, item = sbif_json_next(item)) {
        snprintf(at, sizeof at, "%s/%lu", where, (unsigned long)i);
        if (expect_float(s, item, at) != SBIF_OK) return s->error->status;
    }
    return SBIF_OK;
}

static sbif_status expect_space(const schema *s, const sbif_json *v, const char *where) {
    static const char *const KINDS[] = {"box", "discrete", "multi_binary", "multi_discrete", NULL};
    static const char *const BOX[] = {"kind", "shape", "dtype", "low", "high", NULL};
    static const char *const COUNT[] = {"kind", "n", NULL};
    static const char *const VECTOR[] = {"kind", "nvec", NULL};
    static const char *const KIND[] = {"kind", NULL};
    const sbif_json *kind, *item;
    char at[200];
    size_t i;
    if (expect_kind(s, v, where, SBIF_JSON_OBJECT, "object") != SBIF_OK) return s->error->status;
    if ((kind = sbif_json_get(v, "kind")) == NULL) return expect_object(s, v, where, KIND, NULL);
    snprintf(at, sizeof at, "%s/kind", where);
    if (expect_enum(s, kind, at, KINDS) != SBIF_OK) return s->error->status;
    if (strcmp(kind->str, "box") == 0) {
        if (expect_object(s, v, where, BOX, NULL) != SBIF_OK) return s->error->status;
        snprintf(at, sizeof at, "%s/shape", where);
        if (expect_shape(s, sbif_json_get(v, "shape"), at, 0) != SBIF_OK) return s->error->status;
        snprintf(at, sizeof at, "%s/dtype", where);
        if (expect_enum(s, sbif_json_get(v, "dtype"), at, DTYPE_ENUM) != SBIF_OK) return s->error->status;
        snprintf(at, sizeof at, "%s/low", where);
        if (expect_bound(s, sbif_json_get(v, "low"), at) != SBIF_OK) return s->error->status;
        snprintf(at, sizeof at, "%s/high", where);
        return expect_bound(s, sbif_json_get(v, "high"), at);
    }
    if (strcmp(kind->str, "multi_discrete") != 0) {
        if (expect_object(s, v, where, COUNT, NULL) != SBIF_OK) return s->error->status;
        snprintf(at, sizeof at, "%s/n", where);
        return expect_integer(s, sbif_json_get(v, "n"), at, 1);
    }
    if (expect_object(s, v, where, VECTOR, NULL) != SBIF_OK) return s->error->status;
    snprintf(at, sizeof at, "%s/nvec", where);
    if (expect_array(s, sbif_json_get(v, "nvec"), at, 1) != SBIF_OK) return s->error->status;
    for (i = 0, item = sbif_json_first(sbif_json_get(v, "nvec")); i < sbif_json_get(v, "nvec")->length;
         i++, item = sbif_json_next(item)) {
        snprintf(at, sizeof at, "%s/nvec/%lu", where, (unsigned long)i);
        if (expect_integer(s, item, at, 1) != SBIF_OK) return s->error->status;
    }
    return SBIF_OK;
}

/** Version 2's observation space (SPEC section 3.2): a space, or {"kind": "dict", "spaces": [{"key", "space"}, ...]}
 * (at least one entry, each key a non-empty string, each space one of expect_space's: no dict in a dict). Which
 * branch the schema's anyOf meant is told by the kind, as the reference's validator reports it. */
static sbif_status expect_observation_space(const schema *s, const sbif_json *v) {
    static const char *const DICT_SPACE[] = {"kind", "spaces", NULL};
    static const char *const ENTRY[] = {"key", "space", NULL};
    const sbif_json *kind, *spaces, *item, *key;
    char at[200];
    size_t i;
    if (s->version != FORMAT_VERSION_2 || v->kind != SBIF_JSON_OBJECT || (kind = sbif_json_get(v, "kind")) == NULL ||
        kind->kind != SBIF_JSON_STRING || strcmp(kind->str, "dict") != 0 || kind->length != 4) {
        return expect_space(s, v, "observation_space");
    }
    if (expect_object(s, v, "observation_space", DICT_SPACE, NULL) != SBIF_OK ||
        expect_array(s, (spaces = sbif_json_get(v, "spaces")), "observation_space/spaces", 1) != SBIF_OK) {
        return s->error->status;
    }
    for (i = 0, item = sbif_json_first(spaces); i < spaces->length; i++, item = sbif_json_next(item)) {
        snprintf(at, sizeof at, "observation_space/spaces/%lu", (unsigned long)i);
        if (expect_object(s, item, at, ENTRY, NULL) != SBIF_OK) return s->error->status;
        key = sbif_json_get(item, "key");
        snprintf(at, sizeof at, "observation_space/spaces/%lu/key", (unsigned long)i);
        if (expect_kind(s, key, at, SBIF_JSON_STRING, "string") != SBIF_OK) return s->error->status;
        if (key->length == 0) return schema_violation(s, at, "'' is too short");
        snprintf(at, sizeof at, "observation_space/spaces/%lu/space", (unsigned long)i);
        if (expect_space(s, sbif_json_get(item, "space"), at) != SBIF_OK) return s->error->status;
    }
    return SBIF_OK;
}

/* The provenance members and algorithms of version 1; version 2 adds to each (SPEC section 3.1). */
#define PROVENANCE_REQUIRED "producer", "exporter", "algorithm", "policy_class", "source"
#define PROVENANCE_OPTIONAL "sb2_version", "policy_kwargs", "vecnormalize"
#define SB2_ALGORITHMS "A2C", "ACER", "ACKTR", "PPO1", "PPO2", "TRPO", "GAIL", "DQN", "SAC", "TD3", "DDPG", "HER"

static const char *const FRAMEWORKS[] = {"sb2", "sb3", NULL};

static sbif_status expect_provenance(const schema *s, const sbif_json *v) {
    static const char *const REQUIRED_V1[] = {PROVENANCE_REQUIRED, NULL};
    static const char *const REQUIRED_V2[] = {PROVENANCE_REQUIRED, "framework", NULL};
    static const char *const OPTIONAL_V1[] = {PROVENANCE_OPTIONAL, NULL};
    static const char *const OPTIONAL_V2[] = {PROVENANCE_OPTIONAL, "framework_version", NULL};
    static const char *const EXPORTERS[] = {"live", "safe", NULL};
    static const char *const ALGORITHMS_V1[] = {SB2_ALGORITHMS, NULL};
    static const char *const ALGORITHMS_V2[] = {SB2_ALGORITHMS, "PPO", "ARS", "QRDQN", "TQC", "RecurrentPPO",
                                                "MaskablePPO", "CrossQ", NULL};
    static const char *const SOURCE[] = {"file_name", "sha256", "format", NULL};
    static const char *const FORMATS[] = {"zip", "pkl", NULL};
    static const char *const VECNORMALIZE[] = {"clip_obs", "epsilon", NULL};
    static const char *const VECNORMALIZE_OPTIONAL_V1[] = {"frame_stack", NULL};
    static const char *const VECNORMALIZE_OPTIONAL_V2[] = {"frame_stack", "keys", NULL};
    const int v2 = s->version == FORMAT_VERSION_2;
    const sbif_json *source, *sha, *optional, *keys, *item;
    char at[200];
    size_t i;
    if (expect_object(s, v, "provenance", v2 ? REQUIRED_V2 : REQUIRED_V1, v2 ? OPTIONAL_V2 : OPTIONAL_V1) !=
            SBIF_OK ||
        expect_kind(s, sbif_json_get(v, "producer"), "provenance/producer", SBIF_JSON_STRING, "string") != SBIF_OK ||
        expect_enum(s, sbif_json_get(v, "exporter"), "provenance/exporter", EXPORTERS) != SBIF_OK ||
        expect_enum(s, sbif_json_get(v, "algorithm"), "provenance/algorithm", v2 ? ALGORITHMS_V2 : ALGORITHMS_V1) !=
            SBIF_OK ||
        (v2 && expect_enum(s, sbif_json_get(v, "framework"), "provenance/framework", FRAMEWORKS) != SBIF_OK) ||
        expect_kind(s, sbif_json_get(v, "policy_class"), "provenance/policy_class", SBIF_JSON_STRING,
                    "string") != SBIF_OK) {
        return s->error->status;
    }
    source = sbif_json_get(v, "source");
    if (expect_object(s, source, "provenance/source", SOURCE, NULL) != SBIF_OK ||
        expect_kind(s, sbif_json_get(source, "file_name"), "provenance/source/file_name", SBIF_JSON_STRING, "string") ||
        expect_kind(s, (sha = sbif_json_get(source, "sha256")), "provenance/source/sha256", SBIF_JSON_STRING,
                    "string") ||
        expect_enum(s, sbif_json_get(source, "format"), "provenance/source/format", FORMATS) != SBIF_OK) {
        return s->error->status;
    }
    for (i = 0; i < sha->length && strchr("0123456789abcdef", sha->str[i]) != NULL; i++) {
    }
    if (sha->length != 64 || i != 64) {
        return schema_violation(s, "provenance/source/sha256", "'%.70s' does not match '^[0-9a-f]{64}$'", sha->str);
    }
    if ((optional = sbif_json_get(v, "sb2_version")) != NULL && optional->kind != SBIF_JSON_NULL &&
        expect_kind(s, optional, "provenance/sb2_version", SBIF_JSON_STRING, "string") != SBIF_OK) {
        return s->error->status;
    }
    if ((optional = sbif_json_get(v, "framework_version")) != NULL && optional->kind != SBIF_JSON_NULL &&
        expect_kind(s, optional, "provenance/framework_version", SBIF_JSON_STRING, "string") != SBIF_OK) {
        return s->error->status;
    }
    if ((optional = sbif_json_get(v, "policy_kwargs")) != NULL &&
        expect_kind(s, optional, "provenance/policy_kwargs", SBIF_JSON_OBJECT, "object") != SBIF_OK) {
        return s->error->status;
    }
    if ((optional = sbif_json_get(v, "vecnormalize")) != NULL &&
        (expect_object(s, optional, "provenance/vecnormalize", VECNORMALIZE,
                       v2 ? VECNORMALIZE_OPTIONAL_V2 : VECNORMALIZE_OPTIONAL_V1) != SBIF_OK ||
         expect_kind(s, sbif_json_get(optional, "clip_obs"), "provenance/vecnormalize/clip_obs", SBIF_JSON_NUMBER,
                     "number") != SBIF_OK ||
         expect_kind(s, sbif_json_get(optional, "epsilon"), "provenance/vecnormalize/epsilon", SBIF_JSON_NUMBER,
                     "number") != SBIF_OK ||
         (sbif_json_get(optional, "frame_stack") != NULL &&
          expect_integer(s, sbif_json_get(optional, "frame_stack"), "provenance/vecnormalize/frame_stack", 2) !=
              SBIF_OK))) {
        return s->error->status;
    }
    if (optional != NULL && (keys = sbif_json_get(optional, "keys")) != NULL) { /* version 2: an array of strings */
        if (expect_array(s, keys, "provenance/vecnormalize/keys", 0) != SBIF_OK) return s->error->status;
        for (i = 0, item = sbif_json_first(keys); i < keys->length; i++, item = sbif_json_next(item)) {
            snprintf(at, sizeof at, "provenance/vecnormalize/keys/%lu", (unsigned long)i);
            if (expect_kind(s, item, at, SBIF_JSON_STRING, "string") != SBIF_OK) return s->error->status;
        }
    }
    return SBIF_OK;
}

/** Version 2's recurrent.state_layout (SPEC section 5.9): {"kind": "lstm", "layers": L >= 1, "hidden": H >= 1}. */
static sbif_status expect_state_layout(const schema *s, const sbif_json *v) {
    static const char *const LAYOUT[] = {"kind", "layers", "hidden", NULL};
    static const char *const LSTM[] = {"lstm", NULL};
    if (expect_object(s, v, "predict/recurrent/state_layout", LAYOUT, NULL) != SBIF_OK ||
        expect_enum(s, sbif_json_get(v, "kind"), "predict/recurrent/state_layout/kind", LSTM) != SBIF_OK ||
        expect_integer(s, sbif_json_get(v, "layers"), "predict/recurrent/state_layout/layers", 1) != SBIF_OK ||
        expect_integer(s, sbif_json_get(v, "hidden"), "predict/recurrent/state_layout/hidden", 1) != SBIF_OK) {
        return s->error->status;
    }
    return SBIF_OK;
}

static sbif_status expect_names(const schema *s, const sbif_json *v, const char *where, size_t min_items);

/** Version 2's predict members: the contract, and the SB3 contract's fields (SPEC section 5.9). */
static sbif_status expect_predict_v2(const schema *s, const sbif_json *v) {
    const sbif_json *part;
    if (expect_enum(s, sbif_json_get(v, "contract"), "predict/contract", FRAMEWORKS) != SBIF_OK) {
        return s->error->status;
    }
    if ((part = sbif_json_get(v, "channels_last")) != NULL &&
        expect_bool(s, part, "predict/channels_last") != SBIF_OK) {
        return s->error->status;
    }
    if ((part = sbif_json_get(v, "action_mask")) != NULL && expect_name(s, part, "predict/action_mask") != SBIF_OK) {
        return s->error->status;
    }
    part = sbif_json_get(v, "shared_noise");
    if (part != NULL && expect_names(s, part, "predict/shared_noise", 0) != SBIF_OK) return s->error->status;
    if ((part = sbif_json_get(v, "channels_last_keys")) != NULL) {
        const sbif_json *item;
        char at[200];
        size_t i;
        if (expect_array(s, part, "predict/channels_last_keys", 0) != SBIF_OK) return s->error->status;
        for (i = 0, item = sbif_json_first(part); i < part->length; i++, item = sbif_json_next(item)) {
            snprintf(at, sizeof at, "predict/channels_last_keys/%lu", (unsigned long)i);
            if (expect_kind(s, item, at, SBIF_JSON_STRING, "string") != SBIF_OK) return s->error->status;
        }
    }
    return SBIF_OK;
}

static sbif_status expect_predict(const schema *s, const sbif_json *v) {
    static const char *const REQUIRED_V1[] = {"deterministic_default", "deterministic_action", "stochastic_action",
                                              NULL};
    static const char *const REQUIRED_V2[] = {"deterministic_default", "deterministic_action", "stochastic_action",
                                              "contract", NULL};
    static const char *const OPTIONAL_V1[] = {"distribution", "recurrent", NULL};
    static const char *const OPTIONAL_V2[] = {"distribution", "recurrent", "channels_last", "action_mask",
                                              "shared_noise", "channels_last_keys", NULL};
    static const char *const DISTRIBUTION[] = {"kind", "parameters", NULL};
    static const char *const NVEC[] = {"nvec", NULL};
    static const char *const KINDS[] = {"categorical", "multi_categorical", "bernoulli", "diag_gaussian", NULL};
    static const char *const RECURRENT[] = {"state_input", "mask_input", "state_output", NULL};
    static const char *const STATE_LAYOUT[] = {"state_layout", NULL};
    const int v2 = s->version == FORMAT_VERSION_2;
    const sbif_json *part, *item, *stochastic;
    char at[200];
    size_t i;
    if (expect_object(s, v, "predict", v2 ? REQUIRED_V2 : REQUIRED_V1, v2 ? OPTIONAL_V2 : OPTIONAL_V1) != SBIF_OK ||
        expect_bool(s, sbif_json_get(v, "deterministic_default"), "predict/deterministic_default") != SBIF_OK ||
        expect_name(s, sbif_json_get(v, "deterministic_action"), "predict/deterministic_action") != SBIF_OK) {
        return s->error->status;
    }
    if (v2 && expect_predict_v2(s, v) != SBIF_OK) return s->error->status;
    stochastic = sbif_json_get(v, "stochastic_action");
    if (stochastic->kind != SBIF_JSON_NULL && expect_name(s, stochastic, "predict/stochastic_action") != SBIF_OK) {
        return s->error->status;
    }
    if ((part = sbif_json_get(v, "distribution")) != NULL) {
        const sbif_json *parameters = sbif_json_get(part, "parameters"), *nvec;
        if (expect_object(s, part, "predict/distribution", DISTRIBUTION, NVEC) != SBIF_OK ||
            expect_enum(s, sbif_json_get(part, "kind"), "predict/distribution/kind", KINDS) != SBIF_OK ||
            expect_kind(s, parameters, "predict/distribution/parameters", SBIF_JSON_OBJECT, "object") != SBIF_OK) {
            return s->error->status;
        }
        for (i = 0, item = sbif_json_first(parameters); i < parameters->length; i++, item = sbif_json_next(item)) {
            snprintf(at, sizeof at, "predict/distribution/parameters/%.80s", item->str);
            if (expect_name(s, item + 1, at) != SBIF_OK) return s->error->status;
        }
        if ((nvec = sbif_json_get(part, "nvec")) != NULL) {
            if (expect_array(s, nvec, "predict/distribution/nvec", 0) != SBIF_OK) return s->error->status;
            for (i = 0, item = sbif_json_first(nvec); i < nvec->length; i++, item = sbif_json_next(item)) {
                snprintf(at, sizeof at, "predict/distribution/nvec/%lu", (unsigned long)i);
                if (expect_integer(s, item, at, 1) != SBIF_OK) return s->error->status;
            }
        }
    }
    if ((part = sbif_json_get(v, "recurrent")) != NULL) {
        const sbif_json *layout;
        if (expect_object(s, part, "predict/recurrent", RECURRENT, v2 ? STATE_LAYOUT : NULL) != SBIF_OK) {
            return s->error->status;
        }
        for (i = 0; RECURRENT[i] != NULL; i++) {
            snprintf(at, sizeof at, "predict/recurrent/%s", RECURRENT[i]);
            if (expect_name(s, sbif_json_get(part, RECURRENT[i]), at) != SBIF_OK) return s->error->status;
        }
        if ((layout = sbif_json_get(part, "state_layout")) != NULL && expect_state_layout(s, layout) != SBIF_OK) {
            return s->error->status;
        }
    }
    return SBIF_OK;
}

/** A node's inputs or outputs: an array of at least `min_items` value names. */
static sbif_status expect_names(const schema *s, const sbif_json *v, const char *where, size_t min_items) {
    const sbif_json *item;
    char at[260];
    size_t i;
    if (expect_array(s, v, where, min_items) != SBIF_OK) return s->error->status;
    for (i = 0, item = sbif_json_first(v); i < v->length; i++, item = sbif_json_next(item)) {
        snprintf(at, sizeof at, "%s/%lu", where, (unsigned long)i);
        if (expect_name(s, item, at) != SBIF_OK) return s->error->status;
    }
    return SBIF_OK;
}

/** An entry of tensors, inputs or outputs: an object of exactly these `members` (and `optional` ones) with a name,
 * a dtype and a shape (whose dimensions may be null, the batch, where `allow_batch`). */
static sbif_status expect_value_entry(const schema *s, const sbif_json *item, const char *at,
                                      const char *const *members, const char *const *optional, int allow_batch) {
    char inner[240];
    if (expect_object(s, item, at, members, optional) != SBIF_OK) return s->error->status;
    snprintf(inner, sizeof inner, "%s/name", at);
    if (expect_name(s, sbif_json_get(item, "name"), inner) != SBIF_OK) return s->error->status;
    snprintf(inner, sizeof inner, "%s/dtype", at);
    if (expect_enum(s, sbif_json_get(item, "dtype"), inner, DTYPE_ENUM) != SBIF_OK) return s->error->status;
    snprintf(inner, sizeof inner, "%s/shape", at);
    return expect_shape(s, sbif_json_get(item, "shape"), inner, allow_batch);
}

static sbif_status check_structure(const schema *s, const sbif_json *doc) {
    static const char *const REQUIRED[] = {"format",  "format_version", "provenance", "observation_space",
                                           "action_space", "tensors", "inputs", "graph", "outputs", "predict", NULL};
    static const char *const OPTIONAL[] = {"observation_dict", NULL};
    static const char *const TENSOR[] = {"name", "dtype", "shape", "origin", NULL};
    static const char *const ORIGINS[] = {"parameter", "constant", NULL};
    static const char *const INPUT[] = {"name", "dtype", "shape", "kind", NULL};
    static const char *const INPUT_OPTIONAL[] = {"distribution", NULL};
    static const char *const INPUT_KINDS_V1[] = {"observation", "noise", "state", "mask", NULL};
    static const char *const INPUT_KINDS_V2[] = {"observation", "noise", "state", "mask", "action_mask", NULL};
    static const char *const DISTRIBUTIONS[] = {"uniform", "normal", NULL};
    static const char *const NODE[] = {"op", "inputs", "outputs", NULL};
    static const char *const NODE_OPTIONAL[] = {"attrs", NULL};
    static const char *const OUTPUT[] = {"name", "dtype", "shape", NULL};
    static const char *const OUTPUT_OPTIONAL[] = {"description", NULL};
    static const char *const DICT[] = {"keys", "spaces", NULL};
    const sbif_json *list, *item, *part, *element;
    char at[200], inner[240];
    size_t i, j;
    if (expect_object(s, doc, "", REQUIRED, OPTIONAL) != SBIF_OK) return s->error->status;
    part = sbif_json_get(doc, "format");
    if (part->kind != SBIF_JSON_STRING || strcmp(part->str, "sbif") != 0 || part->length != 4) {
        return schema_violation(s, "format", "'sbif' was expected");
    }
    if (expect_provenance(s, sbif_json_get(doc, "provenance")) != SBIF_OK ||
        expect_observation_space(s, sbif_json_get(doc, "observation_space")) != SBIF_OK ||
        expect_space(s, sbif_json_get(doc, "action_space"), "action_space") != SBIF_OK) {
        return s->error->status;
    }
    list = sbif_json_get(doc, "tensors");
    if (expect_array(s, list, "tensors", 0) != SBIF_OK) return s->error->status;
    for (i = 0, item = sbif_json_first(list); i < list->length; i++, item = sbif_json_next(item)) {
        snprintf(at, sizeof at, "tensors/%lu", (unsigned long)i);
        if (expect_value_entry(s, item, at, TENSOR, NULL, 0) != SBIF_OK) return s->error->status;
        snprintf(inner, sizeof inner, "%s/origin", at);
        if (expect_enum(s, sbif_json_get(item, "origin"), inner, ORIGINS) != SBIF_OK) return s->error->status;
    }
    list = sbif_json_get(doc, "inputs");
    if (expect_array(s, list, "inputs", 1) != SBIF_OK) return s->error->status;
    for (i = 0, item = sbif_json_first(list); i < list->length; i++, item = sbif_json_next(item)) {
        snprintf(at, sizeof at, "inputs/%lu", (unsigned long)i);
        if (expect_value_entry(s, item, at, INPUT, INPUT_OPTIONAL, 1) != SBIF_OK) return s->error->status;
        snprintf(inner, sizeof inner, "%s/kind", at);
        if (expect_enum(s, sbif_json_get(item, "kind"), inner,
                        s->version == FORMAT_VERSION_2 ? INPUT_KINDS_V2 : INPUT_KINDS_V1) != SBIF_OK) {
            return s->error->status;
        }
        /* the schema's oneOf: a noise input carries its distribution, no other input has one */
        part = sbif_json_get(item, "distribution");
        if (strcmp(sbif_json_get(item, "kind")->str, "noise") == 0) {
            if (part == NULL) return schema_violation(s, at, "'distribution' is a required property");
        } else if (part != NULL) {
            return schema_violation(s, at, "Additional properties are not allowed ('distribution' was unexpected)");
        }
        snprintf(inner, sizeof inner, "%s/distribution", at);
        if (part != NULL && expect_enum(s, part, inner, DISTRIBUTIONS) != SBIF_OK) return s->error->status;
    }
    list = sbif_json_get(doc, "graph");
    if (expect_array(s, list, "graph", 0) != SBIF_OK) return s->error->status;
    for (i = 0, item = sbif_json_first(list); i < list->length; i++, item = sbif_json_next(item)) {
        const sbif_json *op;
        snprintf(at, sizeof at, "graph/%lu", (unsigned long)i);
        if (expect_object(s, item, at, NODE, NODE_OPTIONAL) != SBIF_OK) return s->error->status;
        op = sbif_json_get(item, "op");
        snprintf(inner, sizeof inner, "%s/op", at);
        if (expect_kind(s, op, inner, SBIF_JSON_STRING, "string") != SBIF_OK) return s->error->status;
        for (j = 0; j < op->length && ((op->str[j] >= 'a' && op->str[j] <= 'z') ||
                                       (j > 0 && ((op->str[j] >= '0' && op->str[j] <= '9') || op->str[j] == '_')));
             j++) {
        }
        if (op->length == 0 || j != op->length) {
            return schema_violation(s, inner, "'%.60s' does not match '^[a-z][a-z0-9_]*$'", op->str);
        }
        snprintf(inner, sizeof inner, "%s/inputs", at);
        if (expect_names(s, sbif_json_get(item, "inputs"), inner, 0) != SBIF_OK) return s->error->status;
        snprintf(inner, sizeof inner, "%s/outputs", at);
        if (expect_names(s, sbif_json_get(item, "outputs"), inner, 1) != SBIF_OK) return s->error->status;
        snprintf(inner, sizeof inner, "%s/attrs", at);
        if ((part = sbif_json_get(item, "attrs")) != NULL &&
            expect_kind(s, part, inner, SBIF_JSON_OBJECT, "object") != SBIF_OK) {
            return s->error->status;
        }
    }
    list = sbif_json_get(doc, "outputs");
    if (expect_array(s, list, "outputs", 1) != SBIF_OK) return s->error->status;
    for (i = 0, item = sbif_json_first(list); i < list->length; i++, item = sbif_json_next(item)) {
        snprintf(at, sizeof at, "outputs/%lu", (unsigned long)i);
        if (expect_value_entry(s, item, at, OUTPUT, OUTPUT_OPTIONAL, 1) != SBIF_OK) return s->error->status;
        snprintf(inner, sizeof inner, "%s/description", at);
        if ((part = sbif_json_get(item, "description")) != NULL &&
            expect_kind(s, part, inner, SBIF_JSON_STRING, "string") != SBIF_OK) {
            return s->error->status;
        }
    }
    if (expect_predict(s, sbif_json_get(doc, "predict")) != SBIF_OK) return s->error->status;
    if ((part = sbif_json_get(doc, "observation_dict")) != NULL) {
        const sbif_json *keys, *spaces;
        if (expect_object(s, part, "observation_dict", DICT, NULL) != SBIF_OK ||
            expect_array(s, (keys = sbif_json_get(part, "keys")), "observation_dict/keys", 1) != SBIF_OK) {
            return s->error->status;
        }
        for (j = 0, element = sbif_json_first(keys); j < keys->length; j++, element = sbif_json_next(element)) {
            snprintf(inner, sizeof inner, "observation_dict/keys/%lu", (unsigned long)j);
            if (expect_kind(s, element, inner, SBIF_JSON_STRING, "string") != SBIF_OK) return s->error->status;
        }
        spaces = sbif_json_get(part, "spaces");
        if (expect_kind(s, spaces, "observation_dict/spaces", SBIF_JSON_OBJECT, "object") != SBIF_OK) {
            return s->error->status;
        }
        for (j = 0, element = sbif_json_first(spaces); j < spaces->length; j++, element = sbif_json_next(element)) {
            snprintf(inner, sizeof inner, "observation_dict/spaces/%.80s", element->str);
            if (expect_space(s, element + 1, inner) != SBIF_OK) return s->error->status;
        }
    }
    return SBIF_OK;
}

/* ---- the document against the container, and the static check of the graph (sbif/format/validate.py) ---- */

static int same_shape_json(const sbif_json *a, const sbif_json *b) {
    const sbif_json *x, *y;
    size_t i;
    if (a->length != b->length) return 0;
    for (i = 0, x = sbif_json_first(a), y = sbif_json_first(b); i < a->length; i++) {
        if (x->kind != y->kind || x->length != y->length || memcmp(x->str, y->str, x->length) != 0) return 0;
        x = sbif_json_next(x);
        y = sbif_json_next(y);
    }
    return 1;
}

static int name_order(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static sbif_status check_tensors(sbif_model *m, sbif_error *error) {
    const sbif_json *list = sbif_json_get(m->document, "tensors"), *item;
    const char **stray;
    size_t i, n_stray = 0;
    char declared[160], stored[160];
    for (i = 0, item = sbif_json_first(list); i < list->length; i++, item = sbif_json_next(item)) {
        const char *name = sbif_json_get(item, "name")->str;
        const sbif_json *dtype = sbif_json_get(item, "dtype"), *shape = sbif_json_get(item, "shape");
        long index = map_find(&m->file.names, name);
        container_entry *entry;
        sbif_tensor type;
        value_info *v;
        if (index < 0) {
            return fail(error, SBIF_ERR_DOCUMENT, "%s: tensor '%s' is listed in the document but missing from the file",
                        m->path, name);
        }
        entry = &m->file.entries[index];
        if (strcmp(entry->dtype->numpy_name, dtype->str) != 0) {
            return fail(error, SBIF_ERR_DOCUMENT, "%s: tensor '%s' is declared %s but stored as %s", m->path, name,
                        dtype->str, entry->dtype->numpy_name);
        }
        if (!same_shape_json(shape, entry->shape)) {
            json_render(shape, declared, sizeof declared);
            json_render(entry->shape, stored, sizeof stored);
            return fail(error, SBIF_ERR_DOCUMENT, "%s: tensor '%s' is declared with shape %s but stored with shape %s",
                        m->path, name, declared, stored);
        }
        declared_type(dtype, shape, &type);
        if (define_value(m, name, &type, m->path, "tensor", &v, error) != SBIF_OK) return error->status;
        v->tensor = (int32_t)index;
        entry->listed = 1;
    }
    stray = malloc((m->file.count + 1) * sizeof *stray);
    if (stray == NULL) return out_of_memory(error);
    for (i = 0; i < m->file.count; i++) {
        if (!m->file.entries[i].listed) stray[n_stray++] = m->file.entries[i].name;
    }
    if (n_stray > 0) {
        char names[600];
        size_t used = 0;
        qsort((void *)stray, n_stray, sizeof *stray, name_order);
        for (i = 0; i < n_stray && i < 5 && used < sizeof names; i++) {
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%.80s", i ? ", " : "", stray[i]);
        }
        free((void *)stray);
        return fail(error, SBIF_ERR_DOCUMENT, "%s: the file holds tensors the document does not list: %s", m->path,
                    names);
    }
    free((void *)stray);
    return SBIF_OK;
}

/** Graph inputs and outputs have the batch (null) as their first dimension (SPEC sections 1, 3.4, 3.6): requests feed
 * and return them row by row, so a batch-free one ([2], []) would pass the static check and fail only when run. */
static sbif_status require_batch_first(const sbif_model *m, const sbif_json *entry, const char *role,
                                       sbif_error *error) {
    const sbif_json *shape = sbif_json_get(entry, "shape");
    char text[160];
    if (shape->length > 0 && sbif_json_first(shape)->kind == SBIF_JSON_NULL) return SBIF_OK;
    json_render(shape, text, sizeof text);
    return fail(error, SBIF_ERR_DOCUMENT, "%s: %s '%s' has shape %s: a graph %s has the batch (null) as its first "
                "dimension", m->path, role, sbif_json_get(entry, "name")->str, text, role);
}

static sbif_status check_inputs(sbif_model *m, sbif_error *error) {
    const sbif_json *list = sbif_json_get(m->document, "inputs"), *item;
    size_t i;
    for (i = 0, item = sbif_json_first(list); i < list->length; i++, item = sbif_json_next(item)) {
        const char *name = sbif_json_get(item, "name")->str, *kind = sbif_json_get(item, "kind")->str;
        const sbif_json *shape = sbif_json_get(item, "shape");
        sbif_tensor type;
        value_info *v;
        char text[160];
        if (require_batch_first(m, item, "input", error) != SBIF_OK) return error->status;
        if (shape->length > SBIF_MAX_RANK) {
            return fail(error, SBIF_ERR_DOCUMENT, "%s: input '%s' has rank %lu, above the limit of %d dimensions",
                        m->path, name, (unsigned long)shape->length, SBIF_MAX_RANK);
        }
        if (declared_type(sbif_json_get(item, "dtype"), shape, &type) != 0) {
            json_render(shape, text, sizeof text);
            return fail(error, SBIF_ERR_DOCUMENT, "%s: input '%s' has shape %s: a dimension exceeds " MAX_DIM_TEXT,
                        m->path, name, text);
        }
        if (define_value(m, name, &type, m->path, "input", &v, error) != SBIF_OK) return error->status;
        v->input = (int32_t)i;
        m->inputs[i].value = (uint32_t)(v - m->values);
        m->inputs[i].kind = kind;
        if (strcmp(kind, "noise") == 0 && type.dtype != SBIF_FLOAT32) { /* check_structure requires its distribution */
            return fail(error, SBIF_ERR_DOCUMENT, "%s: noise input '%s' must be float32", m->path, name);
        }
    }
    m->n_inputs = list->length;
    return SBIF_OK;
}

/** A Box bound: one float, or one per element of the space (the shape's product is never materialised). */
static sbif_status check_bound(const sbif_model *m, const sbif_json *bound, const sbif_json *shape, const char *space,
                               const char *which, sbif_error *error) {
    const sbif_json *item;
    int64_t size = 1, dim;
    int overflow = 0;
    size_t i;
    for (i = 0, item = sbif_json_first(shape); i < shape->length; i++, item = sbif_json_next(item)) {
        if (sbif_json_int64(item, &dim) != 0 || checked_mul(size, dim, &size) != 0) overflow = 1;
    }
    if (bound->kind == SBIF_JSON_ARRAY && (overflow || (int64_t)bound->length != size)) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: %s %s: a Box bound has %lu values for a space of %s%lld elements",
                    m->path, space, which, (unsigned long)bound->length, overflow ? "more than " : "",
                    overflow ? (long long)INT64_MAX : (long long)size);
    }
    for (i = 0, item = bound->kind == SBIF_JSON_ARRAY ? sbif_json_first(bound) : bound;
         i < (bound->kind == SBIF_JSON_ARRAY ? bound->length : 1); i++, item = sbif_json_next(item)) {
        double value = 0.0;
        sbif_json_double(item, &value);
        if (sbif_json_is_integer(item) && (value > DBL_MAX || value < -DBL_MAX)) {
            char text[64];
            json_render(item, text, sizeof text);
            return fail(error, SBIF_ERR_DOCUMENT, "%s: %s %s: the number %s is too large for a float",
                        m->path, space, which, text);
        }
    }
    return SBIF_OK;
}

/** Whether predict follows the SB3 contract (SPEC section 5.9); a version-1 document follows SB2's. */
static int sb3_contract(const sbif_model *m) {
    const sbif_json *contract = sbif_json_get(sbif_json_get(m->document, "predict"), "contract");
    return contract != NULL && strcmp(contract->str, "sb3") == 0;
}

/** An observation input, value `id`, must have the dtype and shape its space implies (SPEC.md 3.2). `what` names it
 * in messages ("observation", or "observation 'obs/KEY'" for a key of a dict space); `normalized` says whether
 * VecNormalize statistics are folded in for it (SPEC section 5.7). */
static sbif_status check_observation_input(sbif_model *m, const sbif_json *space, uint32_t id, const char *what,
                                           int normalized, sbif_error *error) {
    const sbif_json *item;
    const char *kind = sbif_json_get(space, "kind")->str;
    sbif_tensor expected, obs;
    char have[160], want[160], bound_of[200];
    size_t i;
    int fits = 1;
    memset(&expected, 0, sizeof expected);
    expected.rank = 1;
    expected.shape[0] = -1;
    expected.dtype = SBIF_INT32;
    if (strcmp(kind, "box") == 0) {
        const sbif_json *shape = sbif_json_get(space, "shape");
        if (strcmp(what, "observation") == 0) snprintf(bound_of, sizeof bound_of, "observation_space");
        else snprintf(bound_of, sizeof bound_of, "%s space", what);
        if (check_bound(m, sbif_json_get(space, "low"), shape, bound_of, "low", error) != SBIF_OK ||
            check_bound(m, sbif_json_get(space, "high"), shape, bound_of, "high", error) != SBIF_OK) {
            return error->status;
        }
        sbif_dtype_parse(sbif_json_get(space, "dtype")->str, &expected.dtype);
        if (sb3_contract(m)) expected.dtype = SBIF_FLOAT32; /* SB3 converts Box observations with .float() */
        if (normalized) expected.dtype = SBIF_FLOAT64; /* raw observations, normalized in the graph */
        fits = shape->length < SBIF_MAX_RANK;
        for (i = 0, item = sbif_json_first(shape); fits && i < shape->length; i++, item = sbif_json_next(item)) {
            fits = sbif_json_int64(item, &expected.shape[i + 1]) == 0;
        }
        expected.rank = (int)shape->length + 1;
    } else if (strcmp(kind, "discrete") != 0) {
        expected.rank = 2;
        if (strcmp(kind, "multi_discrete") == 0) {
            expected.shape[1] = (int64_t)sbif_json_get(space, "nvec")->length;
        } else {
            fits = sbif_json_int64(sbif_json_get(space, "n"), &expected.shape[1]) == 0;
            if (sb3_contract(m)) expected.dtype = SBIF_FLOAT32; /* MultiBinary, converted with .float() too */
        }
    }
    value_type(m, id, -1, &obs);
    if (!fits || !same_type(&obs, &expected)) {
        format_type(&obs, have, sizeof have);
        if (fits) format_type(&expected, want, sizeof want);
        else snprintf(want, sizeof want, "a shape this runtime cannot represent");
        return fail(error, SBIF_ERR_DOCUMENT, "%s: %s input is %s but a %s observation space needs %s", m->path,
                    what, have, kind, want);
    }
    return SBIF_OK;
}

/** A JSON string of a dict space's key, with its length (a key may hold U+0000, which C strings cannot). */
typedef struct space_key {
    const char *str;
    size_t length;
} space_key;

static int key_order(const void *a, const void *b) {
    const space_key *x = a, *y = b;
    int order = memcmp(x->str, y->str, x->length < y->length ? x->length : y->length);
    return order != 0 ? order : (x->length > y->length) - (x->length < y->length);
}

/** Whether input `name` is DICT_INPUT_PREFIX followed by exactly `key`. */
static int names_key(const char *name, const space_key *key) {
    const size_t prefix = sizeof DICT_INPUT_PREFIX - 1;
    return strncmp(name, DICT_INPUT_PREFIX, prefix) == 0 && strlen(name + prefix) == key->length &&
           memcmp(name + prefix, key->str, key->length) == 0;
}

/** Appends `text` (`length` bytes) to a list preview being built in `out`, as the reference's preview() shows a list of
 * strings ('a', 'b'), up to PREVIEW_CHARS characters followed by "..." where it is cut. */
static void preview_append(char *out, size_t *used, const char *prefix, const char *text, size_t length) {
    char piece[PREVIEW_CHARS + 8];
    size_t n = (size_t)snprintf(piece, sizeof piece, "%s'%s%.*s'", *used > 1 ? ", " : "", prefix,
                                (int)(length < PREVIEW_CHARS ? length : PREVIEW_CHARS), text);
    if (n >= sizeof piece) n = sizeof piece - 1;
    if (*used > PREVIEW_CHARS) return;
    if (*used + n > PREVIEW_CHARS) n = PREVIEW_CHARS - *used;
    memcpy(out + *used, piece, n);
    *used += n;
    out[*used] = '\0';
}

static void preview_close(char *out, size_t used) {
    if (used < PREVIEW_CHARS) strcpy(out + used, "]");
    else strcpy(out + PREVIEW_CHARS, "...");
}

/** provenance.vecnormalize of a dict observation space (SPEC section 5.7), as _check_dict_observation_inputs decides:
 * it lists its keys and stacks no frames, and the keys are Box keys of the space, each once (sorted copies tell both,
 * in time n log n whatever the lists hold). On success, *listed holds the listed keys sorted by key_order (NULL, 0
 * when the file has no statistics), for the caller to search and free. */
static sbif_status check_normalized_keys(sbif_model *m, const sbif_json *spaces, space_key **listed, size_t *n_listed,
                                         sbif_error *error) {
    const sbif_json *vecnormalize = sbif_json_get(sbif_json_get(m->document, "provenance"), "vecnormalize");
    const sbif_json *keys, *item, *key;
    space_key *boxes;
    char text[PREVIEW_CHARS + 4];
    size_t i, n_boxes = 0, used = 1;
    int named = 1;
    *listed = NULL;
    *n_listed = 0;
    if (vecnormalize == NULL) return SBIF_OK;
    keys = sbif_json_get(vecnormalize, "keys");
    if (keys == NULL || sbif_json_get(vecnormalize, "frame_stack") != NULL) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: provenance.vecnormalize of a dict observation space lists its keys "
                    "and stacks no frames (SPEC section 5.7)", m->path);
    }
    *listed = malloc((keys->length + spaces->length) * sizeof **listed); /* spaces has at least one entry */
    if (*listed == NULL) return out_of_memory(error);
    boxes = *listed + keys->length;
    for (i = 0, item = sbif_json_first(spaces); i < spaces->length; i++, item = sbif_json_next(item)) {
        if (strcmp(sbif_json_get(sbif_json_get(item, "space"), "kind")->str, "box") != 0) continue;
        key = sbif_json_get(item, "key");
        boxes[n_boxes].str = key->str;
        boxes[n_boxes++].length = key->length;
    }
    for (i = 0, item = sbif_json_first(keys); i < keys->length; i++, item = sbif_json_next(item)) {
        (*listed)[i].str = item->str;
        (*listed)[i].length = item->length;
    }
    qsort(boxes, n_boxes, sizeof *boxes, key_order);
    qsort(*listed, keys->length, sizeof **listed, key_order);
    for (i = 0; named && i < keys->length; i++) {
        named = (i == 0 || key_order(&(*listed)[i - 1], &(*listed)[i]) != 0) &&
                bsearch(&(*listed)[i], boxes, n_boxes, sizeof *boxes, key_order) != NULL;
    }
    if (!named) {
        free(*listed);
        *listed = NULL;
        strcpy(text, "[");
        for (i = 0, item = sbif_json_first(keys); i < keys->length; i++, item = sbif_json_next(item)) {
            preview_append(text, &used, "", item->str, item->length);
        }
        preview_close(text, used);
        return fail(error, SBIF_ERR_DOCUMENT, "%s: provenance.vecnormalize.keys must name Box keys of the dict "
                    "observation space, each once, got %s", m->path, text);
    }
    *n_listed = keys->length;
    return SBIF_OK;
}

/** A dict observation space (SB3 contract, SPEC section 3.2): one observation input per key, obs/KEY, in the keys'
 * order, each typed for its space (sbif/format/validate.py's _check_dict_observation_inputs: the same decisions, in the
 * same order). */
static sbif_status check_dict_observation(sbif_model *m, const sbif_json *spaces, sbif_error *error) {
    const sbif_json *item;
    space_key *keys, *sorted, *normalized;
    char expected_text[PREVIEW_CHARS + 4], found_text[PREVIEW_CHARS + 4], what[128];
    size_t i, n_keys = spaces->length, next = 0, expected_used = 1, found_used = 1, n_normalized;
    int matches = 1;
    if (!sb3_contract(m)) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: a dict observation space belongs to the SB3 contract, but "
                    "predict.contract is sb2", m->path);
    }
    keys = malloc(2 * n_keys * sizeof *keys);
    if (keys == NULL) return out_of_memory(error);
    sorted = keys + n_keys;
    for (i = 0, item = sbif_json_first(spaces); i < n_keys; i++, item = sbif_json_next(item)) {
        const sbif_json *key = sbif_json_get(item, "key");
        keys[i].str = key->str;
        keys[i].length = key->length;
    }
    memcpy(sorted, keys, n_keys * sizeof *keys);
    qsort(sorted, n_keys, sizeof *sorted, key_order);
    for (i = 1; i < n_keys; i++) {
        if (key_order(&sorted[i - 1], &sorted[i]) == 0) {
            free(keys);
            return fail(error, SBIF_ERR_DOCUMENT, "%s: the dict observation space names a key twice", m->path);
        }
    }
    strcpy(expected_text, "[");
    strcpy(found_text, "[");
    for (i = 0; i < n_keys; i++) {
        preview_append(expected_text, &expected_used, DICT_INPUT_PREFIX, keys[i].str, keys[i].length);
    }
    for (i = 0; i < m->n_inputs; i++) {
        const char *name = m->values[m->inputs[i].value].name;
        if (strcmp(m->inputs[i].kind, "observation") != 0) continue;
        preview_append(found_text, &found_used, "", name, strlen(name));
        if (next >= n_keys || !names_key(name, &keys[next])) matches = 0;
        next++;
    }
    free(keys);
    if (!matches || next != n_keys) {
        preview_close(expected_text, expected_used);
        preview_close(found_text, found_used);
        return fail(error, SBIF_ERR_DOCUMENT, "%s: a dict observation space needs the observation inputs %s (one per "
                    "key, in order), got %s", m->path, expected_text, found_text);
    }
    if (check_normalized_keys(m, spaces, &normalized, &n_normalized, error) != SBIF_OK) return error->status;
    for (i = 0, next = 0, item = sbif_json_first(spaces); i < n_keys; i++, item = sbif_json_next(item)) {
        const sbif_json *key = sbif_json_get(item, "key");
        const space_key sought = {key->str, key->length};
        const int listed = n_normalized > 0 &&
                           bsearch(&sought, normalized, n_normalized, sizeof *normalized, key_order) != NULL;
        while (strcmp(m->inputs[next].kind, "observation") != 0) next++;
        snprintf(what, sizeof what, "observation '%.80s'", m->values[m->inputs[next].value].name);
        if (check_observation_input(m, sbif_json_get(item, "space"), m->inputs[next].value, what, listed, error) !=
            SBIF_OK) {
            free(normalized);
            return error->status;
        }
        next++;
    }
    free(normalized);
    return SBIF_OK;
}

/** The observation inputs against the observation space (SPEC section 3.2): one input named obs, of kind observation,
 * typed for the space; or for a dict space, one per key. */
static sbif_status check_observation(sbif_model *m, sbif_error *error) {
    const sbif_json *space = sbif_json_get(m->document, "observation_space"), *vecnormalize;
    long obs;
    size_t i;
    int has_observation = 0;
    if (strcmp(sbif_json_get(space, "kind")->str, "dict") == 0) {
        return check_dict_observation(m, sbif_json_get(space, "spaces"), error);
    }
    for (i = 0; i < m->n_inputs; i++) has_observation |= strcmp(m->inputs[i].kind, "observation") == 0;
    obs = map_find(&m->names, OBSERVATION_INPUT);
    if (obs < 0 || m->values[obs].input < 0 || !has_observation) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: the graph has no observation input named '" OBSERVATION_INPUT "'",
                    m->path);
    }
    vecnormalize = sbif_json_get(sbif_json_get(m->document, "provenance"), "vecnormalize");
    if (vecnormalize != NULL && sbif_json_get(vecnormalize, "keys") != NULL) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: provenance.vecnormalize.keys belongs to dict observation spaces",
                    m->path);
    }
    return check_observation_input(m, space, (uint32_t)obs, "observation", vecnormalize != NULL, error);
}

static sbif_status check_node(sbif_model *m, size_t index, const sbif_json *item, size_t *next_id, sbif_error *error) {
    node *n = &m->nodes[index];
    const char *op_name = sbif_json_get(item, "op")->str;
    const sbif_json *inputs = sbif_json_get(item, "inputs"), *outputs = sbif_json_get(item, "outputs"), *name;
    char where[256];
    operands in;
    sbif_tensor whole, type;
    sbif_status status;
    size_t i;
    snprintf(where, sizeof where, "%s: graph node %lu (%.64s)", m->path, (unsigned long)index, op_name);
    if ((n->op = find_op(op_name)) == NULL) {
        char source[200];
        snprintf(source, sizeof source, "%s: graph node %lu", m->path, (unsigned long)index);
        return unknown_op(source, op_name, error);
    }
    status = resolve_attrs(n->op->name, n->op->attrs, n->op->n_attrs, sbif_json_get(item, "attrs"), &n->attrs, error);
    if (status != SBIF_OK) {
        return add_context(error, "%s", where);
    }
    n->n_inputs = (uint32_t)inputs->length;
    n->n_outputs = (uint32_t)outputs->length;
    n->ids = *next_id;
    if (n->op->arity < 0 ? inputs->length < 1 : inputs->length != (size_t)n->op->arity) {
        char arity[16];
        snprintf(arity, sizeof arity, "%d", n->op->arity);
        return fail(error, SBIF_ERR_DOCUMENT, "%s: takes %s inputs, got %lu", where,
                    n->op->arity < 0 ? "one or more" : arity, (unsigned long)inputs->length);
    }
    if (n->op->outputs == 1 && outputs->length != 1) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: has 1 outputs, got %lu", where, (unsigned long)outputs->length);
    }
    for (i = 0, name = sbif_json_first(inputs); i < inputs->length; i++, name = sbif_json_next(name)) {
        long id = map_find(&m->names, name->str);
        if (id < 0) {
            return fail(error, SBIF_ERR_DOCUMENT, "%s: uses '%.80s' before it is defined (not an input, tensor or "
                        "earlier output)", where, name->str);
        }
        m->ids[(*next_id)++] = (uint32_t)id;
    }
    memset(&in, 0, sizeof in);
    in.count = inputs->length;
    in.model = m;
    in.ids = &m->ids[n->ids];
    in.batch = -1;
    if (n->op->infer(&in, &n->attrs, outputs->length, &whole, error) != SBIF_OK) return add_context(error, "%s", where);
    for (i = 0, name = sbif_json_first(outputs); i < outputs->length; i++, name = sbif_json_next(name)) {
        value_info *v;
        output_type(n->op, &n->attrs, &whole, i, &type);
        if (define_value(m, name->str, &type, where, "output", &v, error) != SBIF_OK) return error->status;
        v->producer = (int32_t)index;
        m->ids[(*next_id)++] = (uint32_t)(v - m->values);
    }
    m->n_nodes = index + 1;
    return SBIF_OK;
}

static sbif_status check_outputs(sbif_model *m, sbif_error *error) {
    const sbif_json *list = sbif_json_get(m->document, "outputs"), *item;
    size_t i;
    if (map_init(&m->output_names, list->length) != 0) return out_of_memory(error);
    for (i = 0, item = sbif_json_first(list); i < list->length; i++, item = sbif_json_next(item)) {
        const char *name = sbif_json_get(item, "name")->str;
        const sbif_json *shape = sbif_json_get(item, "shape");
        long id = map_find(&m->names, name);
        sbif_tensor declared, computed;
        char have[160], want[160];
        int fits;
        if (require_batch_first(m, item, "output", error) != SBIF_OK) return error->status;
        if (id < 0) {
            return fail(error, SBIF_ERR_DOCUMENT, "%s: output '%s' is never computed by the graph", m->path, name);
        }
        fits = shape->length <= SBIF_MAX_RANK && declared_type(sbif_json_get(item, "dtype"), shape, &declared) == 0;
        value_type(m, (uint32_t)id, -1, &computed);
        if (!fits || !same_type(&declared, &computed)) {
            format_type(&computed, have, sizeof have);
            if (fits) format_type(&declared, want, sizeof want);
            else json_render(shape, want, sizeof want);
            return fail(error, SBIF_ERR_DOCUMENT, "%s: output '%s' is declared %s but the graph computes %s", m->path,
                        name, want, have);
        }
        m->outputs[i] = (uint32_t)id;
        map_add(&m->output_names, name, (uint32_t)i);
    }
    m->n_outputs = list->length;
    return SBIF_OK;
}

static sbif_status check_predict_name(const sbif_model *m, const sbif_json *name, sbif_error *error) {
    if (name == NULL || name->kind != SBIF_JSON_STRING || map_find(&m->output_names, name->str) >= 0) return SBIF_OK;
    return fail(error, SBIF_ERR_DOCUMENT, "%s: predict refers to '%s', which is not a declared output", m->path,
                name->str);
}

/** The input named `name` if it is a graph input of `kind`, else NULL. */
static const graph_input *input_named(const sbif_model *m, const char *name, const char *kind) {
    long id = map_find(&m->names, name);
    if (id < 0 || m->values[id].input < 0) return NULL;
    return strcmp(m->inputs[m->values[id].input].kind, kind) == 0 ? &m->inputs[m->values[id].input] : NULL;
}

/** predict names declared outputs; state and mask inputs exist exactly when predict.recurrent names them. */
static sbif_status check_predict(sbif_model *m, sbif_error *error) {
    const sbif_json *predict = sbif_json_get(m->document, "predict");
    const sbif_json *distribution = sbif_json_get(predict, "distribution");
    const sbif_json *recurrent = sbif_json_get(predict, "recurrent"), *item;
    const graph_input *state, *mask;
    sbif_tensor state_type, mask_type, out_type;
    size_t i;
    long out;
    if (check_predict_name(m, sbif_json_get(predict, "deterministic_action"), error) != SBIF_OK ||
        check_predict_name(m, sbif_json_get(predict, "stochastic_action"), error) != SBIF_OK) {
        return error->status;
    }
    if (distribution != NULL) {
        const sbif_json *parameters = sbif_json_get(distribution, "parameters");
        for (i = 0, item = sbif_json_first(parameters); i < parameters->length; i++, item = sbif_json_next(item)) {
            if (check_predict_name(m, item + 1, error) != SBIF_OK) return error->status;
        }
    }
    if (recurrent == NULL) {
        for (i = 0; i < m->n_inputs; i++) {
            if (strcmp(m->inputs[i].kind, "state") == 0 || strcmp(m->inputs[i].kind, "mask") == 0) {
                return fail(error, SBIF_ERR_DOCUMENT, "%s: state/mask inputs without predict.recurrent", m->path);
            }
        }
        return SBIF_OK;
    }
    state = input_named(m, sbif_json_get(recurrent, "state_input")->str, "state");
    if (state != NULL) value_type(m, state->value, -1, &state_type);
    if (state == NULL || state_type.dtype != SBIF_FLOAT32 || state_type.rank != 2) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: predict.recurrent.state_input must name a float32 [B, S] input "
                    "of kind 'state'", m->path);
    }
    mask = input_named(m, sbif_json_get(recurrent, "mask_input")->str, "mask");
    if (mask != NULL) value_type(m, mask->value, -1, &mask_type);
    if (mask == NULL || mask_type.dtype != SBIF_FLOAT32 || mask_type.rank != 1 || mask_type.shape[0] != -1) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: predict.recurrent.mask_input must name a float32 [B] input of kind "
                    "'mask'", m->path);
    }
    out = map_find(&m->output_names, sbif_json_get(recurrent, "state_output")->str);
    if (out >= 0) value_type(m, m->outputs[out], -1, &out_type);
    if (out < 0 || !same_type(&out_type, &state_type)) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: predict.recurrent.state_output must name a declared output "
                    "shaped like the state input", m->path);
    }
    return SBIF_OK;
}

/** predict.shared_noise names distinct noise inputs. */
static sbif_status check_shared_noise(const sbif_model *m, const sbif_json *shared, sbif_error *error) {
    const char **names;
    const sbif_json *item;
    size_t i;
    int twice = 0;
    if (shared->length == 0) return SBIF_OK;
    if ((names = malloc(shared->length * sizeof *names)) == NULL) return out_of_memory(error);
    for (i = 0, item = sbif_json_first(shared); i < shared->length; i++, item = sbif_json_next(item)) {
        names[i] = item->str;
    }
    qsort((void *)names, shared->length, sizeof *names, name_order);
    for (i = 1; i < shared->length && !twice; i++) twice = strcmp(names[i - 1], names[i]) == 0;
    free((void *)names);
    if (twice) return fail(error, SBIF_ERR_DOCUMENT, "%s: predict.shared_noise names an input twice", m->path);
    for (i = 0, item = sbif_json_first(shared); i < shared->length; i++, item = sbif_json_next(item)) {
        if (input_named(m, item->str, "noise") == NULL) {
            return fail(error, SBIF_ERR_DOCUMENT, "%s: predict.shared_noise names '%.80s', which is not a noise input",
                        m->path, item->str);
        }
    }
    return SBIF_OK;
}

/** The state input of predict.recurrent (check_predict found it float32 [B, S]) holds the actor's h and c of every
 * layer of state_layout, or those and the critic's: S = 2 L H or 4 L H. */
static sbif_status check_state_layout(const sbif_model *m, const sbif_json *recurrent, const sbif_json *layout,
                                      sbif_error *error) {
    const graph_input *state = input_named(m, sbif_json_get(recurrent, "state_input")->str, "state");
    sbif_tensor type;
    int64_t layers, hidden, cells = -1;
    char layers_text[64], hidden_text[64], cells_text[160];
    value_type(m, state->value, -1, &type);
    if (sbif_json_int64(sbif_json_get(layout, "layers"), &layers) != 0 ||
        sbif_json_int64(sbif_json_get(layout, "hidden"), &hidden) != 0 || checked_mul(layers, hidden, &cells) != 0) {
        cells = -1; /* beyond int64: far more than any state's columns */
    }
    if ((type.shape[1] % 2 == 0 && type.shape[1] / 2 == cells) ||
        (type.shape[1] % 4 == 0 && type.shape[1] / 4 == cells)) {
        return SBIF_OK;
    }
    json_render(sbif_json_get(layout, "layers"), layers_text, sizeof layers_text);
    json_render(sbif_json_get(layout, "hidden"), hidden_text, sizeof hidden_text);
    if (cells >= 0) snprintf(cells_text, sizeof cells_text, "%lld", (long long)cells);
    else snprintf(cells_text, sizeof cells_text, "(%s x %s)", layers_text, hidden_text);
    return fail(error, SBIF_ERR_DOCUMENT, "%s: the state has %lld columns, but an LSTM state of %s layers of %s units "
                "holds 2 x %s (the actor's h and c) or 4 x %s (with the critic's)", m->path, (long long)type.shape[1],
                layers_text, hidden_text, cells_text, cells_text);
}

/** The version-2 predict fields name inputs of the right kind and type, and only the SB3 contract uses them (SPEC
 * section 5.9): an SB2 file with an action mask would be run by SB2's rules, which have none. */
static sbif_status check_contract(const sbif_model *m, sbif_error *error) {
    static const char *const SB3_FIELDS[] = {"channels_last", "action_mask", "shared_noise", NULL};
    const sbif_json *predict = sbif_json_get(m->document, "predict");
    const sbif_json *recurrent = sbif_json_get(predict, "recurrent");
    const sbif_json *layout = recurrent != NULL ? sbif_json_get(recurrent, "state_layout") : NULL;
    const sbif_json *named = sbif_json_get(predict, "action_mask"), *shared = sbif_json_get(predict, "shared_noise");
    const graph_input *mask = NULL;
    char masks[256];
    size_t i, n_masks = 0, used = 0;
    if (!sb3_contract(m)) {
        for (i = 0; SB3_FIELDS[i] != NULL; i++) {
            if (sbif_json_get(predict, SB3_FIELDS[i]) != NULL) break;
        }
        if (SB3_FIELDS[i] != NULL || layout != NULL) {
            return fail(error, SBIF_ERR_DOCUMENT, "%s: predict.%s belongs to the SB3 contract, but predict.contract is "
                        "sb2", m->path, SB3_FIELDS[i] != NULL ? SB3_FIELDS[i] : "recurrent.state_layout");
        }
        for (i = 0; i < m->n_inputs; i++) {
            if (strcmp(m->inputs[i].kind, "action_mask") == 0) {
                return fail(error, SBIF_ERR_DOCUMENT, "%s: an action_mask input under the SB2 contract, which has none",
                            m->path);
            }
        }
        return SBIF_OK;
    }
    if (sbif_json_get(predict, "deterministic_default")->kind != SBIF_JSON_FALSE) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: deterministic_default must be false under the SB3 contract (SB3's "
                    "predict samples unless told otherwise)", m->path);
    }
    masks[0] = '\0';
    for (i = 0; i < m->n_inputs; i++) {
        const char *name = m->values[m->inputs[i].value].name;
        if (strcmp(m->inputs[i].kind, "action_mask") != 0) continue;
        if (used < sizeof masks) {
            used += (size_t)snprintf(masks + used, sizeof masks - used, "%s'%.80s'", n_masks > 0 ? ", " : "", name);
        }
        n_masks++;
        if (named != NULL && strcmp(name, named->str) == 0) mask = &m->inputs[i];
    }
    if (n_masks != (named != NULL ? 1u : 0u) || (named != NULL && mask == NULL)) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: predict.action_mask must name the one input of kind 'action_mask' "
                    "(inputs of that kind: %s)", m->path, n_masks > 0 ? masks : "none");
    }
    if (mask != NULL) {
        sbif_tensor type;
        value_type(m, mask->value, -1, &type);
        if (type.dtype != SBIF_BOOL || type.rank != 2) {
            return fail(error, SBIF_ERR_DOCUMENT, "%s: the action mask '%s' must be a bool [B, L] input", m->path,
                        named->str);
        }
    }
    if (shared != NULL && check_shared_noise(m, shared, error) != SBIF_OK) return error->status;
    return layout != NULL ? check_state_layout(m, recurrent, layout, error) : SBIF_OK;
}

/** Sizes every table from the document, then checks tensors, inputs, the graph node by node, outputs, predict and
 * its contract. */
static sbif_status build_graph(sbif_model *m, sbif_error *error) {
    const sbif_json *graph = sbif_json_get(m->document, "graph"), *item;
    size_t n_values, n_ids = 0, next_id = 0, i;
    n_values = sbif_json_get(m->document, "tensors")->length + sbif_json_get(m->document, "inputs")->length;
    for (i = 0, item = sbif_json_first(graph); i < graph->length; i++, item = sbif_json_next(item)) {
        n_values += sbif_json_get(item, "outputs")->length;
        n_ids += sbif_json_get(item, "inputs")->length + sbif_json_get(item, "outputs")->length;
    }
    if (n_values >= UINT32_MAX || n_ids >= UINT32_MAX) {
        return fail(error, SBIF_ERR_UNSUPPORTED, "%s: the graph has too many values for this runtime", m->path);
    }
    m->values = calloc(n_values + 1, sizeof *m->values);
    m->ids = malloc((n_ids + 1) * sizeof *m->ids);
    m->nodes = calloc(graph->length + 1, sizeof *m->nodes);
    m->inputs = calloc(sbif_json_get(m->document, "inputs")->length, sizeof *m->inputs);
    m->outputs = calloc(sbif_json_get(m->document, "outputs")->length, sizeof *m->outputs);
    if (m->values == NULL || m->ids == NULL || m->nodes == NULL || m->inputs == NULL || m->outputs == NULL ||
        map_init(&m->names, n_values) != 0) {
        return out_of_memory(error);
    }
    if (check_tensors(m, error) != SBIF_OK || check_inputs(m, error) != SBIF_OK ||
        check_observation(m, error) != SBIF_OK) {
        return error->status;
    }
    for (i = 0, item = sbif_json_first(graph); i < graph->length; i++, item = sbif_json_next(item)) {
        if (check_node(m, i, item, &next_id, error) != SBIF_OK) {
            m->n_nodes = i + 1; /* its attributes are freed with the model */
            return error->status;
        }
    }
    if (check_outputs(m, error) != SBIF_OK || check_predict(m, error) != SBIF_OK) return error->status;
    return check_contract(m, error);
}

/** The number of JSON values in `text`, valid JSON, counted on the text without parsing it: 1 (the outermost value)
 * + the commas outside strings (each starts a value) + the non-empty arrays and objects (whose first member no comma
 * precedes), as the reference counts (sbif/format/document.py). Counting stops once it passes `limit`. On text that is
 * not JSON the number means nothing; the parser refuses that text anyway. */
static uint64_t json_value_count(const char *text, size_t length, uint64_t limit) {
    uint64_t values = 1;
    int in_string = 0, escaped = 0, opened = 0;
    size_t i;
    for (i = 0; i < length && values <= limit; i++) {
        char ch = text[i];
        if (in_string) {
            if (escaped) escaped = 0;
            else if (ch == '\\') escaped = 1;
            else if (ch == '"') in_string = 0;
            continue;
        }
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') continue;
        values += opened && ch != ']' && ch != '}';
        opened = ch == '[' || ch == '{';
        values += ch == ',';
        in_string = ch == '"';
    }
    return values;
}

/** The SBIF metadata, format_version (before anything else in the document) and the document's structure. */
static sbif_status read_document(sbif_model *m, sbif_error *error) {
    const sbif_json *format = sbif_json_get(m->file.metadata, "format");
    const sbif_json *text = sbif_json_get(m->file.metadata, "sbif"), *version, *graph;
    sbif_status status;
    schema s;
    int64_t number;
    char rendered[64];
    if (format == NULL || format->length != 4 || strcmp(format->str, "sbif") != 0 || text == NULL) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s is a safetensors file but not an SBIF file (no 'sbif' document "
                    "in its metadata)", m->path);
    }
    if (json_value_count(text->str, text->length, MAX_DOCUMENT_VALUES) > MAX_DOCUMENT_VALUES) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: the SBIF document holds more than %lu JSON values (SPEC section 3)",
                    m->path, (unsigned long)MAX_DOCUMENT_VALUES);
    }
    status = parse_object(text->str, text->length, &m->document, SBIF_ERR_DOCUMENT, m->path, "the SBIF document",
                          error);
    if (status != SBIF_OK) return status;
    version = sbif_json_get(m->document, "format_version");
    if (version == NULL) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: format_version must be an integer, got nothing", m->path);
    }
    json_render(version, rendered, sizeof rendered);
    if (!sbif_json_is_integer(version)) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: format_version must be an integer, got %s", m->path, rendered);
    }
    if (sbif_json_int64(version, &number) != 0 || (number != FORMAT_VERSION_1 && number != FORMAT_VERSION_2)) {
        return fail(error, SBIF_ERR_UNSUPPORTED, "%s: format version %s is not supported (this runtime reads "
                    FORMAT_VERSIONS_TEXT ")", m->path, rendered);
    }
    graph = sbif_json_get(m->document, "graph");
    if (graph != NULL && graph->kind == SBIF_JSON_ARRAY && graph->length > MAX_GRAPH_NODES) {
        return fail(error, SBIF_ERR_DOCUMENT, "%s: the graph has %lu nodes: at most %d (SPEC section 3)", m->path,
                    (unsigned long)graph->length, MAX_GRAPH_NODES);
    }
    s.source = m->path;
    s.error = error;
    s.version = number;
    return check_structure(&s, m->document);
}

/** Pack the weights of every float32 product whose weights are a file tensor into the kernels' panels, once. */
static sbif_status pack_weights(sbif_model *m, sbif_error *error) {
    size_t i;
    for (i = 0; i < m->n_nodes; i++) {
        node *n = &m->nodes[i];
        uint32_t id = m->ids[n->ids + 1];
        sbif_tensor w;
        int64_t depth;
        unsigned char *cursor;
        if (!is_product(n->op) || m->values[id].tensor < 0 || m->values[id].dtype != SBIF_FLOAT32) continue;
        value_type(m, id, -1, &w);
        depth = n->op->compute == compute_conv2d ? w.shape[0] * w.shape[1] * w.shape[2] : w.shape[0];
        if ((n->packed_block = malloc(scratch_for(sbif_kernel_packed_floats(depth, w.shape[w.rank - 1])))) == NULL) {
            return out_of_memory(error);
        }
        cursor = n->packed_block;
        n->packed = take_scratch(&cursor, sbif_kernel_packed_floats(depth, w.shape[w.rank - 1]) * sizeof(float));
        sbif_kernel_pack(m->file.entries[m->values[id].tensor].data, depth, w.shape[w.rank - 1], n->packed);
    }
    return SBIF_OK;
}

/** Mark the file tensors whose elements all have the same bytes, which an element-wise op may then read as one value
 * broadcast (map_binary): the same operand element by element, read from one place rather than streamed through the
 * cache. An image policy's observation bounds are such tensors: 0 and 255 for every pixel. */
static void find_uniform_tensors(sbif_model *m) {
    size_t i;
    for (i = 0; i < m->n_values; i++) {
        value_info *v = &m->values[i];
        const unsigned char *bytes;
        size_t size = sbif_dtype_size((sbif_dtype)v->dtype), count, k;
        sbif_tensor type;
        if (v->tensor < 0) continue;
        value_type(m, (uint32_t)i, -1, &type);
        count = (size_t)type_count(&type);
        bytes = m->file.entries[v->tensor].data;
        for (k = 1; k < count && memcmp(bytes, bytes + k * size, size) == 0; k++) continue;
        v->uniform = count > 1 && k == count;
    }
}

static int is_uniform(const sbif_model *m, uint32_t id) { return m->values[id].uniform; }

sbif_status sbif_model_load(const char *path, sbif_model **model, sbif_error *error) {
    sbif_error ignored;
    sbif_model *m;
    sbif_status status;
    if (error == NULL) error = &ignored;
    *model = NULL;
    m = calloc(1, sizeof *m);
    if (m == NULL || (m->path = malloc(strlen(path) + 1)) == NULL) {
        free(m);
        return out_of_memory(error);
    }
    strcpy(m->path, path);
    status = container_open(&m->file, m->path, error);
    if (status == SBIF_OK) status = read_document(m, error);
    if (status == SBIF_OK) status = build_graph(m, error);
    if (status == SBIF_OK) status = container_read_data(&m->file, error);
    if (status == SBIF_OK) status = pack_weights(m, error);
    if (status == SBIF_OK) find_uniform_tensors(m);
    if (status != SBIF_OK) {
        sbif_model_free(m);
        return status;
    }
    *model = m;
    return SBIF_OK;
}

/* ---- introspection ---- */

static void describe_value(const sbif_model *m, uint32_t id, const char *kind, sbif_value_info *info) {
    sbif_tensor type;
    value_type(m, id, -1, &type);
    info->name = m->values[id].name;
    info->kind = kind;
    info->dtype = type.dtype;
    info->rank = type.rank;
    memcpy(info->shape, type.shape, sizeof info->shape);
}

size_t sbif_model_input_count(const sbif_model *m) { return m->n_inputs; }
size_t sbif_model_output_count(const sbif_model *m) { return m->n_outputs; }
size_t sbif_model_node_count(const sbif_model *m) { return m->n_nodes; }
size_t sbif_model_tensor_count(const sbif_model *m) { return m->file.count; }
const sbif_json *sbif_model_document(const sbif_model *m) { return m->document; }

int sbif_model_input(const sbif_model *m, size_t index, sbif_value_info *info) {
    if (index >= m->n_inputs) return -1;
    describe_value(m, m->inputs[index].value, m->inputs[index].kind, info);
    return 0;
}

int sbif_model_output(const sbif_model *m, size_t index, sbif_value_info *info) {
    if (index >= m->n_outputs) return -1;
    describe_value(m, m->outputs[index], "output", info);
    return 0;
}

/* ==== running a graph ============================================================================================= */

/** Where each value of one run lives, per value id: a feed, a file tensor, a workspace buffer (computed values) or
 * the buffer of the value a view reshapes; and which values and nodes the run needs. */
typedef struct run_state {
    void **data;
    unsigned char *needed;
    unsigned char *run_node;
    unsigned char *fused;   /* per node: a fusion of this plan (enum fusion), or NULL: none (sbif_model_run) */
    uint32_t *readers;      /* per value: the planned nodes reading it (for the fusions), or NULL */
    int64_t *local_rows;    /* per value: the rows of its streamed segment where only that segment reads it
                             * (plan_segments), its buffer then holding just the rows being computed; else 0 */
} run_state;

/** A float32 product (linear, matmul, conv2d) whose output only a relu node reads, and which is no requested
 * output, stores its results through relu itself (sbif_kernel_activation); that relu node then shares the product's
 * buffer, as a view does. relu is exact, so the results are the same bit for bit, without a pass over them. */
enum fusion { NOT_FUSED, ENDS_WITH_RELU, DONE_BY_PRODUCT };

/** A caller's tensor must be well formed before its type is compared with anything. */
static sbif_status check_given(const sbif_tensor *t, const char *name, sbif_error *error) {
    int64_t count, bytes;
    int i;
    if ((unsigned)t->dtype >= SBIF_DTYPE_COUNT) return fail(error, SBIF_ERR_INPUT, "%s has an unknown dtype", name);
    if (t->rank < 0 || t->rank > SBIF_MAX_RANK) return fail(error, SBIF_ERR_INPUT, "%s has rank %d", name, t->rank);
    for (i = 0; i < t->rank; i++) {
        if (t->shape[i] < 0) return fail(error, SBIF_ERR_INPUT, "%s has a negative dimension", name);
    }
    count = type_count(t);
    if (count < 0 || checked_mul(count, (int64_t)sbif_dtype_size(t->dtype), &bytes) != 0 ||
        bytes > SBIF_MAX_VALUE_BYTES) {
        return fail(error, SBIF_ERR_INPUT, "%s is larger than this runtime's limit of %lld bytes for one value", name,
                    (long long)SBIF_MAX_VALUE_BYTES);
    }
    if (count > 0 && t->data == NULL) return fail(error, SBIF_ERR_INPUT, "%s has no data", name);
    return SBIF_OK;
}

/** Every fed input must have its declared dtype and shape, with one batch size across all inputs. */
static sbif_status check_feed(const sbif_model *m, uint32_t id, const sbif_tensor *t, int64_t *batch,
                              sbif_error *error) {
    const char *name = m->values[id].name;
    sbif_tensor declared;
    char want[160], have[160], label[200];
    int i, fits;
    snprintf(label, sizeof label, "input '%.80s'", name);
    if (check_given(t, label, error) != SBIF_OK) return error->status;
    value_type(m, id, -1, &declared);
    if (t->dtype != declared.dtype) {
        return fail(error, SBIF_ERR_INPUT, "input '%s' must be %s, got %s", name, sbif_dtype_name(declared.dtype),
                    sbif_dtype_name(t->dtype));
    }
    fits = t->rank == declared.rank;
    for (i = 0; fits && i < t->rank; i++) fits = declared.shape[i] < 0 || declared.shape[i] == t->shape[i];
    if (!fits) {
        format_shape(&declared, want, sizeof want);
        format_shape(t, have, sizeof have);
        return fail(error, SBIF_ERR_INPUT, "input '%s' must have shape %s, got %s", name, want, have);
    }
    if (declared.rank > 0 && declared.shape[0] < 0) {
        if (*batch >= 0 && t->shape[0] != *batch) {
            return fail(error, SBIF_ERR_INPUT, "input '%s' has batch size %lld but another input has %lld", name,
                        (long long)t->shape[0], (long long)*batch);
        }
        *batch = t->shape[0];
    }
    return SBIF_OK;
}

/** A node's operands in a run. */
static void node_operands(const sbif_model *m, const node *n, const run_state *r, int64_t batch, operands *in) {
    memset(in, 0, sizeof *in);
    in->count = n->n_inputs;
    in->model = m;
    in->ids = &m->ids[n->ids];
    in->data = r->data;
    in->batch = batch;
    in->packed = n->packed;
    in->activation = r->fused != NULL && r->fused[n - m->nodes] == ENDS_WITH_RELU ? SBIF_KERNEL_RELU
                                                                                  : SBIF_KERNEL_IDENTITY;
    in->local_rows = r->local_rows;
}

/** A comma-separated list of the declared outputs, for messages. */
static void list_outputs(const sbif_model *m, char *out, size_t size) {
    size_t i, used = 0;
    out[0] = '\0';
    for (i = 0; i < m->n_outputs && used < size; i++) {
        used += (size_t)snprintf(out + used, size - used, "%s%.60s", i ? ", " : "", m->values[m->outputs[i]].name);
    }
}

/** Mark the requested values, then walk the graph backwards: a node runs when one of its outputs is needed. */
static sbif_status plan_run(const sbif_model *m, const char *const *outputs, size_t n_outputs, run_state *r,
                            sbif_error *error) {
    size_t i, k;
    for (i = 0; i < n_outputs; i++) {
        long id = outputs[i] != NULL ? map_find(&m->names, outputs[i]) : -1;
        if (id < 0) {
            char declared[600];
            list_outputs(m, declared, sizeof declared);
            return fail(error, SBIF_ERR_INPUT, "unknown output '%.80s'; this file computes %s",
                        outputs[i] != NULL ? outputs[i] : "(null)", declared);
        }
        r->needed[id] = 1;
    }
    for (i = m->n_nodes; i-- > 0;) {
        const node *n = &m->nodes[i];
        const uint32_t *produced = &m->ids[n->ids + n->n_inputs];
        for (k = 0; k < n->n_outputs && !r->run_node[i]; k++) r->run_node[i] = r->needed[produced[k]];
        for (k = 0; r->run_node[i] && k < n->n_inputs; k++) r->needed[m->ids[n->ids + k]] = 1;
    }
    return SBIF_OK;
}

/** Bind the feeds of every needed graph input (others are ignored); find the batch size. */
static sbif_status bind_inputs(const sbif_model *m, const sbif_named_tensor *feeds, size_t n_feeds, run_state *r,
                               int64_t *batch, sbif_error *error) {
    static unsigned char empty;
    char missing[600];
    size_t i, used = 0;
    for (i = 0; i < n_feeds; i++) {
        long id = feeds[i].name != NULL ? map_find(&m->names, feeds[i].name) : -1;
        if (id < 0 || m->values[id].input < 0 || !r->needed[id]) continue;
        if (r->data[id] != NULL) return fail(error, SBIF_ERR_INPUT, "input '%s' is fed twice", feeds[i].name);
        if (check_feed(m, (uint32_t)id, &feeds[i].tensor, batch, error) != SBIF_OK) return error->status;
        r->data[id] = feeds[i].tensor.data != NULL ? feeds[i].tensor.data : &empty;
    }
    missing[0] = '\0';
    for (i = 0; i < m->n_inputs; i++) {
        uint32_t id = m->inputs[i].value;
        if (r->needed[id] && r->data[id] == NULL && used < sizeof missing) {
            const char *name = m->values[id].name;
            used += (size_t)snprintf(missing + used, sizeof missing - used, "%s%.80s", used ? ", " : "", name);
        }
    }
    if (used > 0) return fail(error, SBIF_ERR_INPUT, "missing input(s): %s", missing);
    if (*batch < 0) *batch = 0;
    return SBIF_OK;
}

/** Refuse, before anything is allocated, a batch with which a value the run needs (an input it reads or a node output
 * it computes) would exceed SBIF_MAX_VALUE_BYTES: batch x the value's bytes per row (SPEC section 5.8). */
static sbif_status check_batch(const sbif_model *m, const run_state *r, int64_t batch, sbif_error *error) {
    size_t id;
    for (id = 0; id < m->n_values; id++) {
        const value_info *v = &m->values[id];
        sbif_tensor type;
        int64_t row, bytes;
        if (!(r->needed[id] || (v->producer >= 0 && r->run_node[v->producer])) || v->rank == 0 ||
            m->dims[v->dims] >= 0) {
            continue; /* not computed by this run, or without a batch dimension (within the static limit) */
        }
        value_type(m, (uint32_t)id, -1, &type);
        row = nominal_row_bytes(&type);
        if (checked_mul(row, batch, &bytes) != 0 || bytes > SBIF_MAX_VALUE_BYTES) {
            char text[160];
            format_type(&type, text, sizeof text);
            return fail(error, SBIF_ERR_INPUT, "a batch of %lld rows would make '%.80s' (%s) take more than %lld "
                        "bytes, the limit for one value: use batches of at most %lld rows", (long long)batch, v->name,
                        text, (long long)SBIF_MAX_VALUE_BYTES, (long long)(SBIF_MAX_VALUE_BYTES / row));
        }
    }
    return SBIF_OK;
}

/* ---- workspaces ---- */

/** Requests of at most this many outputs have their plan kept for the next run of the same outputs. */
#define KEPT_PLAN_OUTPUTS 16

struct sbif_workspace {
    const sbif_model *model;
    run_state run;           /* the file's tensors stay bound between runs; feeds and computed values are rebound */
    uint32_t planned[KEPT_PLAN_OUTPUTS]; /* the outputs run.needed and run.run_node were planned for */
    size_t n_planned;        /* their count, or SIZE_MAX: no plan kept */
    int64_t sized_batch;     /* the largest batch the kept plan was checked and sized for, or -1 */
    int64_t chunk_rows;      /* the plan runs larger batches this many rows at a time; 0: whole */
    size_t *segment_end;     /* per node: where the streamed segment it begins ends (plan_segments), or 0 */
    int64_t *segment_rows;   /* per node beginning a segment: the rows it computes at a time */
    uint32_t *segment_reads; /* per value: mark_local_values's count of reads within a segment, 0 between calls */
    void **buffers;          /* per value id: the buffer of a computed value, or NULL */
    size_t *capacity;        /* its bytes */
    void **whole;            /* per value id: a requested value of a batch run in chunks, all its rows */
    size_t *whole_capacity;  /* its bytes */
    void **feed_base;        /* per graph input: the fed rows, while chunks of them are bound */
    void **pointers;         /* a node's output buffers (split has several) */
    void *scratch;           /* the kernels' scratch, shared by the nodes of a run (they run one at a time) */
    size_t scratch_capacity;
    int threads;             /* the threads a chunked run is split between (sbif_workspace_set_threads) */
    sbif_pool *pool;         /* their pool, when threads > 1 */
    sbif_workspace **helpers; /* threads - 1 workspaces, one per pool thread: its buffers and scratch */
    sbif_error *errors;      /* per thread: the error of its first failed chunk */
    int64_t *failed_chunk;   /* per thread: that chunk's index, or -1 */
    const char *const *run_outputs; /* the running request's outputs and rows, for the pool's threads */
    size_t run_n_outputs;
    int64_t run_batch;
};

static void free_threads(sbif_workspace *ws) {
    int t;
    sbif_pool_free(ws->pool);
    for (t = 0; ws->helpers != NULL && t < ws->threads - 1; t++) sbif_workspace_free(ws->helpers[t]);
    free(ws->helpers);
    free(ws->errors);
    free(ws->failed_chunk);
    ws->pool = NULL;
    ws->helpers = NULL;
    ws->errors = NULL;
    ws->failed_chunk = NULL;
    ws->threads = 1;
}

void sbif_workspace_free(sbif_workspace *ws) {
    size_t i;
    if (ws == NULL) return;
    free_threads(ws);
    for (i = 0; i < ws->model->n_values; i++) {
        if (ws->buffers != NULL) free(ws->buffers[i]);
        if (ws->whole != NULL) free(ws->whole[i]);
    }
    free(ws->buffers);
    free(ws->capacity);
    free(ws->whole);
    free(ws->whole_capacity);
    free(ws->feed_base);
    free(ws->pointers);
    free(ws->scratch);
    free(ws->run.data);
    free(ws->run.needed);
    free(ws->run.run_node);
    free(ws->run.fused);
    free(ws->run.readers);
    free(ws->run.local_rows);
    free(ws->segment_end);
    free(ws->segment_rows);
    free(ws->segment_reads);
    free(ws);
}

sbif_status sbif_workspace_new(const sbif_model *m, sbif_workspace **workspace, sbif_error *error) {
    sbif_error ignored;
    sbif_workspace *ws;
    size_t i, most_outputs = 1;
    if (error == NULL) error = &ignored;
    *workspace = NULL;
    for (i = 0; i < m->n_nodes; i++) most_outputs = m->nodes[i].n_outputs > most_outputs ? m->nodes[i].n_outputs
                                                                                         : most_outputs;
    if ((ws = calloc(1, sizeof *ws)) == NULL) return out_of_memory(error);
    ws->model = m;
    ws->buffers = calloc(m->n_values + 1, sizeof *ws->buffers);
    ws->capacity = calloc(m->n_values + 1, sizeof *ws->capacity);
    ws->whole = calloc(m->n_values + 1, sizeof *ws->whole);
    ws->whole_capacity = calloc(m->n_values + 1, sizeof *ws->whole_capacity);
    ws->feed_base = calloc(m->n_inputs + 1, sizeof *ws->feed_base);
    ws->pointers = calloc(most_outputs, sizeof *ws->pointers);
    ws->run.data = calloc(m->n_values + 1, sizeof *ws->run.data);
    ws->run.needed = calloc(m->n_values + 1, 1);
    ws->run.run_node = calloc(m->n_nodes + 1, 1);
    ws->run.fused = calloc(m->n_nodes + 1, 1);
    ws->run.readers = calloc(m->n_values + 1, sizeof *ws->run.readers);
    ws->run.local_rows = calloc(m->n_values + 1, sizeof *ws->run.local_rows);
    ws->segment_end = calloc(m->n_nodes + 1, sizeof *ws->segment_end);
    ws->segment_rows = calloc(m->n_nodes + 1, sizeof *ws->segment_rows);
    ws->segment_reads = calloc(m->n_values + 1, sizeof *ws->segment_reads);
    if (ws->buffers == NULL || ws->capacity == NULL || ws->whole == NULL || ws->whole_capacity == NULL ||
        ws->feed_base == NULL || ws->pointers == NULL || ws->run.data == NULL || ws->run.needed == NULL ||
        ws->run.run_node == NULL || ws->run.fused == NULL || ws->run.readers == NULL || ws->run.local_rows == NULL ||
        ws->segment_end == NULL || ws->segment_rows == NULL || ws->segment_reads == NULL) {
        sbif_workspace_free(ws);
        return out_of_memory(error);
    }
    for (i = 0; i < m->n_values; i++) {
        if (m->values[i].tensor >= 0) ws->run.data[i] = m->file.entries[m->values[i].tensor].data;
    }
    ws->n_planned = SIZE_MAX;
    ws->sized_batch = -1;
    ws->threads = 1;
    *workspace = ws;
    return SBIF_OK;
}

int sbif_threads_available(void) { return sbif_pool_available(); }

sbif_status sbif_workspace_set_threads(sbif_workspace *ws, int threads, sbif_error *error) {
    sbif_error ignored;
    int t;
    if (error == NULL) error = &ignored;
    if (threads < 1 || threads > SBIF_MAX_THREADS) {
        return fail(error, SBIF_ERR_INPUT, "threads must be 1 to %d, not %d", SBIF_MAX_THREADS, threads);
    }
    if (threads > 1 && !sbif_pool_available()) {
        return fail(error, SBIF_ERR_UNSUPPORTED, "this build of the SBIF C runtime has no threads (built without "
                                                 "SBIF_THREADS): only 1 thread, not %d",
                    threads);
    }
    if (threads == ws->threads) return SBIF_OK;
    free_threads(ws);
    if (threads == 1) return SBIF_OK;
    ws->helpers = calloc((size_t)threads - 1, sizeof *ws->helpers);
    ws->errors = calloc((size_t)threads, sizeof *ws->errors);
    ws->failed_chunk = calloc((size_t)threads, sizeof *ws->failed_chunk);
    if (ws->helpers == NULL || ws->errors == NULL || ws->failed_chunk == NULL) {
        free_threads(ws);
        return out_of_memory(error);
    }
    ws->threads = threads;
    for (t = 0; t < threads - 1; t++) {
        if (sbif_workspace_new(ws->model, &ws->helpers[t], error) != SBIF_OK) {
            free_threads(ws);
            return error->status;
        }
    }
    if ((ws->pool = sbif_pool_new(threads)) == NULL) {
        free_threads(ws);
        return fail(error, SBIF_ERR_MEMORY, "could not start %d threads for the workspace", threads - 1);
    }
    return SBIF_OK;
}

/** Make `*buffer` hold at least `bytes` (at least one, so no pointer is ever NULL), replacing a smaller one: its
 * contents are not kept (a run writes every buffer before reading it). */
static sbif_status grow(void **buffer, size_t *capacity, size_t bytes, sbif_error *error) {
    if (bytes == 0) bytes = 1;
    if (*capacity >= bytes) return SBIF_OK;
    free(*buffer);
    *capacity = 0;
    if ((*buffer = malloc(bytes)) == NULL) return out_of_memory(error);
    *capacity = bytes;
    return SBIF_OK;
}

/** Size the buffers of every value the run computes, and the scratch, for `batch`: only a larger batch (or a node not
 * run before) allocates. */
static sbif_status size_workspace(sbif_workspace *ws, int64_t batch, sbif_error *error) {
    const sbif_model *m = ws->model;
    size_t i, k, scratch = 0;
    for (i = 0; i < m->n_nodes; i++) {
        const node *n = &m->nodes[i];
        const uint32_t *outputs = &m->ids[n->ids + n->n_inputs];
        operands in;
        sbif_tensor out;
        size_t needs;
        if (!ws->run.run_node[i] || n->op->view || ws->run.fused[i] == DONE_BY_PRODUCT) continue;
        for (k = 0; k < n->n_outputs; k++) {
            int64_t local = ws->run.local_rows[outputs[k]], bytes;
            sbif_tensor type;
            value_type(m, outputs[k], local > 0 && local < batch ? local : batch, &type);
            if (value_bytes(&type, m->values[outputs[k]].name, &bytes, error) != SBIF_OK ||
                grow(&ws->buffers[outputs[k]], &ws->capacity[outputs[k]], (size_t)bytes, error) != SBIF_OK) {
                return add_context(error, "graph node %lu (%s)", (unsigned long)i, n->op->name);
            }
        }
        node_operands(m, n, &ws->run, batch, &in);
        value_type(m, outputs[0], batch, &out);
        needs = scratch_bytes(n->op, &in, &n->attrs, &out);
        scratch = needs > scratch ? needs : scratch;
    }
    return grow(&ws->scratch, &ws->scratch_capacity, scratch, error);
}

/** Whether a value has the batch dimension (always its first, SPEC section 3). */
static int has_batch(const sbif_model *m, uint32_t id) {
    return m->values[id].rank > 0 && m->dims[m->values[id].dims] < 0;
}

/** The bytes of one row of a value with the batch dimension. */
static int64_t row_bytes(const sbif_model *m, uint32_t id) {
    sbif_tensor type;
    value_type(m, id, 1, &type);
    return type_count(&type) * (int64_t)sbif_dtype_size(type.dtype);
}

/** The rows a planned run takes at a time when its batch is larger, so that the values it computes stay in cache
 * (sbif_kernel_batch_rows), or 0 when it must run whole. Every op computes the rows of a batch independently: the
 * batch is only ever the first dimension, every batch dimension is the run's batch size, and the ops' rules refuse
 * to reduce, split, join, stack or move it; a node whose input has the batch but an output has not would be the
 * one exception, so its plan runs whole, as does a request for a value without the batch. */
static int64_t chunk_rows(const sbif_model *m, const run_state *r, const char *const *outputs, size_t n_outputs) {
    int64_t bytes = 0;
    size_t i, k;
    for (i = 0; i < n_outputs; i++) {
        if (!has_batch(m, (uint32_t)map_find(&m->names, outputs[i]))) return 0;
    }
    for (i = 0; i < m->n_nodes; i++) {
        const node *n = &m->nodes[i];
        int batch_in = 0;
        if (!r->run_node[i]) continue;
        for (k = 0; k < n->n_inputs; k++) batch_in |= has_batch(m, m->ids[n->ids + k]);
        for (k = 0; k < n->n_outputs; k++) {
            uint32_t id = m->ids[n->ids + n->n_inputs + k];
            if (has_batch(m, id) != batch_in) return 0;
            if (batch_in && !n->op->view) bytes += row_bytes(m, id);
        }
    }
    return sbif_kernel_batch_rows(bytes);
}

/** Find the plan's fusions (enum fusion): count the planned nodes reading each value, then give every float32 product
 * whose output one relu node alone reads, and that is not requested, the relu. */
static void plan_fusions(const sbif_model *m, const char *const *outputs, size_t n_outputs, run_state *r) {
    size_t i, k;
    memset(r->fused, NOT_FUSED, m->n_nodes);
    memset(r->readers, 0, m->n_values * sizeof *r->readers);
    for (i = 0; i < m->n_nodes; i++) {
        for (k = 0; r->run_node[i] && k < m->nodes[i].n_inputs; k++) r->readers[m->ids[m->nodes[i].ids + k]]++;
    }
    for (i = 0; i < n_outputs; i++) r->readers[map_find(&m->names, outputs[i])]++; /* a requested value is read */
    for (i = 0; i < m->n_nodes; i++) {
        const node *n = &m->nodes[i];
        uint32_t source = m->ids[n->ids];
        int32_t producer = m->values[source].producer;
        if (!r->run_node[i] || n->op->compute != compute_relu || producer < 0 || r->readers[source] != 1 ||
            !is_product(m->nodes[producer].op) || m->values[source].dtype != SBIF_FLOAT32) {
            continue;
        }
        r->fused[producer] = ENDS_WITH_RELU;
        r->fused[i] = DONE_BY_PRODUCT;
    }
}

/** Mark the values that the segment of nodes [begin, end) computes and alone reads (not requested, not reshaped by a
 * view): their buffers hold only the `rows` rows being computed, so each sub-block reuses the same cache lines. */
static void mark_local_values(sbif_workspace *ws, size_t begin, size_t end, int64_t rows) {
    const sbif_model *m = ws->model;
    run_state *r = &ws->run;
    size_t i, k;
    for (i = begin; i < end; i++) {
        const node *n = &m->nodes[i];
        for (k = 0; r->run_node[i] && k < n->n_inputs; k++) {
            uint32_t *reads = &ws->segment_reads[m->ids[n->ids + k]];
            *reads = n->op->view || *reads == UINT32_MAX ? UINT32_MAX : *reads + 1;
        }
    }
    for (i = begin; i < end; i++) {
        const node *n = &m->nodes[i];
        if (!r->run_node[i] || n->op->view || r->fused[i] == DONE_BY_PRODUCT) continue;
        for (k = 0; k < n->n_outputs; k++) {
            uint32_t id = m->ids[n->ids + n->n_inputs + k];
            if (has_batch(m, id) && ws->segment_reads[id] == r->readers[id]) r->local_rows[id] = rows;
        }
    }
    for (i = begin; i < end; i++) {
        for (k = 0; k < m->nodes[i].n_inputs; k++) ws->segment_reads[m->ids[m->nodes[i].ids + k]] = 0;
    }
}

/** Find the plan's streamed segments: in a plan whose rows are independent (chunk_rows > 0), each maximal run of
 * planned nodes between two products computes sbif_kernel_cached_rows of its values' rows at a time, node after node,
 * so that what one node writes for those rows is still in cache when the next reads it. A chunk of frames through a
 * CNN policy's preprocessing (cast, subtract, divide) is larger than the L2 and would otherwise pass through memory
 * three times over; products take whole chunks, which their tiles need. */
static void plan_segments(sbif_workspace *ws) {
    const sbif_model *m = ws->model;
    const run_state *r = &ws->run;
    size_t i = 0, end, k;
    memset(ws->segment_end, 0, m->n_nodes * sizeof *ws->segment_end);
    memset(r->local_rows, 0, m->n_values * sizeof *r->local_rows);
    while (ws->chunk_rows > 0 && i < m->n_nodes) {
        int64_t bytes = 0;
        if (!r->run_node[i] || is_product(m->nodes[i].op)) {
            i++;
            continue;
        }
        for (end = i; end < m->n_nodes && !(r->run_node[end] && is_product(m->nodes[end].op)); end++) {
            const node *n = &m->nodes[end];
            if (!r->run_node[end] || n->op->view || r->fused[end] == DONE_BY_PRODUCT) continue;
            for (k = 0; k < n->n_outputs; k++) {
                uint32_t id = m->ids[n->ids + n->n_inputs + k];
                if (has_batch(m, id)) bytes += row_bytes(m, id);
            }
        }
        ws->segment_end[i] = end;
        ws->segment_rows[i] = sbif_kernel_cached_rows(bytes);
        mark_local_values(ws, i, end, ws->segment_rows[i]);
        i = end;
    }
}

/** Plan the run of `outputs`, or keep the plan of the previous run when it asked for the same outputs. */
static sbif_status plan_kept(sbif_workspace *ws, const char *const *outputs, size_t n_outputs, sbif_error *error) {
    const sbif_model *m = ws->model;
    size_t i;
    int same = n_outputs == ws->n_planned;
    for (i = 0; same && i < n_outputs; i++) {
        same = outputs[i] != NULL && map_find(&m->names, outputs[i]) == (long)ws->planned[i];
    }
    if (same) return SBIF_OK;
    ws->n_planned = SIZE_MAX;
    ws->sized_batch = -1;
    memset(ws->run.needed, 0, m->n_values);
    memset(ws->run.run_node, 0, m->n_nodes);
    if (plan_run(m, outputs, n_outputs, &ws->run, error) != SBIF_OK) return error->status;
    plan_fusions(m, outputs, n_outputs, &ws->run);
    ws->chunk_rows = chunk_rows(m, &ws->run, outputs, n_outputs);
    plan_segments(ws);
    if (n_outputs <= KEPT_PLAN_OUTPUTS) {
        for (i = 0; i < n_outputs; i++) ws->planned[i] = (uint32_t)map_find(&m->names, outputs[i]);
        ws->n_planned = n_outputs;
    }
    return SBIF_OK;
}

/** Run node `index` on rows first_row .. first_row + rows of the bound values (the values it computes are bound to
 * their buffers, row 0 at the start). */
static sbif_status run_node(sbif_workspace *ws, size_t index, int64_t first_row, int64_t rows, sbif_error *error) {
    const sbif_model *m = ws->model;
    const node *n = &m->nodes[index];
    const uint32_t *outputs = &m->ids[n->ids + n->n_inputs];
    operands in;
    sbif_tensor out;
    size_t k;
    node_operands(m, n, &ws->run, rows, &in);
    in.first_row = first_row;
    if (n->op->view || ws->run.fused[index] == DONE_BY_PRODUCT) { /* (the product stored it through relu) */
        ws->run.data[outputs[0]] = ws->run.data[in.ids[0]];
        return SBIF_OK;
    }
    for (k = 0; k < n->n_outputs; k++) {
        ws->run.data[outputs[k]] = ws->buffers[outputs[k]];
        ws->pointers[k] = (char *)ws->buffers[outputs[k]] +
                          (first_row > 0 && has_batch(m, outputs[k]) && ws->run.local_rows[outputs[k]] == 0
                               ? first_row * row_bytes(m, outputs[k]) : 0);
    }
    in.scratch = ws->scratch;
    value_type(m, outputs[0], rows, &out);
    out.data = ws->pointers[0];
    if (n->op->compute(&in, &n->attrs, &out, ws->pointers, n->n_outputs, error) != SBIF_OK) {
        return add_context(error, "graph node %lu (%s)", (unsigned long)index, n->op->name);
    }
    return SBIF_OK;
}

/** Run the planned nodes on the bound values, `batch` rows: each streamed segment (plan_segments) its rows at a
 * time, the other nodes all rows at once. */
static sbif_status run_nodes(sbif_workspace *ws, int64_t batch, sbif_error *error) {
    const sbif_model *m = ws->model;
    size_t i = 0, k;
    int64_t first;
    while (i < m->n_nodes) {
        size_t end = ws->segment_end[i];
        int64_t rows = ws->segment_rows[i];
        if (end > i && rows < batch) {
            for (first = 0; first < batch; first += rows) {
                for (k = i; k < end; k++) {
                    if (ws->run.run_node[k] &&
                        run_node(ws, k, first, batch - first < rows ? batch - first : rows, error) != SBIF_OK) {
                        return error->status;
                    }
                }
            }
            i = end;
            continue;
        }
        if (ws->run.run_node[i] && run_node(ws, i, 0, batch, error) != SBIF_OK) return error->status;
        i++;
    }
    return SBIF_OK;
}

/** Run the planned nodes on rows [start, start + rows) of `owner`'s feeds in `runner` (the owner itself, or one of its
 * helpers, which has the same plan), and copy the rows of each requested value into the owner's whole buffers. */
static sbif_status run_chunk(sbif_workspace *runner, const sbif_workspace *owner, int64_t start, int64_t rows,
                             sbif_error *error) {
    const sbif_model *m = owner->model;
    size_t i;
    for (i = 0; i < m->n_inputs; i++) {
        uint32_t id = m->inputs[i].value;
        void *fed = owner->feed_base[i];
        runner->run.data[id] = fed != NULL && has_batch(m, id) ? (char *)fed + start * row_bytes(m, id) : fed;
    }
    if (run_nodes(runner, rows, error) != SBIF_OK) return error->status;
    for (i = 0; i < owner->run_n_outputs; i++) {
        uint32_t id = (uint32_t)map_find(&m->names, owner->run_outputs[i]);
        int64_t size = row_bytes(m, id);
        memcpy((char *)owner->whole[id] + start * size, runner->run.data[id], (size_t)(rows * size));
    }
    return SBIF_OK;
}

/** One thread's share of a split run: chunks taken from the pool's counter until none is left. A failed chunk is
 * recorded and the thread goes on (the others cannot be stopped mid-chunk); the run reports the failure of the
 * lowest chunk, as the same run in one thread would. */
static void run_chunks_in_thread(void *context, int thread) {
    sbif_workspace *ws = (sbif_workspace *)context;
    sbif_workspace *runner = thread == 0 ? ws : ws->helpers[thread - 1];
    int64_t chunk;
    ws->failed_chunk[thread] = -1;
    while ((chunk = sbif_pool_next(ws->pool)) * ws->chunk_rows < ws->run_batch) {
        int64_t start = chunk * ws->chunk_rows;
        int64_t rows = ws->run_batch - start < ws->chunk_rows ? ws->run_batch - start : ws->chunk_rows;
        if (ws->failed_chunk[thread] < 0 && run_chunk(runner, ws, start, rows, &ws->errors[thread]) != SBIF_OK) {
            ws->failed_chunk[thread] = chunk;
        }
    }
}

/** Run the planned nodes chunk_rows rows at a time, the fed rows of each chunk bound in turn, and gather the rows of
 * each requested value into its whole buffer: in this thread, or split between the workspace's threads (every row
 * is computed by the same kernels whichever thread takes its chunk, so the results are the same bit for bit). */
static sbif_status run_chunks(sbif_workspace *ws, int64_t batch, sbif_error *error) {
    const sbif_model *m = ws->model;
    int64_t start, first = -1;
    size_t i;
    int t;
    for (i = 0; i < m->n_inputs; i++) ws->feed_base[i] = ws->run.data[m->inputs[i].value];
    if (ws->pool == NULL || batch <= ws->chunk_rows) {
        for (start = 0; start < batch; start += ws->chunk_rows) {
            int64_t rows = batch - start < ws->chunk_rows ? batch - start : ws->chunk_rows;
            if (run_chunk(ws, ws, start, rows, error) != SBIF_OK) return error->status;
        }
        return SBIF_OK;
    }
    ws->run_batch = batch;
    sbif_pool_run(ws->pool, run_chunks_in_thread, ws);
    for (t = 0; t < ws->threads; t++) {
        if (ws->failed_chunk[t] >= 0 && (first < 0 || ws->failed_chunk[t] < ws->failed_chunk[first])) first = t;
    }
    if (first < 0) return SBIF_OK;
    *error = ws->errors[first];
    return error->status;
}

/** Give each helper the owner's plan, sized for one chunk (only a new plan or a first run allocates). */
static sbif_status prepare_helpers(sbif_workspace *ws, const char *const *outputs, size_t n_outputs,
                                   sbif_error *error) {
    int t;
    for (t = 0; t < ws->threads - 1; t++) {
        sbif_workspace *helper = ws->helpers[t];
        if (plan_kept(helper, outputs, n_outputs, error) != SBIF_OK) return error->status;
        if (helper->sized_batch < ws->chunk_rows) {
            if (size_workspace(helper, ws->chunk_rows, error) != SBIF_OK) return error->status;
            helper->sized_batch = ws->chunk_rows;
        }
    }
    return SBIF_OK;
}

sbif_status sbif_workspace_run(sbif_workspace *ws, const sbif_named_tensor *feeds, size_t n_feeds,
                               const char *const *outputs, size_t n_outputs, sbif_tensor *results, sbif_error *error) {
    const sbif_model *m = ws->model;
    sbif_error ignored;
    sbif_status status;
    int64_t batch = -1;
    size_t i;
    int chunked;
    if (error == NULL) error = &ignored;
    status = plan_kept(ws, outputs, n_outputs, error);
    for (i = 0; i < m->n_inputs; i++) ws->run.data[m->inputs[i].value] = NULL;
    if (status == SBIF_OK) status = bind_inputs(m, feeds, n_feeds, &ws->run, &batch, error);
    if (status == SBIF_OK && batch > ws->sized_batch) {
        /* the limit and the buffers grow with the batch: a batch the plan was sized for needs neither again */
        status = check_batch(m, &ws->run, batch, error);
        if (status == SBIF_OK) {
            status = size_workspace(ws, ws->chunk_rows > 0 && batch > ws->chunk_rows ? ws->chunk_rows : batch, error);
        }
        for (i = 0; status == SBIF_OK && ws->chunk_rows > 0 && batch > ws->chunk_rows && i < n_outputs; i++) {
            uint32_t id = (uint32_t)map_find(&m->names, outputs[i]);
            status = grow(&ws->whole[id], &ws->whole_capacity[id], (size_t)(batch * row_bytes(m, id)), error);
        }
        if (status == SBIF_OK) ws->sized_batch = batch;
    }
    chunked = ws->chunk_rows > 0 && batch > ws->chunk_rows;
    if (status == SBIF_OK && chunked && ws->threads > 1) status = prepare_helpers(ws, outputs, n_outputs, error);
    ws->run_outputs = outputs;
    ws->run_n_outputs = n_outputs;
    if (status == SBIF_OK) status = chunked ? run_chunks(ws, batch, error) : run_nodes(ws, batch, error);
    for (i = 0; status == SBIF_OK && i < n_outputs; i++) {
        uint32_t id = (uint32_t)map_find(&m->names, outputs[i]);
        value_type(m, id, batch, &results[i]);
        results[i].data = chunked ? ws->whole[id] : ws->run.data[id];
    }
    return status;
}

sbif_status sbif_model_run(const sbif_model *m, const sbif_named_tensor *feeds, size_t n_feeds,
                           const char *const *outputs, size_t n_outputs, sbif_tensor *results, sbif_error *error) {
    sbif_error ignored;
    sbif_workspace *ws;
    sbif_status status;
    size_t i, copied;
    if (error == NULL) error = &ignored;
    if ((status = sbif_workspace_new(m, &ws, error)) != SBIF_OK) return status;
    status = sbif_workspace_run(ws, feeds, n_feeds, outputs, n_outputs, results, error);
    for (copied = 0; status == SBIF_OK && copied < n_outputs; copied++) {
        const void *view = results[copied].data;
        status = allocate_value(&results[copied], outputs[copied], &results[copied].data, error);
        if (status == SBIF_OK) {
            memcpy(results[copied].data, view,
                   (size_t)type_count(&results[copied]) * sbif_dtype_size(results[copied].dtype));
        }
    }
    if (status != SBIF_OK) {
        for (i = 0; i < copied && i < n_outputs; i++) sbif_tensor_release(&results[i]);
    }
    sbif_workspace_free(ws);
    return status;
}

/* ==== single ops ================================================================================================== */

sbif_status sbif_op_run(const char *name, const sbif_json *attrs, const sbif_tensor *inputs, size_t n_inputs,
                        size_t n_outputs, sbif_tensor *results, sbif_error *error) {
    static unsigned char empty;
    sbif_error ignored;
    const op_def *op;
    op_attrs a;
    operands in;
    sbif_tensor whole, *given = NULL;
    void **pointers = NULL, *scratch = NULL;
    sbif_status status = SBIF_OK;
    size_t i, allocated = 0;
    char label[64];
    if (error == NULL) error = &ignored;
    if ((op = find_op(name)) == NULL) return unknown_op("", name, error);
    if (resolve_attrs(op->name, op->attrs, op->n_attrs, attrs, &a, error) != SBIF_OK) {
        return error->status == SBIF_ERR_DOCUMENT ? (error->status = SBIF_ERR_INPUT) : error->status;
    }
    if (op->arity < 0 ? n_inputs < 1 : n_inputs != (size_t)op->arity) {
        status = fail(error, SBIF_ERR_INPUT, "op %s takes %s%d inputs, got %lu", op->name,
                      op->arity < 0 ? "at least " : "", op->arity < 0 ? 1 : op->arity, (unsigned long)n_inputs);
    } else if (n_outputs < 1 || (op->outputs == 1 && n_outputs != 1)) {
        status = fail(error, SBIF_ERR_INPUT, "op %s has %s1 output%s, %lu requested", op->name,
                      op->outputs == 1 ? "" : "at least ", op->outputs == 1 ? "" : "s", (unsigned long)n_outputs);
    } else if ((given = malloc((n_inputs + 1) * sizeof *given)) == NULL ||
               (pointers = calloc(n_outputs, sizeof *pointers)) == NULL) {
        status = out_of_memory(error);
    }
    for (i = 0; status == SBIF_OK && i < n_inputs; i++) {
        snprintf(label, sizeof label, "input %lu", (unsigned long)i);
        status = check_given(&inputs[i], label, error);
        given[i] = inputs[i];
        if (given[i].data == NULL) given[i].data = &empty; /* an empty tensor: never read, but never a null pointer */
    }
    if (status == SBIF_OK) {
        memset(&in, 0, sizeof in);
        in.count = n_inputs;
        in.tensors = given;
        in.batch = -1;
        if ((status = op->infer(&in, &a, n_outputs, &whole, error)) == SBIF_ERR_DOCUMENT) {
            status = error->status = SBIF_ERR_INPUT;
        }
    }
    for (allocated = 0; status == SBIF_OK && allocated < n_outputs; allocated++) {
        output_type(op, &a, &whole, allocated, &results[allocated]);
        status = allocate_value(&results[allocated], op->name, &pointers[allocated], error);
        results[allocated].data = pointers[allocated];
    }
    if (status == SBIF_OK) {
        size_t bytes = scratch_bytes(op, &in, &a, &results[0]);
        if ((scratch = malloc(bytes > 0 ? bytes : 1)) == NULL) status = out_of_memory(error);
        in.scratch = scratch;
    }
    if (status == SBIF_OK) status = op->compute(&in, &a, &results[0], pointers, n_outputs, error);
    if (status != SBIF_OK && pointers != NULL) {
        for (i = 0; i < n_outputs; i++) {
            free(pointers[i]);
            if (i < allocated) results[i].data = NULL;
        }
    }
    free(scratch);
    free(pointers);
    free(given);
    attrs_free(&a);
    return status;
}
