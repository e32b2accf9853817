"""SB2's action distributions (`common/distributions.py`) as graph ops, with sampling driven by noise inputs.

Each head declares: `action` (the mode, post-processed as SB2's predict does), `action_sample` (a sample made
from explicit noise), the distribution parameters, and returns the `predict.distribution` entry.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..errors import ExportError
from .description import Space
from .graph_builder import GraphBuilder

UNIFORM_NOISE = "noise_uniform"
NORMAL_NOISE = "noise_normal"


def distribution_head(builder: GraphBuilder, space: Space, flat: str, logstd: str = "") -> Dict[str, Any]:
    """Build the outputs of the distribution over `space` whose flat parameters are `flat` [B, A']."""
    if space.kind == "discrete":
        return _categorical(builder, flat)
    if space.kind == "multi_discrete":
        return _multi_categorical(builder, flat, space.nvec)
    if space.kind == "multi_binary":
        return _bernoulli(builder, flat)
    if space.kind == "box":
        return _diag_gaussian(builder, flat, logstd, space)
    raise ExportError("no SB2 distribution for a {} action space".format(space.kind))


def gumbel_argmax(builder: GraphBuilder, logits: str, noise: str, name: str) -> str:
    """SB2's Gumbel-max sample: argmax(logits - log(-log(u))), u ~ U[0, 1)."""
    log_u = builder.op("log", [noise], name=name + "/log_u")
    gumbel = builder.op("log", [builder.op("neg", [log_u], name=name + "/neg_log_u")], name=name + "/neg_gumbel")
    return builder.op("argmax", [builder.op("sub", [logits, gumbel], name=name + "/perturbed")], name=name)


def _categorical(builder: GraphBuilder, logits: str) -> Dict[str, Any]:
    builder.op("argmax", [logits], name="action")
    noise = builder.add_input(UNIFORM_NOISE, "float32", builder.spec(logits).shape, "noise", "uniform")
    gumbel_argmax(builder, logits, noise, "action_sample")
    builder.op("softmax", [logits], name="probabilities")
    _declare(builder, logits)
    return {"kind": "categorical", "parameters": {"logits": logits, "probabilities": "probabilities"}}


def _multi_categorical(builder: GraphBuilder, logits: str, nvec: list) -> Dict[str, Any]:
    parts = builder.op("split", [logits], {"sizes": list(nvec), "axis": -1}, name="logits_split",
                       n_outputs=len(nvec)) if len(nvec) > 1 else [logits]
    noise = builder.add_input(UNIFORM_NOISE, "float32", builder.spec(logits).shape, "noise", "uniform")
    noises = builder.op("split", [noise], {"sizes": list(nvec), "axis": -1}, name="noise_split",
                        n_outputs=len(nvec)) if len(nvec) > 1 else [noise]
    modes = [builder.op("argmax", [part], name="mode{}".format(i)) for i, part in enumerate(parts)]
    samples = [gumbel_argmax(builder, part, u, "sample{}".format(i)) for i, (part, u) in enumerate(zip(parts, noises))]
    names = ["probabilities"] if len(parts) == 1 else ["probabilities{}".format(i) for i in range(len(parts))]
    probabilities = [builder.op("softmax", [part], name=name) for part, name in zip(parts, names)]
    builder.op("stack", modes, {"axis": -1}, name="action")
    builder.op("stack", samples, {"axis": -1}, name="action_sample")
    if len(parts) > 1:
        builder.op("concat", probabilities, {"axis": -1}, name="probabilities")
    _declare(builder, logits)
    return {"kind": "multi_categorical", "parameters": {"logits": logits, "probabilities": "probabilities"},
            "nvec": list(nvec)}


def _bernoulli(builder: GraphBuilder, logits: str) -> Dict[str, Any]:
    probabilities = builder.op("sigmoid", [logits], name="probabilities")
    builder.op("round_half_even", [probabilities], name="action")
    noise = builder.add_input(UNIFORM_NOISE, "float32", builder.spec(logits).shape, "noise", "uniform")
    below = builder.op("less", [noise, probabilities], name="action_sample/below")
    builder.op("cast", [below], {"to": "float32"}, name="action_sample")
    _declare(builder, logits)
    return {"kind": "bernoulli", "parameters": {"logits": logits, "probabilities": "probabilities"}}


def _diag_gaussian(builder: GraphBuilder, mean: str, logstd: str, space: Space) -> Dict[str, Any]:
    # SB2 writes std = exp(mean * 0.0 + logstd): the product keeps NaN/inf of the mean, so we keep it too.
    zero = builder.op("constant", [], {"value": 0.0, "dtype": "float32"}, name="zero")
    masked = builder.op("add", [builder.op("mul", [mean, zero], name="mean_times_zero"), logstd], name="log_std")
    std = builder.op("exp", [masked], name="std")
    noise = builder.add_input(NORMAL_NOISE, "float32", builder.spec(mean).shape, "noise", "normal")
    raw_sample = builder.op("add", [mean, builder.op("mul", [std, noise], name="scaled_noise")], name="raw_sample")
    # predict() clips Box actions with np.clip(actions, low, high): the result has NumPy's promoted dtype.
    dtype = np.result_type(np.float32, np.dtype(space.dtype)).name
    low = builder.constant_tensor("action_low", space.low.astype(dtype))
    high = builder.constant_tensor("action_high", space.high.astype(dtype))
    for raw, name in ((mean, "action"), (raw_sample, "action_sample")):
        if dtype != "float32":
            raw = builder.op("cast", [raw], {"to": dtype}, name=name + "/cast")
        builder.op("clip", [raw, low, high], name=name)
    builder.declare_output("action", "deterministic action: the mean, clipped to the action space bounds")
    builder.declare_output("action_sample", "sampled action: mean + std * noise_normal, clipped to the bounds")
    builder.declare_output(mean, "mean of the diagonal Gaussian (before clipping)")
    builder.declare_output(std, "standard deviation of the diagonal Gaussian, exp(logstd)")
    return {"kind": "diag_gaussian", "parameters": {"mean": mean, "std": std}}


def _declare(builder: GraphBuilder, logits: str) -> None:
    builder.declare_output("action", "deterministic action (the distribution's mode)")
    builder.declare_output("action_sample", "action sampled with the noise inputs")
    builder.declare_output(logits, "distribution logits")
    builder.declare_output("probabilities", "action probabilities, as SB2's action_probability")
