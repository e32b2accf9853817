/*
 * sbif_predict.c: a policy's deterministic action from one observation (sbif.h's predict section), the contract of
 * spec/SPEC.md section 5 as the reference's `sbif.load(path).predict(obs, deterministic=True)` keeps it.
 *
 * Built only on sbif.h's public API: the document (sbif_model_document and the sbif_json_* reader), the declared
 * inputs and outputs, and a workspace, so that it holds no knowledge of the executor's internals. Everything a call
 * needs (the converted observation, the recurrent state, the action mask) is allocated when the policy is made and
 * the workspace is sized then by one run, so a call allocates nothing.
 */
#include "sbif.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/** Integers up to 2^24 are exact in float32, the action type sbif_predict returns. */
#define EXACT_FLOAT_INTEGERS 16777216.0

/** One observation input (`obs`, or `obs/KEY` per key of a dict space) and where its elements sit in the caller's
 * observation. */
typedef struct observation_input {
    const char *name;
    sbif_dtype dtype;
    int rank;
    int64_t shape[SBIF_MAX_RANK]; /* [1, ...]: the declared shape with a batch of one */
    size_t offset;                /* its first element in the caller's observation */
    size_t count;                 /* its elements per observation */
    int64_t *bounds;              /* SB3 contract, Discrete/MultiDiscrete: each element's n of [0, n); else NULL */
    void *data;                   /* the converted observation, `count` elements of `dtype` */
} observation_input;

struct sbif_policy {
    const sbif_model *model;
    sbif_workspace *workspace;
    observation_input *observations;
    size_t n_observations;
    size_t observation_size;
    const char *action_name;
    sbif_dtype action_dtype;
    size_t action_size;
    /* recurrent policies (SPEC 5.6): the state row carried between calls and the episode-start flag */
    const char *state_input, *mask_input, *state_output;
    size_t state_size;
    float *state;
    float episode_start;
    /* MaskablePPO (SPEC 5.9): the action-mask input, one byte per logit */
    const char *action_mask_input;
    size_t action_mask_size;
    unsigned char *action_mask;
    /* one request, built once: every input above as a batch of one, and the outputs it asks for */
    sbif_named_tensor *feeds;
    size_t n_feeds;
    const char *outputs[2];
    size_t n_outputs;
};

