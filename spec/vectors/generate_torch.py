"""Generate the vectors of the ops SB3's graphs need and SB2's do not, from PyTorch itself (SB3's framework).

Stable-Baselines3 stores torch's layouts (Linear weights [out, in], convolution kernels OIHW, observations NCHW);
an SBIF file keeps those tensors bit for bit and re-lays them with `transpose` nodes, so the oracle of `transpose`
is the function SB3's torch computes it with, `x.permute(perm)`, run on the CPU.

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
ORACLES = {"transpose": "x.permute(perm) (torch.Tensor.permute, SB3's layouts)"}
#: values whose bits a copy must keep: signed zeros, infinities, NaN, the extremes of float32
EDGE_VALUES = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), float(np.finfo(np.float32).max),
               -float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny), 1.0, -1.0, 0.5, -3.0]


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


CASES = {"transpose": transpose_cases}


def run_torch(op: str, item: Dict[str, Any]) -> List[np.ndarray]:
    """The op on the case's inputs, computed by torch on the CPU."""
    if op == "transpose":
        (x,) = item["inputs"]
        return [torch.from_numpy(np.array(x)).permute(item["attrs"]["perm"]).contiguous().numpy()]
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
