/*
 * sbif.h: a dependency-free C99 runtime for SBIF files (spec/SPEC.md), the Stable-Baselines interchange format.
 *
 * An SBIF file is a safetensors container whose metadata holds a JSON architecture document: graph inputs, an
 * ordered list of ops, and named outputs. This library reads and validates such a file (every container check of
 * the spec, the document's structure, and a static dtype/shape check of the whole graph), then evaluates the
 * nodes a request needs. It depends on nothing but libc and libm, never aborts or exits, and reports every
 * failure as a status code plus a message that names the problem.
 *
 *     sbif_model *model;
 *     sbif_error error;
 *     if (sbif_model_load("policy.sbif", &model, &error) != SBIF_OK) { puts(error.message); return 1; }
 *     sbif_named_tensor feed = {"obs", {SBIF_FLOAT32, 2, {1, 4}, observation}};
 *     const char *wanted[] = {"action"};
 *     sbif_tensor action;
 *     if (sbif_model_run(model, &feed, 1, wanted, 1, &action, &error) == SBIF_OK) {
 *         ...;
 *         sbif_tensor_release(&action);
 *     }
 *     sbif_model_free(model);
 */
#ifndef SBIF_H
#define SBIF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SBIF_VERSION "0.1.0"
/** The largest rank of any tensor or graph value (NumPy's historical limit). */
#define SBIF_MAX_RANK 32

/** What went wrong. The names mirror the reference implementation's exceptions (sbif/errors.py). */
typedef enum sbif_status {
    SBIF_OK = 0,
    SBIF_ERR_FILE_FORMAT, /* not a readable safetensors container: truncated, bad header, overlapping data... */
    SBIF_ERR_DOCUMENT,    /* the container is fine but its SBIF document is invalid */
    SBIF_ERR_UNSUPPORTED, /* valid input this runtime cannot handle: a newer format version, an unknown op */
    SBIF_ERR_INPUT,       /* a caller passed data of the wrong name, dtype or shape, or a malformed request */
    SBIF_ERR_MEMORY       /* an allocation failed or would exceed the runtime's limit for one value */
} sbif_status;

/** A status and a one-line message naming the problem (truncated to fit, never containing a newline). */
typedef struct sbif_error {
    sbif_status status;
    char message[1024];
} sbif_error;

/** "FileFormatError", "DocumentError", ... ("ok" for SBIF_OK). */
const char *sbif_status_name(sbif_status status);

/** The value dtypes of SBIF; data is little-endian in files and native in memory; bool is one byte, 0 or 1. */
typedef enum sbif_dtype {
    SBIF_FLOAT32,
    SBIF_FLOAT64,
    SBIF_INT8,
    SBIF_INT16,
    SBIF_INT32,
    SBIF_INT64,
    SBIF_UINT8,
    SBIF_UINT16,
    SBIF_BOOL
} sbif_dtype;

#define SBIF_DTYPE_COUNT 9

/** The NumPy name of a dtype ("float32", ...). */
const char *sbif_dtype_name(sbif_dtype dtype);
/** Bytes per element. */
size_t sbif_dtype_size(sbif_dtype dtype);
/** Parse a NumPy dtype name; returns 0 and sets *dtype, or -1 for an unknown name. */
int sbif_dtype_parse(const char *name, sbif_dtype *dtype);
/** Whether an integer dtype holds `value` (1) or not (0). int64 holds every value; the float and bool dtypes are
 * not integer dtypes and answer 1 (check them before asking). */
int sbif_dtype_holds_integer(sbif_dtype dtype, int64_t value);

/** A dense row-major array. Shapes of declared values use -1 for the batch dimension. */
typedef struct sbif_tensor {
    sbif_dtype dtype;
    int rank;
    int64_t shape[SBIF_MAX_RANK];
    void *data;
} sbif_tensor;

/** The number of elements of a tensor's shape (1 for a scalar). */
int64_t sbif_tensor_count(const sbif_tensor *tensor);
/** Free the data of a tensor the library returned, and set data to NULL. */
void sbif_tensor_release(sbif_tensor *tensor);

typedef struct sbif_named_tensor {
    const char *name;
    sbif_tensor tensor;
} sbif_named_tensor;

/* ---- JSON --------------------------------------------------------------------------------------------------- */
/* The strict RFC 8259 parser the library reads headers and documents with, exposed for tools such as the protocol
 * driver: UTF-8 only, no duplicate object keys, no NaN/Infinity literals, nesting at most 512 deep. */

typedef enum sbif_json_kind {
    SBIF_JSON_NULL,
    SBIF_JSON_FALSE,
    SBIF_JSON_TRUE,
    SBIF_JSON_NUMBER,
    SBIF_JSON_STRING,
    SBIF_JSON_ARRAY,
    SBIF_JSON_OBJECT
} sbif_json_kind;

/** A value inside a parsed text; valid until the root is freed. */
typedef struct sbif_json sbif_json;

