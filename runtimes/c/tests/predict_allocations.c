/*
 * predict_allocations: how many allocations sbif_predict makes once its policy exists, for
 * tests/runtimes/test_c_predict.py (the policy's buffers and workspace are made by sbif_policy_new; calls allocate
 * nothing).
 *
 *     predict_allocations MODEL CALLS   -> allocations N
 *
 * Linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc, so that every allocation of the library goes through
 * the counters below. The calls predict the zero observation (every input holds 0), reset the episode every third
 * call and, for a policy with an action mask, pass one every other call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbif.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *pointer, size_t size);

static int counting;
static unsigned long allocations;

void *__wrap_malloc(size_t size) {
    allocations += (unsigned long)counting;
    return __real_malloc(size);
}

void *__wrap_calloc(size_t count, size_t size) {
    allocations += (unsigned long)counting;
    return __real_calloc(count, size);
}

void *__wrap_realloc(void *pointer, size_t size) {
    allocations += (unsigned long)counting;
    return __real_realloc(pointer, size);
}

int main(int argc, char **argv) {
    sbif_model *model = NULL;
    sbif_policy *policy = NULL;
    sbif_error error;
    float *observation, *action;
    unsigned char *mask;
    long calls, i;
    int status = 0;
    if (argc != 3 || (calls = strtol(argv[2], NULL, 10)) < 1) {
        fprintf(stderr, "usage: predict_allocations MODEL CALLS\n");
        return 2;
    }
    if (sbif_model_load(argv[1], &model, &error) != SBIF_OK || sbif_policy_new(model, &policy, &error) != SBIF_OK) {
        printf("error %s %s\n", sbif_status_name(error.status), error.message);
        sbif_model_free(model);
        return 1;
    }
    observation = calloc(sbif_policy_observation_size(policy) + 1, sizeof *observation);
    action = calloc(sbif_policy_action_size(policy) + 1, sizeof *action);
    mask = malloc(sbif_policy_action_mask_size(policy) + 1);
    if (observation == NULL || action == NULL || mask == NULL) {
        printf("error cannot allocate the driver's buffers\n");
        status = 1;
    }
    if (mask != NULL) memset(mask, 1, sbif_policy_action_mask_size(policy) + 1);
    counting = 1;
    for (i = 0; status == 0 && i < calls; i++) {
        sbif_status result;
        if (i % 3 == 2) sbif_policy_reset(policy);
        if (sbif_policy_action_mask_size(policy) > 0 && i % 2 == 1) {
            result = sbif_predict_masked(policy, observation, sbif_policy_observation_size(policy), mask,
                                         sbif_policy_action_mask_size(policy), action,
                                         sbif_policy_action_size(policy), &error);
        } else {
            result = sbif_predict(policy, observation, sbif_policy_observation_size(policy), action,
                                  sbif_policy_action_size(policy), &error);
        }
        if (result != SBIF_OK) {
            printf("error %s %s\n", sbif_status_name(error.status), error.message);
            status = 1;
        }
    }
    counting = 0;
    if (status == 0) printf("allocations %lu\n", allocations);
    free(observation);
    free(action);
    free(mask);
    sbif_policy_free(policy);
    sbif_model_free(model);
    return status;
}
