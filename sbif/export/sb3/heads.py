"""SB3's action distributions (`stable_baselines3/common/distributions.py`) and `BasePolicy.predict`'s
post-processing (unscaling or clipping Box actions) as graph ops; sampling is driven by noise inputs.

Each head declares `action` (SB3's `predict(deterministic=True)`), `action_sample` (a sample from the noise inputs,
post-processed the same way) or leaves sampling out, and returns the predict entries it decides.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from ...errors import ExportError
from ..description import Space
from ..distributions import NORMAL_NOISE, UNIFORM_NOISE, gumbel_argmax
from ..graph_builder import GraphBuilder

#: SAC's and TQC's bounds on the actor's log-std (`sac/policies.py`: LOG_STD_MIN, LOG_STD_MAX).
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
#: DQN's and QR-DQN's ε-greedy draws (SPEC section 5.9): one per request, shared by every row, then one per row.
EXPLORATION_DRAW = "noise_exploration"
RANDOM_ACTION = "noise_random_action"
#: MaskablePPO's action-mask input, and the logit a masked action gets (`MaskableCategorical.apply_masking`).
ACTION_MASK = "action_mask"
MASKED_LOGIT = -1e8


def masked_logits(builder: GraphBuilder, logits: str, mask: str) -> str:
    """`th.where(mask, logits, -1e8)`, as MaskableCategorical masks: a masked action's logit is -1e8 whatever the
    network gave (NaN included), an allowed one is the logit, bit for bit."""
    floor = builder.op("constant", [], {"value": float(np.float32(MASKED_LOGIT)), "dtype": "float32"},
                       name="action_mask/masked_logit")
    return builder.op("where", [mask, logits, floor], name="masked_logits")


def torch_argmax(builder: GraphBuilder, x: str, name: str) -> str:
    """`torch.argmax` over the last axis: the first NaN of a row when it has one (torch ranks NaN above everything),
    else the first largest element. SBIF's `argmax` never picks NaN (TF's rule), so the NaNs are found first: x is NaN
    exactly when neither x < FLT_MAX nor -FLT_MAX < x holds."""
    def constant(value: float, suffix: str) -> str:
        return builder.op("constant", [], {"value": value, "dtype": "float32"}, name="{}/{}".format(name, suffix))

    biggest = float(np.finfo(np.float32).max)
    one = constant(1.0, "one")

    def is_false(condition: str, suffix: str) -> str:
        flag = builder.op("cast", [condition], {"to": "float32"}, name="{}/{}".format(name, suffix))
        return builder.op("sub", [one, flag], name="{}/not_{}".format(name, suffix))

    below = is_false(builder.op("less", [x, constant(biggest, "max")], name=name + "/below_max_test"), "below_max")
    above = is_false(builder.op("less", [constant(-biggest, "lowest"), x], name=name + "/above_lowest_test"),
                     "above_lowest")
    nan = builder.op("mul", [below, above], name=name + "/nan")
    any_nan = builder.op("squeeze", [builder.op("less", [constant(0.0, "zero"), builder.op(
        "reduce_mean", [nan], name=name + "/nan_share")], name=name + "/has_nan_column")], {"axis": -1},
                         name=name + "/has_nan")
    return builder.op("where", [any_nan, builder.op("argmax", [nan], name=name + "/first_nan"),
                                builder.op("argmax", [x], name=name + "/largest")], name=name)


def categorical(builder: GraphBuilder, logits: str) -> Dict[str, Any]:
    """Categorical: the mode is the argmax of the probabilities (`th.argmax(probs)`), a sample Gumbel-max."""
    probabilities = builder.op("softmax", [logits], name="probabilities")
    builder.op("argmax", [probabilities], name="action")
    noise = builder.add_input(UNIFORM_NOISE, "float32", builder.spec(logits).shape, "noise", "uniform")
    gumbel_argmax(builder, logits, noise, "action_sample")
    _declare_discrete(builder, logits)
    return {"distribution": {"kind": "categorical", "parameters": {"logits": logits,
                                                                   "probabilities": probabilities}}}


def multi_categorical(builder: GraphBuilder, logits: str, nvec: List[int]) -> Dict[str, Any]:
    """One categorical per component on consecutive slices of the logits, stacked."""
    parts = builder.op("split", [logits], {"sizes": list(nvec), "axis": -1}, name="logits_split",
                       n_outputs=len(nvec)) if len(nvec) > 1 else [logits]
    noise = builder.add_input(UNIFORM_NOISE, "float32", builder.spec(logits).shape, "noise", "uniform")
    noises = builder.op("split", [noise], {"sizes": list(nvec), "axis": -1}, name="noise_split",
                        n_outputs=len(nvec)) if len(nvec) > 1 else [noise]
    probabilities = [builder.op("softmax", [part], name="probabilities{}".format(i)) for i, part in enumerate(parts)]
    modes = [builder.op("argmax", [p], name="mode{}".format(i)) for i, p in enumerate(probabilities)]
    samples = [gumbel_argmax(builder, part, u, "sample{}".format(i)) for i, (part, u) in enumerate(zip(parts, noises))]
    builder.op("stack", modes, {"axis": -1}, name="action")
    builder.op("stack", samples, {"axis": -1}, name="action_sample")
    joined = builder.op("concat", probabilities, {"axis": -1}, name="probabilities") if len(parts) > 1 \
        else probabilities[0]
    _declare_discrete(builder, logits, joined)
    return {"distribution": {"kind": "multi_categorical", "parameters": {"logits": logits, "probabilities": joined},
                             "nvec": list(nvec)}}


def bernoulli(builder: GraphBuilder, logits: str) -> Dict[str, Any]:
    """Bernoulli: the mode `round(probs)` (half to even) as float32, a sample `u < p`."""
    probabilities = builder.op("sigmoid", [logits], name="probabilities")
    builder.op("round_half_even", [probabilities], name="action")
    noise = builder.add_input(UNIFORM_NOISE, "float32", builder.spec(logits).shape, "noise", "uniform")
    below = builder.op("less", [noise, probabilities], name="action_sample/below")
    builder.op("cast", [below], {"to": "float32"}, name="action_sample")
    _declare_discrete(builder, logits)
    return {"distribution": {"kind": "bernoulli", "parameters": {"logits": logits, "probabilities": probabilities}}}


def diag_gaussian(builder: GraphBuilder, mean: str, log_std: str, space: Space) -> Dict[str, Any]:
    """DiagGaussian (A2C, PPO, TRPO on Box): the mode is the mean, a sample mean + exp(log_std)·z; both clipped.
    The std is SB3's `ones_like(mean) * exp(log_std)`: exp(log_std) on every row whatever the mean holds (NaN
    included), written as zeros shaped like the mean (`cast(less(mean, mean))`: false even for NaN) plus it."""
    rows = builder.op("cast", [builder.op("less", [mean, mean], name="std/never")], {"to": "float32"},
                      name="std/zero_rows")
    std = builder.op("add", [rows, builder.op("exp", [log_std], name="std/row")], name="std")
    noise = builder.add_input(NORMAL_NOISE, "float32", builder.spec(mean).shape, "noise", "normal")
    raw_sample = builder.op("add", [mean, builder.op("mul", [std, noise], name="scaled_noise")], name="raw_sample")
    box_action(builder, mean, space, False, "action")
    box_action(builder, raw_sample, space, False, "action_sample")
    builder.declare_output("action", "deterministic action: the mean, clipped to the action space bounds")
    builder.declare_output("action_sample", "sampled action: mean + std * noise_normal, clipped to the bounds")
    builder.declare_output(mean, "mean of the diagonal Gaussian (before clipping)")
    builder.declare_output(std, "standard deviation of the diagonal Gaussian, exp(log_std)")
    return {"distribution": {"kind": "diag_gaussian", "parameters": {"mean": mean, "std": std}}}


def squashed_gaussian(builder: GraphBuilder, mean: str, log_std: Optional[str], space: Space) -> Dict[str, Any]:
    """SquashedDiagGaussian (SAC, TQC): tanh of the mean, or of mean + exp(clip(log_std, -20, 2))·z, unscaled to
    the bounds. No `distribution`: the squashed density is not one SBIF's action_probability describes."""
    builder.op("tanh", [mean], name="squashed")
    box_action(builder, "squashed", space, True, "action")
    builder.declare_output("action", "deterministic action: tanh of the mean, unscaled to the action space bounds")
    builder.declare_output(mean, "mean of the Gaussian before squashing")
    if log_std is None:
        return {}
    low = builder.op("constant", [], {"value": LOG_STD_MIN, "dtype": "float32"}, name="log_std_min")
    high = builder.op("constant", [], {"value": LOG_STD_MAX, "dtype": "float32"}, name="log_std_max")
    clipped = builder.op("clip", [log_std, low, high], name="log_std_clipped")
    std = builder.op("exp", [clipped], name="std")
    noise = builder.add_input(NORMAL_NOISE, "float32", builder.spec(mean).shape, "noise", "normal")
    raw = builder.op("add", [mean, builder.op("mul", [std, noise], name="scaled_noise")], name="raw_sample")
    squashed = builder.op("tanh", [raw], name="squashed_sample")
    box_action(builder, squashed, space, True, "action_sample")
    builder.declare_output("action_sample", "sampled action: tanh(mean + std * noise_normal), unscaled")
    builder.declare_output(std, "standard deviation of the Gaussian before squashing")
    return {"stochastic_action": "action_sample"}