/** Parse `length` bytes of text. On failure (SBIF_ERR_INPUT, or SBIF_ERR_MEMORY) *root is NULL. */
sbif_status sbif_json_parse(const char *text, size_t length, sbif_json **root, sbif_error *error);
/** Free a parsed text (only the root returned by sbif_json_parse). */
void sbif_json_free(sbif_json *root);

sbif_json_kind sbif_json_type(const sbif_json *value);
/** Elements of an array, members of an object, bytes of a string (0 otherwise). */
size_t sbif_json_size(const sbif_json *value);
/** The first element of an array or the first key of an object (NULL if empty); iterate with sbif_json_next
 * exactly sbif_json_size() times. */
const sbif_json *sbif_json_first(const sbif_json *container);
/** The element (or key) after `item` in its container. */
const sbif_json *sbif_json_next(const sbif_json *item);
/** The value of an object member, given its key. */
const sbif_json *sbif_json_value(const sbif_json *key);
/** The value of `key` in an object, or NULL (also when `object` is not an object). */
const sbif_json *sbif_json_get(const sbif_json *object, const char *key);
/** A string's decoded UTF-8 bytes, NUL-terminated (it may also contain NUL; see sbif_json_size); NULL for others. */
const char *sbif_json_string(const sbif_json *value);
/** Whether a number was written as an integer literal (no fraction, no exponent). */
int sbif_json_is_integer(const sbif_json *value);
/** An integer literal's exact value: 0 on success, -1 if the value is not an integer literal or does not fit. */
int sbif_json_int64(const sbif_json *value, int64_t *out);
/** A number's value read as an IEEE-754 double (correctly rounded; +-inf beyond the range): 0, or -1. */
int sbif_json_double(const sbif_json *value, double *out);
/** The literal text of a number (not NUL-terminated; its length is in *length). */
const char *sbif_json_number_text(const sbif_json *value, size_t *length);

/* ---- models ------------------------------------------------------------------------------------------------- */

typedef struct sbif_model sbif_model;

/** Read and fully validate a file. On failure *model is NULL and `error` says why. */
sbif_status sbif_model_load(const char *path, sbif_model **model, sbif_error *error);
void sbif_model_free(sbif_model *model);

/** Evaluate named values (declared outputs, or any other value of the graph) from graph inputs.
 *
 * Only the nodes the requested values depend on run, and only the graph inputs they read must be fed, each with
 * exactly its declared dtype and shape (one batch size for all). Feeds are read, never kept. On success
 * results[i] holds a new copy of outputs[i] (release each with sbif_tensor_release); on failure no result is
 * allocated. */
sbif_status sbif_model_run(const sbif_model *model, const sbif_named_tensor *feeds, size_t n_feeds,
                           const char *const *outputs, size_t n_outputs, sbif_tensor *results, sbif_error *error);

/** A declared graph input or output: its name, dtype and shape (-1 = batch). For inputs, `kind` is
 * "observation", "noise", "state", "mask" or (format version 2) "action_mask"; for outputs it is "output". */
typedef struct sbif_value_info {
    const char *name;
    const char *kind;
    sbif_dtype dtype;
    int rank;
    int64_t shape[SBIF_MAX_RANK];
} sbif_value_info;

size_t sbif_model_input_count(const sbif_model *model);
/** 0 and fills *info, or -1 if index is out of range. */
int sbif_model_input(const sbif_model *model, size_t index, sbif_value_info *info);
size_t sbif_model_output_count(const sbif_model *model);
int sbif_model_output(const sbif_model *model, size_t index, sbif_value_info *info);
size_t sbif_model_node_count(const sbif_model *model);
size_t sbif_model_tensor_count(const sbif_model *model);
/** The validated architecture document (for `predict`, spaces and provenance). */
const sbif_json *sbif_model_document(const sbif_model *model);

/* ---- workspaces: runs that allocate nothing ---------------------------------------------------------------- */

/** The memory of one caller's runs of a model: a buffer for every value a run computes and the kernels' scratch,
 * sized for the largest batch run through it so far. Once a workspace has run a batch size, later runs of that
 * size or smaller allocate nothing. A model may be shared by threads; a workspace may not (one per thread). */
typedef struct sbif_workspace sbif_workspace;

/** A workspace for `model`, which must outlive it. On failure *workspace is NULL. */
sbif_status sbif_workspace_new(const sbif_model *model, sbif_workspace **workspace, sbif_error *error);
void sbif_workspace_free(sbif_workspace *workspace);

/** As sbif_model_run, in the workspace's memory: on success results[i] are views into the workspace (do not
 * release them), valid until its next run or its release. */
sbif_status sbif_workspace_run(sbif_workspace *workspace, const sbif_named_tensor *feeds, size_t n_feeds,
                               const char *const *outputs, size_t n_outputs, sbif_tensor *results, sbif_error *error);

/** The most threads one workspace splits a run between. */
#define SBIF_MAX_THREADS 256

