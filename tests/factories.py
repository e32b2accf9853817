"""Valid SBIF models with random weights, for a small matrix of spaces and network architectures.

The parameters are named and ordered as SB2's actor-critic `get_parameters()` returns them
(`sbif.export.parameter_layouts.actor_critic_mlp_layout`). No TensorFlow is needed.

    >>> from tests.factories import make_sbif
    >>> sbif_file = make_sbif("box_inf", "discrete", "mixed", seed=3)
    >>> sbif_file.write(path)
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from sbif.export import ModelDescription, Space, build_sbif
from sbif.export.parameter_layouts import BIAS, KERNEL, LOG_STD, actor_critic_mlp_layout
from sbif.format import SbifFile


def _box(shape: Sequence[int], dtype: str, low: float, high: float) -> Space:
    return Space("box", tuple(shape), dtype, np.full(shape, low, dtype), np.full(shape, high, dtype))


def _observation_spaces() -> Dict[str, Space]:
    finite_low = np.array([[-1.0, -2.0, 0.0], [-0.5, -3.0, -1.0]], dtype="float32")
    return {
        "box_inf": _box((4,), "float32", -np.inf, np.inf),
        "box_finite": Space("box", (2, 3), "float32", finite_low, finite_low + np.float32(2.5)),
        "box_image": _box((4, 4, 3), "uint8", 0, 255),
        "discrete": Space("discrete", (), "int64", n=5),
        "multi_discrete": Space("multi_discrete", (3,), "int64", nvec=[3, 2, 4]),
        "multi_binary": Space("multi_binary", (6,), "int8", n=6),
    }


def _action_spaces() -> Dict[str, Space]:
    return {
        "discrete": Space("discrete", (), "int64", n=3),
        "box": Space("box", (2,), "float32", np.array([-1.0, -2.0], "float32"), np.array([1.0, 0.5], "float32")),
        "multi_discrete": Space("multi_discrete", (2,), "int64", nvec=[2, 3]),
        "multi_binary": Space("multi_binary", (4,), "int8", n=4),
    }


#: SB2 `net_arch` values: shared layer widths, then an optional {'pi': [...], 'vf': [...]} dict.
NET_ARCHS: Dict[str, List[Any]] = {
    "shared": [8, 6],
    "separate": [{"pi": [8], "vf": [6]}],
    "mixed": [7, {"pi": [6, 4], "vf": [5]}],
    "none": [],
}

OBSERVATION_KINDS = tuple(sorted(_observation_spaces()))
ACTION_KINDS = tuple(sorted(_action_spaces()))
ARCH_KINDS = tuple(sorted(NET_ARCHS))
#: every (observation, action, architecture) combination the factory can build
MATRIX = [(o, a, n) for o in OBSERVATION_KINDS for a in ACTION_KINDS for n in ARCH_KINDS]

PROVENANCE = {"exporter": "live", "sb2_version": "2.10.2",
              "source": {"file_name": "model.zip", "sha256": "0" * 64, "format": "zip"}}


def observation_space(kind: str) -> Space:
    return _observation_spaces()[kind]


def action_space(kind: str) -> Space:
    return _action_spaces()[kind]


def split_net_arch(net_arch: List[Any]) -> Tuple[List[int], List[int], List[int]]:
    """(shared, pi-only, vf-only) layer widths of an SB2 net_arch."""
    shared: List[int] = []
    pi: List[int] = []
    vf: List[int] = []
    for layer in net_arch:
        if isinstance(layer, int):
            shared.append(layer)
        else:
            pi, vf = list(layer.get("pi", [])), list(layer.get("vf", []))
            break
    return shared, pi, vf


#: the scale of each kind of parameter's values (standard deviations of the normal draws)
VALUE_SCALES = {KERNEL: 0.5, BIAS: 0.1, LOG_STD: 0.3}


def make_parameters(observation: Space, action: Space, net_arch: List[Any], seed: int = 0,
                    dtype: str = "float32") -> "OrderedDict[str, np.ndarray]":
    """SB2 actor-critic parameters with random values, in SB2's order (`parameter_layouts`)."""
    rng = np.random.RandomState(seed)
    return OrderedDict((parameter.name, (rng.standard_normal(parameter.shape) * VALUE_SCALES[parameter.role]
                                         ).astype(dtype))
                       for parameter in actor_critic_mlp_layout(observation, action, net_arch))


def make_model(observation: str = "box_inf", action: str = "box", arch: str = "mixed", seed: int = 0,
               algorithm: str = "PPO2", activation: Optional[str] = None) -> ModelDescription:
    """A `ModelDescription` for one cell of the matrix (kinds are keys of the tables above)."""
    obs_space, act_space = observation_space(observation), action_space(action)
    kwargs: Dict[str, Any] = {} if activation is None else {"act_fun": {"name": activation}}
    return ModelDescription(algorithm, "MlpPolicy", kwargs, obs_space, act_space,
                            make_parameters(obs_space, act_space, NET_ARCHS[arch], seed), dict(PROVENANCE))


def make_sbif(observation: str = "box_inf", action: str = "box", arch: str = "mixed", seed: int = 0,
              algorithm: str = "PPO2", activation: Optional[str] = None) -> SbifFile:
    """A validated `SbifFile` for one cell of the matrix."""
    return build_sbif(make_model(observation, action, arch, seed, algorithm, activation))


def write_sbif(path: str, *args: Any, **kwargs: Any) -> str:
    """Build with `make_sbif(*args, **kwargs)`, write to `path` and return `path`."""
    make_sbif(*args, **kwargs).write(str(path))
    return str(path)


# -- raw container editing (to craft defective files without production code) ------------------------------------
def read_raw(path: str) -> Tuple[Dict[str, Any], bytes]:
    """(header as an ordered dict, data buffer) of a well-formed safetensors file."""
    import json

    with open(str(path), "rb") as handle:
        raw = handle.read()
    length = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + length].decode("utf-8")), raw[8 + length:]


def raw_bytes(header: Any, data: bytes = b"", header_bytes: Optional[bytes] = None) -> bytes:
    """A safetensors file: 8-byte little-endian header length, the header (JSON of `header` unless
    `header_bytes` is given), the data."""
    import json

    if header_bytes is None:
        header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return len(header_bytes).to_bytes(8, "little") + header_bytes + data


def write_raw(path: str, header: Any, data: bytes = b"", header_bytes: Optional[bytes] = None) -> str:
    with open(str(path), "wb") as handle:
        handle.write(raw_bytes(header, data, header_bytes))
    return str(path)


def rewrite_header(source: str, target: str, edit) -> str:
    """Copy `source` to `target`, letting `edit(header, data)` change the header dict in place; it may return
    new data bytes."""
    header, data = read_raw(source)
    new_data = edit(header, data)
    return write_raw(target, header, data if new_data is None else new_data)


def rewrite_document(source: str, target: str, edit) -> str:
    """Copy `source` to `target`, letting `edit(document)` change the SBIF document in place (it may also
    return a replacement, e.g. a string that is not JSON)."""
    import json

    def edit_header(header: Dict[str, Any], data: bytes) -> None:
        document = json.loads(header["__metadata__"]["sbif"])
        replaced = edit(document)
        document = document if replaced is None else replaced
        header["__metadata__"]["sbif"] = document if isinstance(document, str) else json.dumps(document)

    return rewrite_header(source, target, edit_header)
