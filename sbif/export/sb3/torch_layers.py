"""SB3's building blocks (`stable_baselines3/common/torch_layers.py`, `preprocessing.py`) as graph ops over the
policy's own tensors.

Tensors stay as torch saved them (SPEC section 1, Layout): a Linear weight `[out, in]` reaches `linear` through a
`transpose` node, a conv kernel OIHW becomes HWIO and the CHW image NHWC around `conv2d`, and NatureCNN's output goes
back to CHW before it is flattened, as torch flattens it. Structure is read from the state dict's keys and shapes,
never assumed from defaults: a Sequential built by `create_mlp` holds its Linear layers at indices 0, 2, 4, ...,
each followed by the activation except an output layer.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Dict, List, Sequence, Set, Tuple

import numpy as np

from ...errors import ExportError, UnsupportedError, preview
from ..description import Space
from ..graph_builder import GraphBuilder
from ..mlp import activate as activate_op
from ..normalization import KeyedNormalization, normalized_observation
from .description import ClassName
from .policy_classes import ACTIVATION_MODULE, ACTIVATIONS, COMBINED, FLATTEN, IDENTITY_MODULE, NATURE_CNN

OBS = "obs"
#: NatureCNN's strides (its kernel sizes, 8, 4 and 3, are read from the weights): `NatureCNN.__init__`.
NATURE_CNN_STRIDES = (4, 2, 1)
#: NatureCNN's layers in its Sequential `cnn`: Conv2d at 0, 2 and 4, each followed by ReLU.
NATURE_CNN_CONVS = (0, 2, 4)
#: torch's GELU scales x by M_SQRT1_2 (1/√2) before erf, as a float32 constant.
GELU_ALPHA = 0.7071067811865476
#: The value SB3 divides image observations by (`preprocess_obs`: `obs.float() / 255.0`).
IMAGE_SCALE = 255.0
#: Layouts: torch's [out, in] Linear weight -> linear's [in, out]; OIHW -> HWIO; NCHW <-> NHWC.
LINEAR_WEIGHT_PERM = [1, 0]
CONV_WEIGHT_PERM = [2, 3, 1, 0]
TO_CHANNELS_LAST = [0, 2, 3, 1]
TO_CHANNELS_FIRST = [0, 3, 1, 2]


def is_image_space(space: Space, normalized_image: bool = False) -> bool:
    """SB3's `is_image_space` (check_channels=False): a 3-D uint8 Box with every low 0 and every high 255; with
    `normalized_image`, any 3-D Box."""
    if space.kind != "box" or len(space.shape) != 3:
        return False
    return normalized_image or (space.dtype == "uint8" and bool(np.all(space.low == 0))
                                and bool(np.all(space.high == 255)))


def activate(builder: GraphBuilder, x: str, activation: Dict[str, Any], name: str) -> str:
    """The activation `activation` (an entry of ACTIVATIONS) on x: one op, or torch's composition of ops —
    Hardtanh `clip(x, -1, 1)`; Hardswish `x·relu6(x + 3) / 6` in torch's order; Mish `x·tanh(softplus(x))`; GELU
    (exact) `(x·0.5)·(1 + erf(x·√½))` in torch's order (`GeluKernelImpl`)."""
    composite = activation.get("composite")
    if composite is None:
        return activate_op(builder, x, activation, name)

    def constant(value: float, suffix: str) -> str:
        return builder.op("constant", [], {"value": value, "dtype": "float32"}, name="{}/{}".format(name, suffix))

    if composite == "hardtanh":
        return builder.op("clip", [x, constant(-1.0, "low"), constant(1.0, "high")], name=name)
    if composite == "hardswish":
        gate = builder.op("relu6", [builder.op("add", [x, constant(3.0, "three")], name=name + "/shifted")],
                          name=name + "/gate")
        return builder.op("div", [builder.op("mul", [x, gate], name=name + "/gated"), constant(6.0, "six")],
                          name=name)
    if composite == "gelu":
        scaled = builder.op("mul", [x, constant(float(np.float32(GELU_ALPHA)), "sqrt_half")], name=name + "/scaled")
        shifted = builder.op("add", [constant(1.0, "one"), builder.op("erf", [scaled], name=name + "/erf")],
                             name=name + "/shifted")
        half = builder.op("mul", [x, constant(0.5, "half")], name=name + "/halved")
        return builder.op("mul", [half, shifted], name=name)
    softplus = builder.op("softplus", [x], name=name + "/softplus")
    return builder.op("mul", [x, builder.op("tanh", [softplus], name=name + "/tanh")], name=name)