/** Split this workspace's large batch runs between `threads` threads: the caller's and threads - 1 the workspace
 * starts now (they sleep between runs and stop when it is freed or set back to 1). A run is split when it would run
 * in several cache-sized chunks of rows (a batch of a few hundred rows or more: the same condition under which a
 * single thread chunks it), its chunks taken by whichever thread is free; every row is computed by the same kernels
 * whichever thread takes it, so results are identical bit for bit to a run in one thread. Each pool thread has its
 * own buffers, sized by the first split run: later runs allocate nothing, as before. 1 (the default) runs in the
 * caller's thread alone. threads outside 1..SBIF_MAX_THREADS is SBIF_ERR_INPUT; threads > 1 in a build without
 * threads (sbif_threads_available() is 0) is SBIF_ERR_UNSUPPORTED. */
sbif_status sbif_workspace_set_threads(sbif_workspace *workspace, int threads, sbif_error *error);

/** 1 when this build of the library can split runs between threads (built with SBIF_THREADS: POSIX threads). */
int sbif_threads_available(void);

/* ---- predict: a policy's deterministic action, the SPEC section 5 contract ----------------------------------- */
/* What `sbif.load(path).predict(obs, deterministic=True)` returns for one observation, in one call that allocates
 * nothing. The observation is given as floats laid out as the observation space (row-major; channel-first images
 * under the SB3 contract; VecNormalize frame-stack files take the stacked raw frames, oldest first; goal-conditioned
 * (HER) files the flat, concatenated space), converted to the model's input dtype as NumPy's astype does: float64
 * for VecNormalize files, truncation toward zero for integer inputs. A dict observation space takes its keys' values
 * concatenated in the space's key order (sbif_policy_observation_input says where each key sits). The action comes
 * back as floats, flat: integer actions (Discrete, MultiDiscrete, MultiBinary indices) are exact, since a policy
 * whose indices could exceed 2^24 is refused when made. */

/** One environment's policy: a model, a workspace, and for a recurrent policy the state carried between calls.
 * Several policies (one per environment, or per thread) may share a model. */
typedef struct sbif_policy sbif_policy;

/** A policy over `model`, which must outlive it; the first call is an episode start (recurrent state zeros). Its
 * buffers and workspace are made here, sized by one run, so sbif_predict allocates nothing. A file whose actions are
 * not numbers a float holds exactly is SBIF_ERR_UNSUPPORTED. */
sbif_status sbif_policy_new(const sbif_model *model, sbif_policy **policy, sbif_error *error);
void sbif_policy_free(sbif_policy *policy);
/** Elements of one observation (as the observation space lays them out) and of one action. */
size_t sbif_policy_observation_size(const sbif_policy *policy);
size_t sbif_policy_action_size(const sbif_policy *policy);
/** The observation inputs the observation feeds, in order: one (`obs`), or one per key of a dict space (`obs/KEY`).
 * 0 and the `index`-th input's name, its first element in the observation and its element count; -1 past the end. */
size_t sbif_policy_observation_input_count(const sbif_policy *policy);
int sbif_policy_observation_input(const sbif_policy *policy, size_t index, const char **name, size_t *offset,
                                  size_t *count);
/** Elements of the action mask sbif_predict_masked takes (a MaskablePPO file's logits width), 0 without one. */
size_t sbif_policy_action_mask_size(const sbif_policy *policy);
/** Start a new episode: the next call resets the recurrent state (SPEC 5.6's mask 1.0, SB3's episode_start; no
 * effect on feed-forward policies). Call it after an episode ends, before the next episode's first observation. */
void sbif_policy_reset(sbif_policy *policy);
/** The deterministic action for one observation of `n_observation` elements, written as `n_action` floats. Every
 * action is allowed (MaskablePPO's action_masks=None). A wrong size, an element its integer input cannot hold (NaN,
 * out of range) or, under the SB3 contract, a Discrete/MultiDiscrete index outside [0, n) is SBIF_ERR_INPUT; a failed
 * call leaves the recurrent state as it was. */
sbif_status sbif_predict(sbif_policy *policy, const float *observation, size_t n_observation, float *action,
                         size_t n_action, sbif_error *error);
/** As sbif_predict, with MaskablePPO's action mask: `n_mask` bytes, nonzero allowing an action (NULL allows all).
 * A mask for a policy without one, or of another size, is SBIF_ERR_INPUT. */
sbif_status sbif_predict_masked(sbif_policy *policy, const float *observation, size_t n_observation,
                                const unsigned char *mask, size_t n_mask, float *action, size_t n_action,
                                sbif_error *error);

/* ---- single ops ---------------------------------------------------------------------------------------------- */

/** The names of every op this runtime implements (spec/ops.md and spec/ops-sampling.md), sorted. */
const char *const *sbif_op_names(size_t *count);

/** Run one op on concrete inputs. `attrs` is a JSON object (NULL means {}); `n_outputs` is the number of outputs
 * wanted (the node's output count, e.g. one per piece for split). The op's dtype/shape rule is checked first.
 * On success results[0..n_outputs) hold new tensors (release each); an unknown op is SBIF_ERR_UNSUPPORTED. */
sbif_status sbif_op_run(const char *op, const sbif_json *attrs, const sbif_tensor *inputs, size_t n_inputs,
                        size_t n_outputs, sbif_tensor *results, sbif_error *error);

#ifdef __cplusplus
}
#endif

#endif /* SBIF_H */
