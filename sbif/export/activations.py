"""Naming the activation an SB2 user passed as `act_fun`, from the function's module and name.

The live exporter sees the function object; the safe reader sees the `module.name` a pickle refers to. Both
resolve through this one table, so an activation is recognised the same way whichever loader read the file.
"""
from __future__ import annotations

from typing import Any, Dict

from ..errors import UnsupportedError, preview

#: SBIF activation op -> attributes it needs (beyond the input), for the TF functions of that name.
ACTIVATIONS: Dict[str, Dict[str, Any]] = {
    "tanh": {}, "relu": {}, "relu6": {}, "elu": {}, "selu": {}, "sigmoid": {}, "softplus": {}, "softsign": {},
    "swish": {}, "leaky_relu": {"alpha": 0.2}, "identity": {},
}
#: Names some TF modules use for the same functions.
ALIASES = {"linear": "identity"}


def activation_from_reference(module: str, name: str) -> Dict[str, Any]:
    """{'name': op, **attrs} for a TF/Keras activation referenced by module and qualified name."""
    short = ALIASES.get(name, name)
    if not module.split(".")[0] in ("tensorflow", "tensorflow_core") or short not in ACTIVATIONS:
        raise UnsupportedError(
            "activation {}.{} is not one SBIF can export (known: TensorFlow's {}); pass --policy-kwargs "
            "'{{\"act_fun\": \"NAME\"}}' if it is equivalent to one of them".format(
                preview(module), preview(name), ", ".join(sorted(ACTIVATIONS))))
    return dict({"name": short}, **ACTIVATIONS[short])


def activation_from_name(spec: Any) -> Dict[str, Any]:
    """Normalise a user's activation override: 'relu' or {'name': 'leaky_relu', 'alpha': 0.1}."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or spec["name"] not in ACTIVATIONS:
        raise UnsupportedError("unknown activation {}; known: {}".format(
            preview(spec), ", ".join(sorted(ACTIVATIONS))))
    extra = [key for key in spec if key != "name" and key not in ACTIVATIONS[spec["name"]]]
    if extra:
        raise UnsupportedError("activation {} takes no parameter {}".format(spec["name"], preview(extra)))
    return dict(ACTIVATIONS[spec["name"]], **spec)