def activation_op(value: Any, default: str) -> Dict[str, Any]:
    """The SBIF op of an `activation_fn` (a ClassName, or None for the policy's default class name)."""
    if value is None:
        value = ClassName(ACTIVATION_MODULE, default)
    if not isinstance(value, ClassName) or value.module not in (ACTIVATION_MODULE, IDENTITY_MODULE) \
            or value.name not in ACTIVATIONS:
        raise UnsupportedError("activation_fn {} has no SBIF op (supported: torch.nn.{})".format(
            preview(str(value)), ", torch.nn.".join(sorted(ACTIVATIONS))))
    return dict(ACTIVATIONS[value.name])


class TorchGraph:
    """A GraphBuilder over a state dict: finds torch's parameters by name, lays them out for SBIF's ops and records
    which were used, so that a parameter no builder understood is an error rather than a silently ignored layer."""

    def __init__(self, builder: GraphBuilder, parameters: "OrderedDict[str, np.ndarray]"):
        self.builder = builder
        self.parameters = parameters
        self.used: Set[str] = set()
        self._laid_out: Dict[str, str] = {}

    def has(self, name: str) -> bool:
        return name in self.parameters

    def tensor(self, name: str) -> str:
        if name not in self.parameters:
            raise ExportError("the policy has no parameter {} (a layer the {} graph needs)".format(
                preview(name), "SB3"))
        self.used.add(name)
        return name

    def laid_out(self, name: str, perm: List[int]) -> str:
        """`name` transposed by `perm`, one node per tensor however often it is used."""
        key = "{}@{}".format(name, perm)
        if key not in self._laid_out:
            tensor = self.tensor(name)
            if len(self.parameters[name].shape) != len(perm):
                raise ExportError("parameter {} has shape {}, expected rank {}".format(
                    name, list(self.parameters[name].shape), len(perm)))
            self._laid_out[key] = self.builder.op("transpose", [tensor], {"perm": perm}, name=name + "/laid_out")
        return self._laid_out[key]

    def linear(self, x: str, prefix: str, name: str = "") -> str:
        """torch's Linear `prefix` on x: x @ weight.T + bias (no bias: a product alone); the node is `name` (default:
        the layer's own name)."""
        weight = self.laid_out(prefix + ".weight", LINEAR_WEIGHT_PERM)
        if self.has(prefix + ".bias"):
            return self.builder.op("linear", [x, weight, self.tensor(prefix + ".bias")], name=name or prefix)
        return self.builder.op("matmul", [x, weight], name=name or prefix)

    def sequential_modules(self, prefix: str) -> List[Tuple[int, str]]:
        """The modules of the Sequential `prefix` that hold parameters, as (index, kind) in order: kind 'linear'
        (a 2-D `weight`) or 'batch_renorm' (sb3-contrib's BatchRenorm: `ra_mean`). The modules without parameters
        (activations) sit in the gaps of the indices."""
        pattern = re.compile(r"^{}\.(\d+)\.([A-Za-z_]+)$".format(re.escape(prefix)))
        found: Dict[int, Set[str]] = {}
        for name in self.parameters:
            match = pattern.match(name)
            if match:
                found.setdefault(int(match.group(1)), set()).add(match.group(2))
        modules = []
        for index in sorted(found):
            keys = found[index]
            if "ra_mean" in keys:
                modules.append((index, "batch_renorm"))
            elif "weight" in keys and len(self.parameters["{}.{}.weight".format(prefix, index)].shape) == 2:
                modules.append((index, "linear"))
            else:
                raise ExportError("{}.{} holds {}: neither a Linear nor a BatchRenorm layer".format(
                    prefix, index, ", ".join(sorted(keys))))
        return modules

    def mlp(self, x: str, prefix: str, activation: Dict[str, Any], output_layer: bool, output_name: str = "",
            batch_norm_eps: float = 0.0) -> str:
        """A Sequential `prefix` built by create_mlp: Linear layers (BatchRenorm ones before them, CrossQ's), each
        Linear followed by the activation — which holds no parameters, so it is where the indices leave a gap of
        one — except the output layer when the network has one (create_mlp with output_dim > 0), whose node is then
        `output_name` if given. An empty Sequential is the identity."""
        modules = self.sequential_modules(prefix)
        for position, (index, kind) in enumerate(modules):
            layer = "{}.{}".format(prefix, index)
            following = modules[position + 1][0] if position + 1 < len(modules) else None
            last = following is None
            if kind == "batch_renorm":
                x = self.batch_renorm(x, layer, batch_norm_eps)
            else:
                x = self.linear(x, layer, output_name if last and output_layer else "")
            activated = kind == "linear" and not (last and output_layer)
            if following is not None and following - index - 1 != int(activated):
                raise ExportError("{}: the layers sit at indices {}; create_mlp puts one activation after each "
                                  "Linear layer".format(prefix, [i for i, _ in modules]))
            if activated:
                x = activate(self.builder, x, activation, layer + "/act")
        return x

    def batch_renorm(self, x: str, layer: str, eps: float) -> str:
        """sb3-contrib's BatchRenorm in evaluation mode: (x - ra_mean) / sqrt(ra_var + eps), then scale and bias.
        sqrt(ra_var + eps) is a constant, computed in float32 as torch computes it (a rounded sum, then a correctly
        rounded square root: the same bits)."""
        builder = self.builder
        variance = self.parameters[self.tensor(layer + ".ra_var")]
        self.tensor(layer + ".steps")  # training's counter: evaluation never reads it
        std = builder.constant_tensor(layer + "/std", np.sqrt(variance + np.asarray(eps, variance.dtype)))
        centered = builder.op("sub", [x, self.tensor(layer + ".ra_mean")], name=layer + "/centered")
        x = builder.op("div", [centered, std], name=layer + "/normalized")
        if self.has(layer + ".scale"):
            x = builder.op("mul", [self.tensor(layer + ".scale"), x], name=layer + "/scaled")
            x = builder.op("add", [x, self.tensor(layer + ".bias")], name=layer)
        return x

    def unused(self, ignored: Sequence[str] = ()) -> List[str]:
        """Parameters no step used, apart from those under the `ignored` prefixes (target networks, critics)."""
        return [name for name in self.parameters if name not in self.used
                and not any(name.startswith(prefix) for prefix in ignored)]


