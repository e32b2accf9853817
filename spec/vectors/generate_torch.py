"""Generate the vectors of the ops SB3's graphs need and SB2's do not, from PyTorch itself (SB3's framework).

Stable-Baselines3 stores torch's layouts (Linear weights [out, in], convolution kernels OIHW, observations NCHW);
an SBIF file keeps those tensors bit for bit and re-lays them with `transpose` nodes, so the oracle of `transpose`
is the function SB3's torch computes it with, `x.permute(perm)`, run on the CPU. Likewise `erf`, which SB3's exact
GELU is composed with, is `torch.erf` on float32 tensors: torch computes long tensors with a vectorized loop and
finishes them (and short ones) with scalar code, so the cases hold both lengths, as TF's element-wise vectors do.
`where`, with which MaskablePPO masks its logits, is `torch.where(condition, x, y)`.

Run in the modern environment (Python 3.11, torch 2.13.0 CPU):

    .venv/bin/python spec/vectors/generate_torch.py [--check]

Deterministic: the random cases are seeded by the op's name, and the file is written in the layout of the other
vector files (`spec/ops.md`, "Vector files"). `--check` also runs the `sbif.ops` reference on every case with the
comparison of `tests/test_op_vectors.py`.
"""
from __future__ import annotations

import json
import math
import os
import sys
import zlib
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

EXACT = {"exact": True}
#: op -> how torch computes it, as the file's `oracle` states it
ORACLES = {"transpose": "x.permute(perm) (torch.Tensor.permute, SB3's layouts)",
           "erf": "torch.erf(x) (float32, CPU; SB3's GELU is x * 0.5 * (1 + erf(x / sqrt(2))))",
           "where": "torch.where(condition, x, y) (CPU; MaskablePPO's th.where(mask, logits, -1e8))"}
#: values whose bits a copy must keep: signed zeros, infinities, NaN, the extremes of float32
EDGE_VALUES = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), float(np.finfo(np.float32).max),
               -float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny), 1.0, -1.0, 0.5, -3.0]


#: erf's tolerance (spec/ops.md): torch is within 1 ULP of the correctly rounded value, a conforming erff within 3
ERF_TOLERANCE = {"ulp": 4}
#: erf's edge values beyond the common set: where it is most curved or saturates in float32 (erf(x) rounds to 1
#: from about 3.92), and a tiny argument (erf(x) is about 2x/sqrt(pi))
ERF_EDGES = [-2.0, 3.0, 3.9, -3.9, 4.0, -4.0, 6.0, -6.0, 1e-10]
#: fewer elements than the narrowest vectorized loop takes, so torch computes them all with scalar code
SCALAR_CHUNK = 7
#: a multiple of every vectorized loop's block (AVX2: 16 floats, AVX-512: 32), so no scalar tail is left
VECTOR_BLOCK = 32


def common_edge_values() -> List[float]:
    """The element-wise ops' common edge values (spec/ops.md: ±0, ±1, ±0.5, 2, −3, ±1e-30, ±1e30, ±3.4e38,
    ±FLT_MAX, ±FLT_MIN, ±inf, NaN), read from the scalar-path cases of `neg.json`, which `generate.py` writes from
    its `BASE_EDGES` (it imports TensorFlow, which this environment does not have)."""
    with open(os.path.join(HERE, "neg.json")) as handle:
        cases = json.load(handle)["cases"]
    special = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
    return [special.get(value, value) for item in cases if item["name"].startswith("edge_scalar_path_")
            for value in item["inputs"][0]["data"]]


def rng_for(op: str) -> np.random.RandomState:
    return np.random.RandomState(zlib.crc32(op.encode("ascii")) & 0x7FFFFFFF)


def case(name: str, x: np.ndarray, perm: Sequence[int], note: Optional[str] = None) -> Dict[str, Any]:
    item = {"name": name, "attrs": {"perm": list(perm)}, "inputs": [x], "tolerance": EXACT}
    if note:
        item["note"] = note
    return item


