"""SB2's `nature_cnn` (`common/policies.py`) as graph ops, for any parameter scope.

The actor-critic policies keep it under `model/`, DQN under `deepq/model/action_value/` (and SAC/TD3/DDPG under
`model/pi/`, `model/values_fn/...`); the layers and their names are the same everywhere: `c1..c3` (conv, ReLU)
then `fc1` (dense 512, ReLU).
"""
from __future__ import annotations

from typing import Any, Dict

from ..errors import ExportError, UnsupportedError
from .description import ModelDescription
from .graph_builder import GraphBuilder
from .parameter_layouts import LINEAR_LEAVES, NATURE_CNN_CONVOLUTIONS, NATURE_CNN_DENSE, variable
from .preprocess import flat_features, processed_observation


def check_cnn_kwargs(kwargs: Dict[str, Any]) -> None:
    """Refuse CNN settings SBIF cannot reproduce: a custom extractor, NCHW data or an unknown padding."""
    extractor = kwargs.get("cnn_extractor", "nature_cnn")
    if extractor != "nature_cnn":
        raise UnsupportedError("cnn_extractor {} is a custom feature extractor; SBIF exports SB2's nature_cnn "
                               "only".format(extractor))
    if kwargs.get("data_format", "NHWC") != "NHWC" or kwargs.get("pad", "VALID") not in ("VALID", "SAME"):
        raise UnsupportedError("nature_cnn with data_format={} pad={} is not supported".format(
            kwargs.get("data_format"), kwargs.get("pad")))


def policy_features(builder: GraphBuilder, model: ModelDescription, prefix: str, cnn: bool) -> str:
    """The features a feed-forward policy's layers read: nature_cnn under `prefix` on the scaled image (`cnn`),
    else the flattened processed observation."""
    processed = processed_observation(builder, model.observation_space, scale=cnn)
    if not cnn:
        return flat_features(builder, processed)
    check_cnn_kwargs(model.policy_kwargs)
    return nature_cnn(builder, processed, model.parameters, prefix, model.policy_kwargs.get("pad", "VALID"))


def nature_cnn(builder: GraphBuilder, images: str, params, prefix: str, padding: str = "VALID") -> str:
    """nature_cnn on `images` [B, H, W, C] with the parameters `{prefix}c1/w:0` ... `{prefix}fc1/b:0`
    (`parameter_layouts.nature_cnn_layout`): three ReLU convolutions, NHWC flatten, ReLU dense. Returns the
    features."""
    x = images
    weight_leaf, bias_leaf = LINEAR_LEAVES
    for scope, kernel, stride, _ in NATURE_CNN_CONVOLUTIONS:
        weight = parameter(params, variable(prefix + scope, weight_leaf))
        bias = parameter(params, variable(prefix + scope, bias_leaf))
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
    dense = prefix + NATURE_CNN_DENSE
    weight, bias = parameter(params, variable(dense, weight_leaf)), parameter(params, variable(dense, bias_leaf))
    x = builder.op("linear", [x, weight, bias], name=dense)
    return builder.op("relu", [x], name=dense + "/act")


def parameter(params, name: str) -> str:
    """`name`, or ExportError if the parameters lack it."""
    if name not in params:
        raise ExportError("parameter {} is missing: the file is incomplete or its policy is not one SBIF "
                          "knows".format(name))
    return name
