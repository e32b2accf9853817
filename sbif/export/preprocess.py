"""Observation input and preprocessing as graph ops, exactly as SB2's `observation_input` builds them."""
from __future__ import annotations

import numpy as np

from ..format.document import encode_bound
from .description import Space
from .graph_builder import GraphBuilder

OBS = "obs"


def space_document(space: Space) -> dict:
    """The document form of a space (bounds written exactly)."""
    if space.kind == "dict":
        return {"kind": "dict", "spaces": [{"key": key, "space": space_document(sub)}
                                           for key, sub in space.spaces.items()]}
    if space.kind == "box":
        return {"kind": "box", "shape": list(space.shape), "dtype": space.dtype,
                "low": encode_bound(space.low), "high": encode_bound(space.high)}
    if space.kind == "multi_discrete":
        return {"kind": "multi_discrete", "nvec": list(space.nvec)}
    return {"kind": space.kind, "n": space.n}


def observation_input(builder: GraphBuilder, space: Space) -> str:
    """Declare the `obs` input with SB2's placeholder dtype: the Box dtype, else int32. With VecNormalize
    statistics, the input is the raw float64 observation and the value returned is the normalized one."""
    if space.kind == "box" and builder.observation_normalization is not None:
        from .normalization import normalized_observation

        obs = builder.add_input(OBS, "float64", (None,) + space.shape, "observation")
        return normalized_observation(builder, obs, space, builder.observation_normalization)
    if space.kind == "box":
        return builder.add_input(OBS, space.dtype, (None,) + space.shape, "observation")
    if space.kind == "discrete":
        return builder.add_input(OBS, "int32", (None,), "observation")
    width = len(space.nvec) if space.kind == "multi_discrete" else space.n
    return builder.add_input(OBS, "int32", (None, width), "observation")


def processed_observation(builder: GraphBuilder, space: Space, scale: bool) -> str:
    """SB2's `processed_obs`: one-hot for Discrete/MultiDiscrete, float32 cast, and min-max scaling of Box
    observations when `scale` is set and the bounds are finite and not all equal (`common/input.py`)."""
    obs = observation_input(builder, space)
    if space.kind == "discrete":
        return builder.op("one_hot", [obs], {"depth": space.n}, name="input/one_hot")
    if space.kind == "multi_discrete":
        columns = builder.op("split", [obs], {"sizes": [1] * len(space.nvec), "axis": -1},
                             name="input/columns", n_outputs=len(space.nvec)) if len(space.nvec) > 1 else [obs]
        encoded = [builder.op("one_hot", [column], {"depth": depth}, name="input/one_hot{}".format(i))
                   for i, (column, depth) in enumerate(zip(columns, space.nvec))]
        return encoded[0] if len(encoded) == 1 else builder.op("concat", encoded, {"axis": -1}, name="input/one_hot")
    x = builder.op("cast", [obs], {"to": "float32"}, name="input/float")
    if space.kind == "box" and scale and should_scale(space):
        low = builder.constant_tensor("observation_low", space.low.astype(np.float32))
        span = builder.constant_tensor("observation_range", (space.high - space.low).astype(np.float32))
        shifted = builder.op("sub", [x, low], name="input/shifted")
        x = builder.op("div", [shifted, span], name="input/scaled")
    return x


def should_scale(space: Space) -> bool:
    """SB2 scales only when no bound is infinite and some bound pair differs."""
    with np.errstate(over="ignore", invalid="ignore"):
        return (not np.any(np.isinf(space.low)) and not np.any(np.isinf(space.high))
                and bool(np.any((space.high - space.low) != 0)))


def flat_features(builder: GraphBuilder, processed: str) -> str:
    """`tf.layers.flatten`: C-order reshape to [batch, features]."""
    if len(builder.spec(processed).shape) == 2:
        return processed
    return builder.op("flatten", [processed], name="input/flat")
