/*
 * sbif-check: validate SBIF files with the C runtime.
 *
 *     sbif-check FILE.sbif...
 *
 * Prints "FILE: ok (...)" for each valid file and a one-line error for each invalid one (on stderr); the exit
 * status is 0 when every file is valid, 1 otherwise, 2 for usage errors.
 */
#include "sbif.h"

#include <stdio.h>

int main(int argc, char **argv) {
    int i, failures = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE.sbif...\n", argv[0]);
        return 2;
    }
    for (i = 1; i < argc; i++) {
        sbif_model *model;
        sbif_error error;
        if (sbif_model_load(argv[i], &model, &error) != SBIF_OK) {
            fprintf(stderr, "%s: %s: %s\n", argv[i], sbif_status_name(error.status), error.message);
            failures++;
            continue;
        }
        printf("%s: ok (%lu tensors, %lu inputs, %lu nodes, %lu outputs)\n", argv[i],
               (unsigned long)sbif_model_tensor_count(model), (unsigned long)sbif_model_input_count(model),
               (unsigned long)sbif_model_node_count(model), (unsigned long)sbif_model_output_count(model));
        sbif_model_free(model);
    }
    return failures > 0;
}