def observation_input(graph: TorchGraph, space: Space, name: str = OBS, normalized: bool = True) -> str:
    """The `obs` input SB3's contract feeds (SPEC section 3.2): float32 for Box and MultiBinary (SB3's `.float()`),
    int32 indices for Discrete and MultiDiscrete; with VecNormalize statistics (unless `normalized` is false: a dict
    key VecNormalize leaves alone), the raw float64 observation, normalized and cast to float32 as
    VecNormalize.normalize_obs does."""
    builder = graph.builder
    statistics = builder.observation_normalization if normalized else None
    if statistics is not None and (space.kind != "box" or isinstance(statistics, KeyedNormalization)):
        raise ExportError("the VecNormalize statistics ({}) do not fit the model's {} observations".format(
            "per key of a dict space" if isinstance(statistics, KeyedNormalization) else "one array",
            space.kind if space.kind != "box" else "Box"))
    if space.kind == "box" and statistics is not None:
        obs = builder.add_input(name, "float64", (None,) + space.shape, "observation")
        return normalized_observation(builder, obs, space, builder.observation_normalization, "float32")
    if space.kind == "box":
        return builder.add_input(name, "float32", (None,) + space.shape, "observation")
    if space.kind == "discrete":
        return builder.add_input(name, "int32", (None,), "observation")
    if space.kind == "multi_discrete":
        return builder.add_input(name, "int32", (None, len(space.nvec)), "observation")
    return builder.add_input(name, "float32", (None, space.n), "observation")