def box_action(builder: GraphBuilder, raw: str, space: Space, squash_output: bool, name: str) -> str:
    """`BasePolicy.predict` on Box actions, in NumPy's dtype (float32 with a float32 space): with `squash_output`,
    `low + (0.5 * (a + 1.0) * (high - low))` in that order, else `np.clip(a, low, high)`. The action stays flat,
    `[B, prod(shape)]`, as the network gives it (bounds flattened to match); the runtime reshapes it to the space's
    shape as SB3's predict does (SPEC section 5.9)."""
    if space.kind != "box":
        raise ExportError("a continuous action head needs a Box action space, not {}".format(space.kind))
    dtype = np.result_type(np.float32, np.dtype(space.dtype)).name
    x = raw if dtype == "float32" else builder.op("cast", [raw], {"to": dtype}, name=name + "/cast")
    low = builder.constant_tensor("action_low", space.low.astype(dtype).reshape(-1)) if "sbif/action_low" not in builder.specs \
        else "sbif/action_low"
    if squash_output:
        if "sbif/action_range" not in builder.specs:
            builder.constant_tensor("action_range", (space.high - space.low).astype(dtype).reshape(-1))
        one = builder.op("constant", [], {"value": 1.0, "dtype": dtype}, name=name + "/one")
        half = builder.op("constant", [], {"value": 0.5, "dtype": dtype}, name=name + "/half")
        shifted = builder.op("add", [x, one], name=name + "/plus_one")
        halved = builder.op("mul", [half, shifted], name=name + "/half_of")
        spread = builder.op("mul", [halved, "sbif/action_range"], name=name + "/spread")
        return builder.op("add", [low, spread], name=name)
    high = builder.constant_tensor("action_high", space.high.astype(dtype).reshape(-1)) if "sbif/action_high" not in \
        builder.specs else "sbif/action_high"
    return builder.op("clip", [x, low, high], name=name)


