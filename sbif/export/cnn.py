"""SB2's `nature_cnn` (`common/policies.py`) as graph ops, for any parameter scope.

The actor-critic policies keep it under `model/`, DQN under `deepq/model/action_value/` (and SAC/TD3/DDPG under
`model/pi/`, `model/values_fn/...`); the layers and their names are the same everywhere: `c1..c3` (conv, ReLU)
then `fc1` (dense 512, ReLU).
"""
from __future__ import annotations

from typing import Any, Dict

from ..errors import ExportError, UnsupportedError
from .graph_builder import GraphBuilder

#: scope, kernel size, stride of nature_cnn's convolutions (ReLU after each), then fc1 (512 units, ReLU)
NATURE_CNN = (("c1", 8, 4), ("c2", 4, 2), ("c3", 3, 1))


def check_cnn_kwargs(kwargs: Dict[str, Any]) -> None:
    """Refuse CNN settings SBIF cannot reproduce: a custom extractor, NCHW data or an unknown padding."""
    extractor = kwargs.get("cnn_extractor", "nature_cnn")
    if extractor != "nature_cnn":
        raise UnsupportedError("cnn_extractor {} is a custom feature extractor; SBIF exports SB2's nature_cnn "
                               "only".format(extractor))
    if kwargs.get("data_format", "NHWC") != "NHWC" or kwargs.get("pad", "VALID") not in ("VALID", "SAME"):
        raise UnsupportedError("nature_cnn with data_format={} pad={} is not supported".format(
            kwargs.get("data_format"), kwargs.get("pad")))


def nature_cnn(builder: GraphBuilder, images: str, params, prefix: str, padding: str = "VALID") -> str:
    """nature_cnn on `images` [B, H, W, C] with the parameters `{prefix}c1/w:0` ... `{prefix}fc1/b:0`:
    three ReLU convolutions (8x8/4, 4x4/2, 3x3/1), NHWC flatten, ReLU dense of 512. Returns the features."""
    x = images
    for scope, kernel, stride in NATURE_CNN:
        weight, bias = parameter(params, prefix + scope + "/w:0"), parameter(params, prefix + scope + "/b:0")
        if tuple(params[weight].shape[:2]) != (kernel, kernel):
            raise UnsupportedError("layer {} has a {}x{} kernel but nature_cnn uses {}x{}: a custom cnn_extractor "
                                   "cannot be exported".format(prefix + scope, params[weight].shape[0],
                                                               params[weight].shape[1], kernel, kernel))
        # SB2 stores conv biases as [1, C, 1, 1] (or [C] with one_dim_bias) and adds them per channel
        flat_bias = builder.op("reshape", [bias], {"shape": [int(params[weight].shape[3])]},
                               name=prefix + scope + "/bias")
        x = builder.op("conv2d", [x, weight, flat_bias], {"strides": [stride, stride], "padding": padding},
                       name=prefix + scope)
        x = builder.op("relu", [x], name=prefix + scope + "/act")
    x = builder.op("flatten", [x], name=prefix + "conv_to_fc")
    weight, bias = parameter(params, prefix + "fc1/w:0"), parameter(params, prefix + "fc1/b:0")
    x = builder.op("linear", [x, weight, bias], name=prefix + "fc1")
    return builder.op("relu", [x], name=prefix + "fc1/act")


def parameter(params, name: str) -> str:
    if name not in params:
        raise ExportError("parameter {} is missing: the file is incomplete or its policy is not one SBIF "
                          "knows".format(name))
    return name