def preprocessed_observation(graph: TorchGraph, space: Space, obs: str, normalize_images: bool) -> str:
    """SB3's `preprocess_obs`: images divided by 255 (when `normalize_images`), Discrete and MultiDiscrete one-hot.
    Nodes are named after the input (`obs/KEY/...` for a dict space's keys)."""
    builder = graph.builder
    stem = "preprocess" if obs == OBS else obs + "/preprocess"
    if space.kind == "discrete":
        return builder.op("one_hot", [obs], {"depth": space.n}, name=stem + "/one_hot")
    if space.kind == "multi_discrete":
        columns = builder.op("split", [obs], {"sizes": [1] * len(space.nvec), "axis": -1},
                             name=stem + "/columns", n_outputs=len(space.nvec)) if len(space.nvec) > 1 else [obs]
        encoded = []
        for index, (column, depth) in enumerate(zip(columns, space.nvec)):
            flat = builder.op("squeeze", [column], {"axis": -1}, name=stem + "/column{}".format(index))
            encoded.append(builder.op("one_hot", [flat], {"depth": depth}, name=stem + "/one_hot{}".format(index)))
        return encoded[0] if len(encoded) == 1 else builder.op("concat", encoded, {"axis": -1},
                                                               name=stem + "/one_hot")
    if space.kind == "box" and normalize_images and is_image_space(space):
        scale = "sbif/image_scale" if "sbif/image_scale" in builder.specs else builder.constant_tensor(
            "image_scale", np.array(IMAGE_SCALE, np.float32))
        return builder.op("div", [obs, scale], name=stem + "/image")
    return obs


def features(graph: TorchGraph, processed: Any, extractor: str, prefix: str, space: Space,
             normalized_image: bool = False) -> str:
    """The feature extractor `extractor` whose parameters are under `prefix`: FlattenExtractor, NatureCNN, or (a
    dict space, `processed` then maps each key to its preprocessed input) CombinedExtractor: per key in order, an
    image space through its own NatureCNN (`extractors.KEY`), anything else flattened; concatenated."""
    builder = graph.builder
    if extractor == COMBINED:
        if space.kind != "dict":
            raise UnsupportedError("CombinedExtractor takes dict observations, not {}".format(space.kind))
        parts = []
        for key, sub in space.spaces.items():
            if is_image_space(sub, normalized_image):
                parts.append(nature_cnn(graph, processed[key], "{}.extractors.{}".format(prefix, key)))
            else:
                parts.append(_flat(builder, processed[key], "{}.extractors.{}".format(prefix, key)))
        return parts[0] if len(parts) == 1 else builder.op("concat", parts, {"axis": -1}, name=prefix + "/concat")
    if space.kind == "dict":
        raise UnsupportedError("dict observations need CombinedExtractor, not {}".format(preview(extractor)))
    if extractor == FLATTEN:
        return _flat(builder, processed, prefix)
    if extractor != NATURE_CNN:
        raise UnsupportedError("the feature extractor {} is not supported by this SBIF version yet".format(
            preview(extractor)))
    return nature_cnn(graph, processed, prefix)


def _flat(builder: GraphBuilder, x: str, prefix: str) -> str:
    return x if len(builder.spec(x).shape) == 2 else builder.op("flatten", [x], name=prefix + "/flatten")


def nature_cnn(graph: TorchGraph, processed: str, prefix: str) -> str:
    """NatureCNN (NCHW) under `prefix`: three convolutions with ReLU, flattened in C, H, W order, a Linear + ReLU."""
    builder = graph.builder
    x = builder.op("transpose", [processed], {"perm": TO_CHANNELS_LAST}, name=prefix + "/nhwc")
    for index, stride in zip(NATURE_CNN_CONVS, NATURE_CNN_STRIDES):
        layer = "{}.cnn.{}".format(prefix, index)
        kernel = graph.laid_out(layer + ".weight", CONV_WEIGHT_PERM)
        x = builder.op("conv2d", [x, kernel, graph.tensor(layer + ".bias")],
                       {"strides": [stride, stride], "padding": "VALID"}, name=layer)
        x = builder.op("relu", [x], name=layer + "/relu")
    x = builder.op("transpose", [x], {"perm": TO_CHANNELS_FIRST}, name=prefix + "/nchw")
    x = builder.op("flatten", [x], name=prefix + "/flatten")
    return builder.op("relu", [graph.linear(x, prefix + ".linear.0")], name=prefix + ".linear/relu")
