"""Noise for sampled actions over a dataset: a pure function of (seed, row id), whatever the batching.

`Policy.predict` draws a request's noise from one sequential generator, so row r's sample depends on which rows
came before it in its request: over a dataset split into batches (by a batch size, by Ray's partitioning), the
samples would change with the split. Here every element of every noise input of row r is computed from the user's
seed, the noise input's position and r alone, by a counter-based generator (splitmix64's mixing function applied to
keyed counters), vectorised over uint64 arrays. spec/batch-inference.md section 3 defines it to the bit, with test
vectors, so that any runtime can reproduce it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

MASK64 = (1 << 64) - 1
#: splitmix64's increment (2^64 / the golden ratio, odd) and its finalizer's multipliers (Stafford's mix 13)
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
MIX_MULTIPLIER_1 = 0xBF58476D1CE4E5B9
MIX_MULTIPLIER_2 = 0x94D049BB133111EB
#: float32 uniforms take a word's top 24 bits (every value k / 2^24 is exact in float32); float64 ones the top 53
UNIFORM_BITS = 24
DOUBLE_BITS = 53
#: the double nearest 2*pi, by which the Box-Muller angle is computed
TWO_PI = 6.283185307179586


def mix64(words: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on a uint64 array (a bijection of 64-bit words; arithmetic modulo 2^64)."""
    words = (words ^ (words >> np.uint64(30))) * np.uint64(MIX_MULTIPLIER_1)
    words = (words ^ (words >> np.uint64(27))) * np.uint64(MIX_MULTIPLIER_2)
    return words ^ (words >> np.uint64(31))


def as_row_ids(row_ids: Sequence[int]) -> np.ndarray:
    """Row ids as uint64 words: integers of any width, a negative int64 id as its two's complement."""
    ids = np.asarray(row_ids)
    if ids.dtype.kind not in "iu":
        raise TypeError("row ids are integers, got {}".format(ids.dtype))
    return ids.astype(np.int64).view(np.uint64) if ids.dtype.kind == "i" else ids.astype(np.uint64)


def row_keys(seed: int, noise_index: int, row_ids: Sequence[int]) -> np.ndarray:
    """One uint64 key per row for the noise input at `noise_index` (its position among the document's noise inputs):
    mix64(mix64(seed + (noise_index + 1) * GAMMA) ^ row_id)."""
    if not 0 <= seed <= MASK64:
        raise ValueError("the seed must be an integer in [0, 2^64), got {}".format(seed))
    base = mix64(np.array([(seed + (noise_index + 1) * GOLDEN_GAMMA) & MASK64], np.uint64))
    return mix64(base ^ as_row_ids(row_ids))


def row_words(keys: np.ndarray, count: int) -> np.ndarray:
    """`count` words per row, [rows, count] uint64: word j of a row is mix64(key + (j + 1) * GAMMA), splitmix64's
    sequence from the state `key`."""
    counters = (np.arange(1, count + 1, dtype=np.uint64) * np.uint64(GOLDEN_GAMMA))
    with np.errstate(over="ignore"):
        return mix64(keys.reshape(-1, 1) + counters.reshape(1, -1))


def uniform_noise(seed: int, noise_index: int, row_ids: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """float32 draws from U[0, 1), [rows, *shape]: element j of a row (row-major) is (word_j >> 40) / 2^24."""
    keys = row_keys(seed, noise_index, row_ids)
    words = row_words(keys, int(np.prod(shape, dtype=np.int64)))
    uniforms = (words >> np.uint64(64 - UNIFORM_BITS)).astype(np.float32) * np.float32(2.0 ** -UNIFORM_BITS)
    return uniforms.reshape((len(keys),) + tuple(shape))


def normal_noise(seed: int, noise_index: int, row_ids: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """float32 draws from N(0, 1), [rows, *shape], by Box-Muller in float64: element j of a row takes words 2j and
    2j + 1, u1 = ((word_2j >> 11) + 1) / 2^53 in (0, 1], u2 = (word_2j+1 >> 11) / 2^53 in [0, 1), and is
    float32(sqrt(-2 log u1) * cos(TWO_PI * u2)) (the sine's twin is not used: each element depends on its own
    two words only)."""
    keys = row_keys(seed, noise_index, row_ids)
    count = int(np.prod(shape, dtype=np.int64))
    words = row_words(keys, 2 * count).reshape(len(keys), count, 2) >> np.uint64(64 - DOUBLE_BITS)
    scale = 2.0 ** -DOUBLE_BITS
    radius_uniform = (words[..., 0] + np.uint64(1)).astype(np.float64) * scale
    angle_uniform = words[..., 1].astype(np.float64) * scale
    normals = np.sqrt(-2.0 * np.log(radius_uniform)) * np.cos(TWO_PI * angle_uniform)
    return normals.astype(np.float32).reshape((len(keys),) + tuple(shape))