def transpose_cases() -> List[Dict[str, Any]]:
    rng = rng_for("transpose")

    def floats(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    edges = np.asarray(EDGE_VALUES, np.float32).reshape(3, 4)
    return [
        case("linear_weight", floats(3, 5), [1, 0], "a torch Linear weight [out, in] as linear's w [in, out]"),
        case("edge_values", edges, [1, 0], "signed zeros, infinities, NaN and extremes are moved bit for bit"),
        case("oihw_to_hwio", floats(4, 3, 2, 2), [2, 3, 1, 0], "a torch Conv2d kernel as conv2d's w [kh, kw, C, O]"),
        case("nchw_to_nhwc", floats(2, 3, 4, 5), [0, 2, 3, 1], "NCHW images (B = 2) as conv2d's NHWC input"),
        case("nhwc_to_nchw", floats(2, 4, 5, 3), [0, 3, 1, 2],
             "conv2d's NHWC output back to NCHW, the order NatureCNN flattens in"),
        case("rank1_identity", floats(6), [0]),
        case("int32", rng.randint(-1000, 1000, (2, 3, 4)).astype(np.int32), [0, 2, 1]),
        case("uint8_image", rng.randint(0, 256, (2, 4, 4, 3)).astype(np.uint8), [0, 3, 1, 2],
             "channel-last uint8 observations to channel-first"),
        case("bool", rng.randint(0, 2, (3, 2, 2)).astype(bool), [2, 0, 1]),
        case("empty_dimension", np.zeros((2, 0, 3), np.float32), [0, 2, 1]),
        case("rank5", floats(2, 3, 1, 4, 2), [0, 3, 1, 4, 2]),
    ]


def unary_case(name: str, x: np.ndarray, tolerance: Dict[str, Any], note: str) -> Dict[str, Any]:
    return {"name": name, "attrs": {}, "inputs": [x], "tolerance": tolerance, "note": note}


def erf_cases() -> List[Dict[str, Any]]:
    rng = rng_for("erf")
    edges = common_edge_values() + ERF_EDGES
    assert len({np.float32(value).tobytes() for value in edges}) == len(edges), "an edge value twice"
    tiled = (edges * (VECTOR_BLOCK // len(edges) + 2))[:-(-len(edges) // VECTOR_BLOCK) * VECTOR_BLOCK]
    cases = [
        unary_case("random_b1_scalar_path", (rng.standard_normal((1, 7)) * 2).astype(np.float32), ERF_TOLERANCE,
                   "7 elements: scalar code only"),
        unary_case("random_b3_row19", (rng.standard_normal((3, 19)) * 2).astype(np.float32), ERF_TOLERANCE,
                   "57 elements: a vectorized block and a scalar tail"),
        unary_case("random_b2_row40", rng.uniform(-4.5, 4.5, (2, 40)).astype(np.float32), ERF_TOLERANCE,
                   "80 elements across erf's curved range and its saturation"),
        unary_case("edge_vector_path", np.asarray([tiled], np.float32), ERF_TOLERANCE,
                   "{} elements: whole vectorized blocks".format(len(tiled))),
    ]
    for start in range(0, len(edges), SCALAR_CHUNK):
        chunk = edges[start:start + SCALAR_CHUNK]
        cases.append(unary_case("edge_scalar_path_{}".format(start // SCALAR_CHUNK), np.asarray([chunk], np.float32),
                                ERF_TOLERANCE, "{} elements: scalar code only".format(len(chunk))))
    return cases


def where_case(name: str, condition: np.ndarray, x: np.ndarray, y: np.ndarray, note: str) -> Dict[str, Any]:
    return {"name": name, "attrs": {}, "inputs": [condition, x, y], "tolerance": EXACT, "note": note}


def where_cases() -> List[Dict[str, Any]]:
    rng = rng_for("where")

    def selection(*shape: int) -> np.ndarray:
        return rng.randint(0, 2, shape).astype(bool)

    def floats(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    edges = np.asarray(EDGE_VALUES, np.float32).reshape(3, 4)
    masked_logit = np.asarray(-1e8, np.float32)
    return [
        where_case("float32_same_shape", selection(3, 19), floats(3, 19), floats(3, 19),
                   "a random selection between two [3, 19] operands"),
        where_case("masked_logits", selection(2, 5), floats(2, 5), masked_logit,
                   "MaskablePPO's th.where(mask, logits, -1e8): a [B, n] condition against a rank-0 constant y"),
        where_case("edge_values_selected", np.ones((3, 4), bool), edges, np.zeros((3, 4), np.float32),
                   "signed zeros, infinities, NaN and extremes are copied bit for bit where selected"),
        where_case("edge_values_not_selected", selection(3, 4), np.zeros((3, 4), np.float32), edges,
                   "y's edge values where the condition is false, x's zeros elsewhere"),
        where_case("nan_discarded", np.zeros((1, 4), bool), np.full((1, 4), np.nan, np.float32), floats(1, 4),
                   "a NaN in the operand not selected leaves no trace"),
        where_case("broadcast_all_three", selection(2, 1, 4), floats(3, 1), floats(1, 3, 4),
                   "condition [2, 1, 4], x [3, 1] and y [1, 3, 4] broadcast to [2, 3, 4]"),
        where_case("int32", selection(2, 6), rng.randint(-1000, 1000, (2, 6)).astype(np.int32),
                   rng.randint(-1000, 1000, (2, 6)).astype(np.int32), "int32 operands"),
        where_case("bool", selection(3, 5), selection(3, 5), selection(3, 5), "bool operands"),
        where_case("rank0", np.asarray(False), np.asarray(2.5, np.float32), np.asarray(-0.0, np.float32),
                   "every operand rank 0: y's -0 kept"),
        where_case("empty_dimension", selection(2, 0), floats(2, 0), masked_logit, "an empty dimension"),
    ]


CASES = {"transpose": transpose_cases, "erf": erf_cases, "where": where_cases}


def run_torch(op: str, item: Dict[str, Any]) -> List[np.ndarray]:
    """The op on the case's inputs, computed by torch on the CPU."""
    if op == "transpose":
        (x,) = item["inputs"]
        return [torch.from_numpy(np.array(x)).permute(item["attrs"]["perm"]).contiguous().numpy()]
    if op == "erf":
        (x,) = item["inputs"]
        return [torch.erf(torch.from_numpy(np.array(x))).numpy()]
    if op == "where":
        condition, x, y = (torch.from_numpy(np.array(value)) for value in item["inputs"])
        return [torch.where(condition, x, y).numpy()]
    raise KeyError(op)


def encode_scalar(value: Any, kind: str) -> Any:
    if kind == "f":
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value  # repr of the float64 holding the float32 value: exact
    if kind == "b":
        return bool(value)
    return int(value)


def encode_tensor(array: np.ndarray) -> Dict[str, Any]:
    array = np.asarray(array)
    return {"dtype": array.dtype.name, "shape": list(array.shape),
            "data": [encode_scalar(v, array.dtype.kind) for v in array.ravel().tolist()]}


def generated_by() -> str:
    return "torch {} (CPU), NumPy {}, Python {}".format(torch.__version__, np.__version__, sys.version.split()[0])


def encoded_cases(op: str) -> List[Dict[str, Any]]:
    items = []
    for item in CASES[op]():
        encoded = {"name": item["name"], "attrs": item["attrs"], "inputs": [encode_tensor(x) for x in item["inputs"]],
                   "outputs": [encode_tensor(y) for y in run_torch(op, item)], "tolerance": item["tolerance"]}
        if "note" in item:
            encoded["note"] = item["note"]
        items.append(encoded)
    names = [item["name"] for item in items]
    assert len(names) == len(set(names)), (op, "duplicate case names")
    return items


def write(op: str, items: List[Dict[str, Any]]) -> str:
    lines = ["{", ' "op": {},'.format(json.dumps(op)), ' "generated_by": {},'.format(json.dumps(generated_by())),
             ' "oracle": {},'.format(json.dumps(ORACLES[op])), ' "cases": [']
    lines.append(",\n".join("  " + json.dumps(item, allow_nan=False) for item in items))
    lines += [" ]", "}"]
    path = os.path.join(HERE, op + ".json")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def main(argv: Sequence[str]) -> int:
    check = "--check" in argv
    ops = [a for a in argv if not a.startswith("--")] or sorted(CASES)
    status = 0
    for op in ops:
        items = encoded_cases(op)
        path = write(op, items)
        line = "{:16s} {:3d} cases {:7d} bytes".format(op, len(items), os.path.getsize(path))
        if check:
            from tests import test_op_vectors as checks  # the test module's comparison

            failures = ["{}: {}".format(item["name"], problem) for item in items
                        for problem in checks.check_case(op, item)[0]]
            line += "   sbif vs torch: {}".format("FAIL\n    " + "\n    ".join(failures) if failures else "exact")
            status = status or int(bool(failures))
        print(line)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
