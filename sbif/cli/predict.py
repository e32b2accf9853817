"""`sbif predict`: run a policy on observations given as JSON or .npy."""
from __future__ import annotations

import argparse
import json
import os
import warnings
from typing import Any

import numpy as np

from ..errors import InputError, SbifError, preview
from ..format.strict_json import loads_json_input
from .common import add_command


def add_parser(commands: Any) -> argparse.ArgumentParser:
    predict = add_command(commands, "predict", "run a policy on observations", run_predict,
                       "  sbif predict model.sbif --obs '[0.1, 0.2, 0.3, 0.4]'\n"
                       "  sbif predict model.sbif --obs batch.npy --stochastic --seed 1 -o actions.npy")
    predict.add_argument("file")
    predict.add_argument("--obs", required=True,
                         help="observations: a .npy or .json file, or inline JSON (one observation or a batch)")
    mode = predict.add_mutually_exclusive_group()
    mode.add_argument("--deterministic", dest="deterministic", action="store_const", const=True, default=None,
                      help="take the distribution's mode")
    mode.add_argument("--stochastic", dest="deterministic", action="store_const", const=False,
                      help="sample (default: the algorithm's SB2 default)")
    predict.add_argument("--seed", type=int, help="seed for sampling")
    predict.add_argument("--backend", choices=("numpy", "numba", "auto"), default="numpy",
                         help="the runtime's executor (default numpy: one call does not repay numba's start-up; "
                              "auto: numba when installed)")
    predict.add_argument("-o", "--output", help="write actions to this .npy file instead of printing JSON")
    return predict


def run_predict(args: argparse.Namespace) -> int:
    from ..runtime import load

    if args.seed is not None and args.seed < 0:
        raise InputError("--seed must be a non-negative integer, got {}".format(preview(args.seed)))
    policy = load(args.file, backend=args.backend)
    observations = read_observations(args.obs)
    actions, _ = policy.predict(observations, deterministic=args.deterministic, rng=args.seed)
    if args.output:
        try:
            np.save(args.output, np.asarray(actions))
        except OSError as exc:
            raise SbifError("cannot write {}: {}".format(args.output, exc.strerror or exc)) from None
        print("wrote {} actions of shape {} to {}".format(np.asarray(actions).dtype, np.shape(actions), args.output))
    else:
        print(json.dumps({"actions": np.asarray(actions).tolist()}))
    return 0


#: .npy dtype kinds that are numbers an observation can be, and what the others are (for the refusal).
NUMERIC_KINDS = "biuf"
NON_NUMERIC_KINDS = {"c": "complex (the imaginary part would be dropped)", "m": "timedelta", "M": "datetime",
                     "O": "Python objects", "S": "byte strings", "U": "strings", "V": "structured or raw records"}


def read_observations(spec: str) -> np.ndarray:
    """Observations from a .npy file, a .json file, or inline JSON, as a numeric array (InputError otherwise).

    A .npy header is read first and the file refused before anything is allocated when its declared size is not
    what the file holds (a 192-byte file declaring shape (4e9, 4) would make np.load try 60 GiB) or its dtype is
    not a number (complex, datetime, structured, object, strings: NumPy would convert some silently later).
    JSON is read strictly (loads_json_input) and must make a numeric array."""
    try:
        if spec.endswith(".npy"):
            return _numeric(read_npy(spec))
        if spec.endswith(".json"):
            with open(spec, "rb") as handle:
                raw = handle.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError("cannot read observations from {}: not UTF-8 text (byte {} is {})".format(
                    preview(spec), exc.start, preview(raw[exc.start:exc.start + 1]))) from None
            return _numeric(_json_array(text))
        return _numeric(_json_array(spec))
    except OSError as exc:
        raise InputError("cannot read observations from {}: {}".format(preview(spec), exc.strerror or exc)) from None
    except ValueError as exc:
        raise InputError("cannot read observations from {}: {}".format(preview(spec), exc)) from None


def read_npy(path: str) -> np.ndarray:
    """The array in a .npy file, its header checked before its data is read: a known format version, a numeric
    dtype, and exactly as many data bytes as the header's shape and dtype declare (ValueError otherwise)."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise ValueError(".npy format version {}.{} is not supported (1.0 or 2.0)".format(*version))
        shape, fortran_order, dtype = readers[version](handle)
        _check_numeric_dtype(dtype)
        if not all(isinstance(size, int) and size >= 0 for size in shape):
            raise ValueError("the .npy header declares shape {}, not a shape".format(preview(shape)))
        count = 1
        for size in shape:
            count *= size
        declared = count * dtype.itemsize
        available = os.fstat(handle.fileno()).st_size - handle.tell()
        if declared != available:
            raise ValueError("the .npy header declares shape {} of {} ({} bytes), but {} bytes follow it".format(
                preview(shape), dtype.name, declared if declared < 10 ** 30 else "more than 10^30", available))
        data = handle.read(declared)
    if len(data) != declared:
        raise ValueError("the .npy file changed while it was read")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def _check_numeric_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        kind = "subarrays" if dtype.subdtype is not None else NON_NUMERIC_KINDS.get(dtype.kind, dtype.kind)
        raise ValueError("observations must be numbers, not {} (dtype {})".format(kind, preview(dtype.str)))


def _json_array(text: str) -> np.ndarray:
    """The numeric array a JSON text denotes: a number, or nested lists of numbers of one shape. Integers beyond
    int64 are read as doubles (JSON numbers); null, strings, objects and ragged lists are refused."""
    value = loads_json_input(text)
    if not isinstance(value, (list, int, float)):  # bool is an int: a single flag of a MultiBinary observation
        raise ValueError("observations are a number or nested lists of numbers, not a JSON {}".format(
            "object" if isinstance(value, dict) else "string" if isinstance(value, str) else "null"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy 1.x warns before making an object array of ragged lists
        array = np.array(value)
    if array.dtype.kind == "O":  # huge integers, ragged lists, or a null among numbers
        odd = [item for item in array.ravel() if type(item) not in (int, float, bool)][:1]
        if odd:
            raise ValueError("observations are nested lists of numbers of one shape, not {}".format(preview(odd[0])))
        array = np.array(value, dtype=np.float64)
    return array


def _numeric(array: np.ndarray) -> np.ndarray:
    """`array` if it holds numbers (JSON strings make a str array; a .npy may hold anything)."""
    _check_numeric_dtype(array.dtype)
    return array
