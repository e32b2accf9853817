"""The steps of SB2's hidden layers as graph ops, shared by every policy family (like `cnn.py` for nature_cnn).

A hidden layer is a dense layer, then (DQN's and the off-policy towers, when `layer_norm` is set) TensorFlow's
contrib layer norm, then the policy's activation. The families name their parameters and nodes differently
and check them in their own order, so each keeps its loop over the layers and calls these for the steps.
"""
from __future__ import annotations

from typing import Any, Dict

from .graph_builder import GraphBuilder

#: tf.contrib.layers.layer_norm's variance epsilon (`nn.batch_normalization(..., variance_epsilon=1e-12)`)
CONTRIB_LAYER_NORM_EPSILON = 1e-12


def activate(builder: GraphBuilder, x: str, activation: Dict[str, Any], name: str) -> str:
    """`activation` ({"name": op, **attrs}, as the kwargs' `act_fun` resolves) on x; "identity" adds no node."""
    if activation["name"] == "identity":
        return x
    attrs = {key: value for key, value in activation.items() if key != "name"}
    return builder.op(activation["name"], [x], attrs, name=name)


def contrib_layer_norm(builder: GraphBuilder, x: str, gamma: str, beta: str, name: str) -> str:
    """tf.contrib.layers.layer_norm over the last axis with the parameters `gamma` and `beta`."""
    return builder.op("layer_norm", [x, gamma, beta], {"epsilon": CONTRIB_LAYER_NORM_EPSILON}, name=name)