def epsilon_greedy(builder: GraphBuilder, greedy: str, n_actions: int, exploration_rate: float) -> Dict[str, Any]:
    """DQN's and QR-DQN's `predict(deterministic=False)`: with probability ε (one draw per call, shared by the rows)
    every row takes a uniformly random action (drawn per row), else the greedy one. The random action is the j
    with j ≤ u·n < j + 1 (u < 1 makes u·n < n in float32: SPEC section 5.9). Written in float32 ops on one-hot rows
    and an argmax (exactly one entry of the row is 1), which every backend computes natively."""
    draw = builder.add_input(EXPLORATION_DRAW, "float32", [None], "noise", "uniform")
    uniform = builder.add_input(RANDOM_ACTION, "float32", [None], "noise", "uniform")

    def constant(value: float, name: str) -> str:
        return builder.op("constant", [], {"value": value, "dtype": "float32"}, name=name)

    epsilon = constant(float(np.float32(exploration_rate)), "exploration_rate")
    explore = builder.op("expand_dims", [builder.op("cast", [builder.op("less", [draw, epsilon], name="explore/drawn")],
                                                    {"to": "float32"}, name="explore/flag")],
                         {"axis": -1}, name="explore")
    keep = builder.op("sub", [constant(1.0, "explore/one"), explore], name="explore/keep")
    scaled = builder.op("expand_dims", [builder.op("mul", [uniform, constant(float(n_actions), "n_actions")],
                                                   name="random/scaled")], {"axis": -1}, name="random/column")
    below = builder.constant_tensor("random_action_floor", np.arange(n_actions, dtype=np.float32))
    above = builder.constant_tensor("random_action_ceiling", np.arange(1, n_actions + 1, dtype=np.float32))

    def indicator(x: str, bound: str, name: str) -> str:
        return builder.op("cast", [builder.op("less", [x, bound], name=name + "/less")], {"to": "float32"}, name=name)

    random = builder.op("sub", [indicator(scaled, above, "random/below_ceiling"),
                                indicator(scaled, below, "random/below_floor")], name="random/one_hot")
    greedy_row = builder.op("one_hot", [greedy], {"depth": n_actions}, name="greedy/one_hot")
    chosen = builder.op("add", [builder.op("mul", [greedy_row, keep], name="greedy/kept"),
                                builder.op("mul", [random, explore], name="random/kept")], name="explore/choice")
    builder.op("argmax", [chosen], name="action_sample")
    builder.declare_output("action_sample", "ε-greedy action: a random one when noise_exploration < the saved "
                                            "exploration rate, else the greedy one")
    return {"stochastic_action": "action_sample", "shared_noise": [EXPLORATION_DRAW]}


def _declare_discrete(builder: GraphBuilder, logits: str, probabilities: str = "probabilities") -> None:
    builder.declare_output("action", "deterministic action (the distribution's mode)")
    builder.declare_output("action_sample", "action sampled with the noise inputs")
    builder.declare_output(logits, "distribution logits")
    builder.declare_output(probabilities, "action probabilities")