static sbif_status predict_fail(sbif_error *error, sbif_status status, const char *format, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/** Set `error` to `status` and a one-line message (a name from the file may hold a newline; the message never does). */
static sbif_status predict_fail(sbif_error *error, sbif_status status, const char *format, ...) {
    va_list args;
    char *newline;
    va_start(args, format);
    vsnprintf(error->message, sizeof error->message, format, args);
    va_end(args);
    while ((newline = strchr(error->message, '\n')) != NULL) *newline = ' ';
    error->status = status;
    return status;
}

/** The declared input named `name` (0), or -1. */
static int find_input(const sbif_model *model, const char *name, sbif_value_info *info) {
    size_t i, n = sbif_model_input_count(model);
    for (i = 0; i < n; i++) {
        if (sbif_model_input(model, i, info) == 0 && strcmp(info->name, name) == 0) return 0;
    }
    return -1;
}

/** The declared output named `name` (0), or -1. */
static int find_output(const sbif_model *model, const char *name, sbif_value_info *info) {
    size_t i, n = sbif_model_output_count(model);
    for (i = 0; i < n; i++) {
        if (sbif_model_output(model, i, info) == 0 && strcmp(info->name, name) == 0) return 0;
    }
    return -1;
}

/** Elements of one row of a declared value (its shape after the batch dimension); the static check bounds them. */
static size_t row_elements(const sbif_value_info *info) {
    size_t count = 1;
    int k;
    for (k = 1; k < info->rank; k++) count *= (size_t)info->shape[k];
    return count;
}

/** A string member of a JSON object, or NULL (also when the member is absent or null). */
static const char *json_text(const sbif_json *object, const char *key) {
    const sbif_json *member = sbif_json_get(object, key);
    return member != NULL ? sbif_json_string(member) : NULL;
}

/** The space of the observation input `name`: the observation space itself, or under a dict space the space of the
 * key `name` holds after its "obs/" prefix (the validator has checked that every such key exists). */
static const sbif_json *space_of_input(const sbif_json *observation_space, const char *name) {
    const sbif_json *spaces, *item;
    size_t i, n;
    if (strcmp(json_text(observation_space, "kind"), "dict") != 0) return observation_space;
    spaces = sbif_json_get(observation_space, "spaces");
    n = sbif_json_size(spaces);
    for (i = 0, item = sbif_json_first(spaces); i < n; i++, item = sbif_json_next(item)) {
        const char *key = json_text(item, "key");
        if (strncmp(name, "obs/", 4) == 0 && strcmp(name + 4, key) == 0) return sbif_json_get(item, "space");
    }
    return NULL;
}

/** Under the SB3 contract a Discrete or MultiDiscrete observation is an index below its bound (SPEC 5.9: SB3's
 * one_hot refuses others): one bound per element, n for Discrete and nvec[j] for MultiDiscrete; NULL otherwise. */
static sbif_status index_bounds(const sbif_json *space, size_t count, int64_t **bounds, sbif_error *error) {
    const char *kind = json_text(space, "kind");
    const sbif_json *item;
    size_t j;
    *bounds = NULL;
    if (strcmp(kind, "discrete") != 0 && strcmp(kind, "multi_discrete") != 0) return SBIF_OK;
    *bounds = malloc((count > 0 ? count : 1) * sizeof **bounds);
    if (*bounds == NULL) return predict_fail(error, SBIF_ERR_MEMORY, "cannot allocate the observation's bounds");
    if (strcmp(kind, "discrete") == 0) {
        sbif_json_int64(sbif_json_get(space, "n"), &(*bounds)[0]);
        return SBIF_OK;
    }
    item = sbif_json_first(sbif_json_get(space, "nvec"));
    for (j = 0; j < count; j++, item = sbif_json_next(item)) sbif_json_int64(item, &(*bounds)[j]);
    return SBIF_OK;
}

/** Read the observation inputs (kind "observation", in the document's order: `obs`, or one per dict key in the
 * space's order) and allocate their converted copies. */
static sbif_status read_observations(sbif_policy *policy, const sbif_json *document, int sb3, sbif_error *error) {
    const sbif_json *observation_space = sbif_json_get(document, "observation_space");
    size_t i, n = sbif_model_input_count(policy->model);
    sbif_value_info info;
    policy->observations = calloc(n > 0 ? n : 1, sizeof *policy->observations);
    if (policy->observations == NULL) return predict_fail(error, SBIF_ERR_MEMORY, "cannot allocate a policy");
    for (i = 0; i < n; i++) {
        observation_input *input = &policy->observations[policy->n_observations];
        const sbif_json *space;
        sbif_model_input(policy->model, i, &info);
        if (strcmp(info.kind, "observation") != 0) continue;
        space = space_of_input(observation_space, info.name);
        if (space == NULL) {
            return predict_fail(error, SBIF_ERR_DOCUMENT, "observation input '%.200s' has no key in the dict "
                                "observation space", info.name);
        }
        input->name = info.name;
        input->dtype = info.dtype;
        input->rank = info.rank;
        memcpy(input->shape, info.shape, sizeof input->shape);
        input->shape[0] = 1;
        input->offset = policy->observation_size;
        input->count = row_elements(&info);
        input->data = calloc(input->count > 0 ? input->count : 1, sbif_dtype_size(info.dtype));
        if (input->data == NULL) return predict_fail(error, SBIF_ERR_MEMORY, "cannot allocate the observation");
        if (sb3 && index_bounds(space, input->count, &input->bounds, error) != SBIF_OK) return error->status;
        policy->observation_size += input->count;
        policy->n_observations++;
    }
    return SBIF_OK;
}

/** The largest integer an action of this space can be (Discrete n - 1, MultiDiscrete max(nvec) - 1, MultiBinary 1),
 * or -1 for a space whose actions are not indices. */
static int64_t largest_index_action(const sbif_json *action_space) {
    const char *kind = json_text(action_space, "kind");
    int64_t largest = -1, value;
    if (strcmp(kind, "discrete") == 0 && sbif_json_int64(sbif_json_get(action_space, "n"), &value) == 0) {
        largest = value - 1;
    } else if (strcmp(kind, "multi_discrete") == 0) {
        const sbif_json *nvec = sbif_json_get(action_space, "nvec"), *item = sbif_json_first(nvec);
        size_t j, n = sbif_json_size(nvec);
        for (j = 0; j < n; j++, item = sbif_json_next(item)) {
            if (sbif_json_int64(item, &value) == 0 && value - 1 > largest) largest = value - 1;
        }
    } else if (strcmp(kind, "multi_binary") == 0) {
        largest = 1;
    }
    return largest;
}

/** Find the output `predict.deterministic_action` names; an integer action must be exact as a float. */
static sbif_status read_action(sbif_policy *policy, const sbif_json *document, sbif_error *error) {
    const sbif_json *predict = sbif_json_get(document, "predict");
    sbif_value_info info;
    int64_t largest;
    policy->action_name = json_text(predict, "deterministic_action");
    if (policy->action_name == NULL || find_output(policy->model, policy->action_name, &info) != 0) {
        return predict_fail(error, SBIF_ERR_DOCUMENT, "predict.deterministic_action names no output of the file");
    }
    policy->action_dtype = info.dtype;
    policy->action_size = row_elements(&info);
    if (info.dtype == SBIF_FLOAT32) return SBIF_OK;
    if (info.dtype == SBIF_FLOAT64 || info.dtype == SBIF_BOOL) {
        return predict_fail(error, SBIF_ERR_UNSUPPORTED, "sbif_predict returns float32 actions; this file's action "
                            "'%.200s' is %s: use sbif_workspace_run", policy->action_name, sbif_dtype_name(info.dtype));
    }
    largest = largest_index_action(sbif_json_get(document, "action_space"));
    if (largest < 0 || (double)largest > EXACT_FLOAT_INTEGERS) {
        return predict_fail(error, SBIF_ERR_UNSUPPORTED, "sbif_predict returns float32 actions, exact for indices up "
                            "to 2^24; this file's %s action '%.200s' may exceed that: use sbif_workspace_run",
                            sbif_dtype_name(info.dtype), policy->action_name);
    }
    return SBIF_OK;
}

/** A recurrent policy's state, mask and state output (SPEC 5.6), and a MaskablePPO file's action-mask input (5.9). */
static sbif_status read_state_and_masks(sbif_policy *policy, const sbif_json *document, sbif_error *error) {
    const sbif_json *predict = sbif_json_get(document, "predict");
    const sbif_json *recurrent = sbif_json_get(predict, "recurrent");
    sbif_value_info info;
    if (recurrent != NULL && sbif_json_type(recurrent) == SBIF_JSON_OBJECT) {
        policy->state_input = json_text(recurrent, "state_input");
        policy->mask_input = json_text(recurrent, "mask_input");
        policy->state_output = json_text(recurrent, "state_output");
        if (policy->state_input == NULL || find_input(policy->model, policy->state_input, &info) != 0 ||
            policy->mask_input == NULL || policy->state_output == NULL) {
            return predict_fail(error, SBIF_ERR_DOCUMENT, "predict.recurrent names no state input of the file");
        }
        policy->state_size = row_elements(&info);
        policy->state = calloc(policy->state_size > 0 ? policy->state_size : 1, sizeof *policy->state);
        if (policy->state == NULL) return predict_fail(error, SBIF_ERR_MEMORY, "cannot allocate the recurrent state");
    }
    policy->action_mask_input = json_text(predict, "action_mask");
    if (policy->action_mask_input != NULL) {
        if (find_input(policy->model, policy->action_mask_input, &info) != 0) {
            return predict_fail(error, SBIF_ERR_DOCUMENT, "predict.action_mask names no input of the file");
        }
        policy->action_mask_size = row_elements(&info);
        policy->action_mask = malloc(policy->action_mask_size > 0 ? policy->action_mask_size : 1);
        if (policy->action_mask == NULL) return predict_fail(error, SBIF_ERR_MEMORY, "cannot allocate the action mask");
    }
    return SBIF_OK;
}

/** Append a feed `name` of `dtype` and `shape` (batch 1: one observation), reading `data`. */
static void add_feed(sbif_policy *policy, const char *name, sbif_dtype dtype, int rank, const int64_t *shape,
                     void *data) {
    sbif_named_tensor *feed = &policy->feeds[policy->n_feeds++];
    feed->name = name;
    feed->tensor.dtype = dtype;
    feed->tensor.rank = rank;
    memcpy(feed->tensor.shape, shape, (size_t)rank * sizeof *shape);
    feed->tensor.data = data;
}

/** The feeds of one request, pointing at the policy's buffers, and the outputs it asks for. */
static sbif_status build_request(sbif_policy *policy, sbif_error *error) {
    size_t i;
    policy->feeds = calloc(policy->n_observations + 3, sizeof *policy->feeds);
    if (policy->feeds == NULL) return predict_fail(error, SBIF_ERR_MEMORY, "cannot allocate a policy");
    for (i = 0; i < policy->n_observations; i++) {
        const observation_input *input = &policy->observations[i];
        add_feed(policy, input->name, input->dtype, input->rank, input->shape, input->data);
    }
    policy->outputs[policy->n_outputs++] = policy->action_name;
    if (policy->state != NULL) {
        const int64_t state_shape[2] = {1, (int64_t)policy->state_size}, mask_shape[1] = {1};
        add_feed(policy, policy->state_input, SBIF_FLOAT32, 2, state_shape, policy->state);
        add_feed(policy, policy->mask_input, SBIF_FLOAT32, 1, mask_shape, &policy->episode_start);
        policy->outputs[policy->n_outputs++] = policy->state_output;
    }
    if (policy->action_mask != NULL) {
        const int64_t mask_shape[2] = {1, (int64_t)policy->action_mask_size};
        add_feed(policy, policy->action_mask_input, SBIF_BOOL, 2, mask_shape, policy->action_mask);
    }
    return SBIF_OK;
}

/** Run the request on the policy's buffers; on success write the action and carry the state to the next call. */
static sbif_status run_request(sbif_policy *policy, float *action, sbif_error *error) {
    sbif_tensor results[2];
    size_t j;
    if (sbif_workspace_run(policy->workspace, policy->feeds, policy->n_feeds, policy->outputs, policy->n_outputs,
                           results, error) != SBIF_OK) {
        return error->status;
    }
    if (policy->action_dtype == SBIF_FLOAT32) {
        /* memcpy wants real buffers even for no bytes, and an empty action may come with none */
        if (policy->action_size > 0) memcpy(action, results[0].data, policy->action_size * sizeof *action);
    } else {
        for (j = 0; j < policy->action_size; j++) {
            int64_t value = 0;
            switch (policy->action_dtype) {
            case SBIF_INT8: value = ((const int8_t *)results[0].data)[j]; break;
            case SBIF_INT16: value = ((const int16_t *)results[0].data)[j]; break;
            case SBIF_INT32: value = ((const int32_t *)results[0].data)[j]; break;
            case SBIF_INT64: value = ((const int64_t *)results[0].data)[j]; break;
            case SBIF_UINT8: value = ((const uint8_t *)results[0].data)[j]; break;
            case SBIF_UINT16: value = ((const uint16_t *)results[0].data)[j]; break;
            default: break; /* float64 and bool actions are refused when the policy is made */
            }
            action[j] = (float)value;
        }
    }
    if (policy->state != NULL) {
        memcpy(policy->state, results[1].data, policy->state_size * sizeof *policy->state);
        policy->episode_start = 0.0f;
    }
    return SBIF_OK;
}

/** Convert one observation as NumPy's astype does (SPEC 5.1: integers truncate toward zero), refusing what astype
 * leaves undefined (NaN, infinities and values outside an integer dtype) and, under the SB3 contract, indices outside
 * [0, n) (SPEC 5.9). Nothing is written to the policy's inputs unless every element converts. */
static sbif_status convert_observation(sbif_policy *policy, const float *observation, sbif_error *error) {
    size_t i, j;
    for (i = 0; i < policy->n_observations; i++) {
        const observation_input *input = &policy->observations[i];
        if (input->dtype == SBIF_FLOAT32 || input->dtype == SBIF_FLOAT64 || input->dtype == SBIF_BOOL) continue;
        for (j = 0; j < input->count; j++) {
            double value = observation[input->offset + j], whole = trunc(value);
            int64_t index;
            /* int64's range is [-2^63, 2^63): both ends are exact doubles */
            if (!(whole >= -9223372036854775808.0 && whole < 9223372036854775808.0) ||
                !sbif_dtype_holds_integer(input->dtype, (int64_t)whole)) {
                return predict_fail(error, SBIF_ERR_INPUT, "observation element %zu (%g) does not fit input '%.200s' "
                                    "(%s)", input->offset + j, value, input->name, sbif_dtype_name(input->dtype));
            }
            index = (int64_t)whole;
            if (input->bounds != NULL && (index < 0 || index >= input->bounds[j])) {
                return predict_fail(error, SBIF_ERR_INPUT, "observation element %zu (index %lld) is outside its space "
                                    "([0, %lld))", input->offset + j, (long long)index, (long long)input->bounds[j]);
            }
        }
    }
    for (i = 0; i < policy->n_observations; i++) {
        const observation_input *input = &policy->observations[i];
        const float *source;
        if (input->count == 0) continue; /* a NULL observation of no elements has nothing to read */
        source = observation + input->offset;
        if (input->dtype == SBIF_FLOAT32) {
            memcpy(input->data, source, input->count * sizeof *source);
            continue;
        }
        for (j = 0; j < input->count; j++) {
            switch (input->dtype) {
            case SBIF_FLOAT32: break; /* copied whole above */
            case SBIF_FLOAT64: ((double *)input->data)[j] = source[j]; break;
            case SBIF_INT8: ((int8_t *)input->data)[j] = (int8_t)source[j]; break;
            case SBIF_INT16: ((int16_t *)input->data)[j] = (int16_t)source[j]; break;
            case SBIF_INT32: ((int32_t *)input->data)[j] = (int32_t)source[j]; break;
            case SBIF_INT64: ((int64_t *)input->data)[j] = (int64_t)source[j]; break;
            case SBIF_UINT8: ((uint8_t *)input->data)[j] = (uint8_t)source[j]; break;
            case SBIF_UINT16: ((uint16_t *)input->data)[j] = (uint16_t)source[j]; break;
            case SBIF_BOOL: ((unsigned char *)input->data)[j] = source[j] != 0.0f; break; /* NaN is true */
            }
        }
    }
    return SBIF_OK;
}

/** One run of the zero observation (every input holds 0; every action allowed) sizes the workspace for a batch of
 * one, so that no later call allocates. */
static sbif_status size_workspace(sbif_policy *policy, sbif_error *error) {
    float *action = calloc(policy->action_size > 0 ? policy->action_size : 1, sizeof *action);
    sbif_status status;
    if (action == NULL) return predict_fail(error, SBIF_ERR_MEMORY, "cannot allocate an action");
    if (policy->action_mask != NULL) memset(policy->action_mask, 1, policy->action_mask_size);
    status = run_request(policy, action, error);
    free(action);
    return status;
}

sbif_status sbif_policy_new(const sbif_model *model, sbif_policy **policy, sbif_error *error) {
    sbif_error ignored;
    const sbif_json *document;
    const char *contract;
    sbif_policy *made;
    if (error == NULL) error = &ignored;
    if (policy == NULL) return predict_fail(error, SBIF_ERR_INPUT, "sbif_policy_new needs somewhere to put the policy");
    *policy = NULL;
    if (model == NULL) return predict_fail(error, SBIF_ERR_INPUT, "sbif_policy_new needs a model");
    document = sbif_model_document(model);
    made = calloc(1, sizeof *made);
    if (made == NULL) return predict_fail(error, SBIF_ERR_MEMORY, "cannot allocate a policy");
    made->model = model;
    contract = json_text(sbif_json_get(document, "predict"), "contract"); /* absent: SB2's (SPEC 5.9) */
    if (read_observations(made, document, contract != NULL && strcmp(contract, "sb3") == 0, error) != SBIF_OK ||
        read_action(made, document, error) != SBIF_OK || read_state_and_masks(made, document, error) != SBIF_OK ||
        build_request(made, error) != SBIF_OK || sbif_workspace_new(model, &made->workspace, error) != SBIF_OK ||
        size_workspace(made, error) != SBIF_OK) {
        sbif_policy_free(made);
        return error->status;
    }
    sbif_policy_reset(made);
    *policy = made;
    return SBIF_OK;
}

void sbif_policy_free(sbif_policy *policy) {
    size_t i;
    if (policy == NULL) return;
    for (i = 0; i < policy->n_observations; i++) {
        free(policy->observations[i].data);
        free(policy->observations[i].bounds);
    }
    free(policy->observations);
    free(policy->state);
    free(policy->action_mask);
    free(policy->feeds);
    sbif_workspace_free(policy->workspace);
    free(policy);
}

size_t sbif_policy_observation_size(const sbif_policy *policy) { return policy->observation_size; }

size_t sbif_policy_action_size(const sbif_policy *policy) { return policy->action_size; }

void sbif_policy_reset(sbif_policy *policy) {
    if (policy->state != NULL) memset(policy->state, 0, policy->state_size * sizeof *policy->state);
    policy->episode_start = 1.0f;
}

size_t sbif_policy_observation_input_count(const sbif_policy *policy) { return policy->n_observations; }

int sbif_policy_observation_input(const sbif_policy *policy, size_t index, const char **name, size_t *offset,
                                  size_t *count) {
    if (index >= policy->n_observations) return -1;
    if (name != NULL) *name = policy->observations[index].name;
    if (offset != NULL) *offset = policy->observations[index].offset;
    if (count != NULL) *count = policy->observations[index].count;
    return 0;
}

size_t sbif_policy_action_mask_size(const sbif_policy *policy) { return policy->action_mask_size; }

sbif_status sbif_predict_masked(sbif_policy *policy, const float *observation, size_t n_observation,
                                const unsigned char *mask, size_t n_mask, float *action, size_t n_action,
                                sbif_error *error) {
    sbif_error ignored;
    size_t j;
    if (error == NULL) error = &ignored;
    if (policy == NULL) return predict_fail(error, SBIF_ERR_INPUT, "sbif_predict needs a policy");
    if (n_observation != policy->observation_size) {
        return predict_fail(error, SBIF_ERR_INPUT, "the observation has %zu elements; this policy's observation "
                            "space takes %zu", n_observation, policy->observation_size);
    }
    if (n_action != policy->action_size) {
        return predict_fail(error, SBIF_ERR_INPUT, "room for %zu action elements given; this policy's action has %zu",
                            n_action, policy->action_size);
    }
    if ((observation == NULL && n_observation > 0) || (action == NULL && n_action > 0)) {
        return predict_fail(error, SBIF_ERR_INPUT, "sbif_predict needs the observation and room for the action, not "
                            "NULL");
    }
    if (mask != NULL && policy->action_mask == NULL) {
        return predict_fail(error, SBIF_ERR_INPUT, "this policy takes no action mask (the file has no "
                            "predict.action_mask): use sbif_predict");
    }
    if (mask != NULL && n_mask != policy->action_mask_size) {
        return predict_fail(error, SBIF_ERR_INPUT, "the action mask has %zu elements; this policy's has %zu", n_mask,
                            policy->action_mask_size);
    }
    if (convert_observation(policy, observation, error) != SBIF_OK) return error->status;
    for (j = 0; j < policy->action_mask_size; j++) policy->action_mask[j] = mask == NULL || mask[j] != 0;
    return run_request(policy, action, error);
}

sbif_status sbif_predict(sbif_policy *policy, const float *observation, size_t n_observation, float *action,
                         size_t n_action, sbif_error *error) {
    return sbif_predict_masked(policy, observation, n_observation, NULL, 0, action, n_action, error);
}
