// The limits SPEC sections 2, 3 and 5.8 set on what a reader accepts, as every SBIF reader applies them.

// The most bytes a safetensors header has (SPEC section 2).
export const MAX_HEADER = 100 * 1024 * 1024;
// The most tensors a header lists, and the most keys its __metadata__ has (SPEC section 2).
export const MAX_HEADER_ENTRIES = 16384;
// The most JSON values a document holds, the document included, and the most nodes its graph has (SPEC section 3).
export const MAX_DOCUMENT_VALUES = 2 ** 20;
export const MAX_GRAPH_NODES = 16384;
// The largest value a file may declare, in bytes at batch 1 with zero dimensions counted as 1 (SPEC section 3.5), and
// the largest one a request may make (SPEC section 5.8).
export const MAX_VALUE_BYTES = 2n ** 28n;
export const MAX_BATCH_VALUE_BYTES = 2n ** 32n;
// Dimensions, strides, sizes and counts must be below MAX_DIM (int64's maximum is 2^63 - 1), and a tensor or graph
// value has at most MAX_RANK dimensions (SPEC sections 2 and 3.5).
export const MAX_DIM = 2 ** 63;
export const MAX_RANK = 32;
