/*
 * fuzz_reader.c: a libFuzzer harness for the C runtime's reader (sbif_model_load), built under AddressSanitizer and
 * UndefinedBehaviorSanitizer by `make -C runtimes/c fuzz` (build/fuzz-reader).
 *
 * Each input is a whole .sbif file. sbif.h has no load-from-memory entry, so the input is written to one file in
 * /dev/shm (memory, not disk) and loaded from there, exactly as sbif-check and the protocol's `load` read it.
 * Beyond the sanitizers' reports, the harness aborts (so libFuzzer keeps the input as a crash) when the reader
 * breaks its own contract (sbif.h): a refusal whose status is not one of the three reader classes of SPEC section 7
 * (FileFormatError, DocumentError, UnsupportedError) or lack of memory, a message that is empty, unterminated or
 * holds a newline, or a loaded model whose introspection disagrees with itself.
 *
 *     build/fuzz-reader -dict=fuzz/sbif.dict -max_len=65536 CORPUS_DIR SEED_DIR...
 */
#define _POSIX_C_SOURCE 200809L /* getpid, unlink */

#include "../sbif.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The file each input is written to, one per fuzzer process (several may run side by side). */
static char input_path[96];

static void remove_input_file(void) {
    if (input_path[0] != '\0') unlink(input_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(input_path, sizeof input_path, "/dev/shm/sbif-fuzz-reader-%ld.sbif", (long)getpid());
    atexit(remove_input_file);
    return 0;
}

/** Abort with a reason: libFuzzer records the input that got here as a crash. */
static void contract_broken(const char *why, const sbif_error *error) {
    fprintf(stderr, "fuzz_reader: %s (status %d, message \"%.200s\")\n", why, (int)error->status, error->message);
    abort();
}

static void check_refusal(sbif_status status, const sbif_error *error) {
    size_t length = strnlen(error->message, sizeof error->message);
    if (status != error->status) contract_broken("the returned status differs from error.status", error);
    if (status != SBIF_ERR_FILE_FORMAT && status != SBIF_ERR_DOCUMENT && status != SBIF_ERR_UNSUPPORTED &&
        status != SBIF_ERR_MEMORY) {
        contract_broken("a file was refused with a status that is not a reader class", error);
    }
    if (length == sizeof error->message) contract_broken("the error message is not NUL-terminated", error);
    if (length == 0) contract_broken("the error message is empty", error);
    if (memchr(error->message, '\n', length) != NULL) contract_broken("the error message holds a newline", error);
}

/** Walk what a loaded model says about itself: every index answers, every shape is within the rank limit. */
static void check_model(const sbif_model *model) {
    sbif_error error;
    sbif_value_info info;
    size_t i, inputs = sbif_model_input_count(model), outputs = sbif_model_output_count(model);
    strcpy(error.message, "introspection");
    error.status = SBIF_OK;
    if (sbif_model_document(model) == NULL) contract_broken("a loaded model has no document", &error);
    for (i = 0; i < inputs; i++) {
        if (sbif_model_input(model, i, &info) != 0 || info.rank < 1 || info.rank > SBIF_MAX_RANK ||
            info.shape[0] != -1) {
            contract_broken("a graph input of a loaded model is not batch-first within the rank limit", &error);
        }
    }
    for (i = 0; i < outputs; i++) {
        if (sbif_model_output(model, i, &info) != 0 || info.rank < 1 || info.rank > SBIF_MAX_RANK ||
            info.shape[0] != -1) {
            contract_broken("an output of a loaded model is not batch-first within the rank limit", &error);
        }
    }
    if (sbif_model_input(model, inputs, &info) != -1 || sbif_model_output(model, outputs, &info) != -1) {
        contract_broken("introspection answers an index past the end", &error);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sbif_model *model = NULL;
    sbif_error error;
    sbif_status status;
    FILE *file = fopen(input_path, "wb");
    if (file == NULL || fwrite(data, 1, size, file) != size || fclose(file) != 0) {
        perror(input_path);
        abort();
    }
    memset(&error, 0x55, sizeof error); /* a message the reader forgets to terminate shows as such */
    status = sbif_model_load(input_path, &model, &error);
    if (status == SBIF_OK) {
        if (model == NULL) contract_broken("SBIF_OK without a model", &error);
        check_model(model);
        sbif_model_free(model);
    } else {
        if (model != NULL) contract_broken("a refusal left a model behind", &error);
        check_refusal(status, &error);
    }
    return 0;
}
