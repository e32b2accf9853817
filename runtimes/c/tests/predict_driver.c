/*
 * predict_driver: sbif_predict over one model, driven by words on stdin, for tests/runtimes/test_c_predict.py.
 *
 *     predict_driver MODEL
 *
 * Commands (whitespace-separated words; every count is given, so that wrong sizes can be asked for):
 *     info                               -> info OBS_SIZE ACTION_SIZE MASK_SIZE N_INPUTS [NAME OFFSET COUNT]...
 *     predict N V1..VN                   -> ok A1..AM | error STATUS MESSAGE
 *     masked K M1..MK N V1..VN           -> as predict, through sbif_predict_masked with K mask bytes
 *     room R N V1..VN                    -> as predict, with room for R action elements
 *     reset                              -> reset
 * Floats are read with strtod (nan and inf too) and written with 9 significant digits, which float32 round-trips.
 * A model or policy that cannot be made is `error STATUS MESSAGE` and exit status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbif.h"

/** The next word of stdin in `word` (1), or 0 at the end. */
static int next_word(char *word, size_t size) {
    char format[16];
    sprintf(format, "%%%lus", (unsigned long)(size - 1));
    return scanf(format, word) == 1;
}

/** The next word as a count (1), or 0. */
static int next_count(size_t *count) {
    char word[64], *end;
    unsigned long value;
    if (!next_word(word, sizeof word)) return 0;
    value = strtoul(word, &end, 10);
    *count = (size_t)value;
    return *end == '\0';
}

/** `n` floats into a buffer grown as needed (1), or 0. */
static int next_floats(size_t n, float **values, size_t *capacity) {
    char word[64];
    size_t i;
    if (n > *capacity) {
        float *grown = realloc(*values, n * sizeof *grown);
        if (grown == NULL) return 0;
        *values = grown;
        *capacity = n;
    }
    for (i = 0; i < n; i++) {
        if (!next_word(word, sizeof word)) return 0;
        (*values)[i] = (float)strtod(word, NULL);
    }
    return 1;
}

static void print_error(const sbif_error *error) {
    printf("error %s %s\n", sbif_status_name(error->status), error->message);
}

int main(int argc, char **argv) {
    sbif_model *model = NULL;
    sbif_policy *policy = NULL;
    sbif_error error;
    char command[32];
    float *observation = NULL, *action = NULL, *mask_values = NULL;
    unsigned char *mask = NULL;
    size_t observation_capacity = 0, mask_capacity = 0, action_capacity, i;
    int status = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: predict_driver MODEL\n");
        return 2;
    }
    if (sbif_model_load(argv[1], &model, &error) != SBIF_OK || sbif_policy_new(model, &policy, &error) != SBIF_OK) {
        print_error(&error);
        sbif_model_free(model);
        return 1;
    }
    action_capacity = sbif_policy_action_size(policy) + 1;
    action = malloc(action_capacity * sizeof *action);
    mask = malloc(1);
    while (status == 0 && action != NULL && mask != NULL && next_word(command, sizeof command)) {
        size_t n = 0, k = 0, room = sbif_policy_action_size(policy);
        int masked = 0;
        sbif_status result;
        if (strcmp(command, "info") == 0) {
            printf("info %lu %lu %lu %lu", (unsigned long)sbif_policy_observation_size(policy),
                   (unsigned long)sbif_policy_action_size(policy), (unsigned long)sbif_policy_action_mask_size(policy),
                   (unsigned long)sbif_policy_observation_input_count(policy));
            for (i = 0; i < sbif_policy_observation_input_count(policy); i++) {
                const char *name;
                size_t offset, count;
                sbif_policy_observation_input(policy, i, &name, &offset, &count);
                printf(" %s %lu %lu", name, (unsigned long)offset, (unsigned long)count);
            }
            printf("\n");
            continue;
        }
        if (strcmp(command, "reset") == 0) {
            sbif_policy_reset(policy);
            printf("reset\n");
            continue;
        }
        if (strcmp(command, "masked") == 0) {
            masked = 1;
            if (!next_count(&k) || !next_floats(k, &mask_values, &mask_capacity)) break;
            if (k > 0) {
                unsigned char *grown = realloc(mask, k);
                if (grown == NULL) break;
                mask = grown;
            }
            for (i = 0; i < k; i++) mask[i] = mask_values[i] != 0.0f;
        } else if (strcmp(command, "room") == 0) {
            if (!next_count(&room)) break;
            if (room > action_capacity) {
                float *grown = realloc(action, room * sizeof *grown);
                if (grown == NULL) break;
                action = grown;
                action_capacity = room;
            }
        } else if (strcmp(command, "predict") != 0) {
            fprintf(stderr, "unknown command %s\n", command);
            status = 2;
            break;
        }
        if (!next_count(&n) || !next_floats(n, &observation, &observation_capacity)) break;
        result = masked ? sbif_predict_masked(policy, observation, n, mask, k, action, room, &error)
                        : sbif_predict(policy, observation, n, action, room, &error);
        if (result != SBIF_OK) {
            print_error(&error);
            continue;
        }
        printf("ok");
        for (i = 0; i < room; i++) printf(" %.9g", action[i]);
        printf("\n");
        fflush(stdout);
    }
    free(observation);
    free(action);
    free(mask_values);
    free(mask);
    sbif_policy_free(policy);
    sbif_model_free(model);
    return status;
}
