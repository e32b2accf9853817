"""The rl-baselines-zoo's `config.yml`, read as data: which wrappers shaped the observations a model saw.

The zoo dumps an OrderedDict with PyYAML's python tag; we map that one tag to a plain dict and evaluate
nothing else. `normalize` may be `true` or a string of keyword arguments (read with `ast.literal_eval`).
"""
from __future__ import annotations

import ast
from typing import Any, Dict, Optional

from ..errors import ExportError

ORDERED_DICT_TAG = "tag:yaml.org,2002:python/object/apply:collections.OrderedDict"


def read_zoo_config(path: str) -> Dict[str, Any]:
    """The hyperparameters in a zoo config.yml, as a dict (python tags other than OrderedDict refused)."""
    try:
        import yaml
    except ImportError:
        raise ExportError("reading zoo config files needs PyYAML (pip install pyyaml)") from None

    class ZooLoader(yaml.SafeLoader):
        pass

    def ordered_dict(loader: Any, node: Any) -> Dict[str, Any]:
        (pairs,) = loader.construct_sequence(node, deep=True) or [[]]
        if not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
            raise ExportError("{}: the OrderedDict is not a list of [key, value] pairs".format(path))
        return {key: value for key, value in pairs}

    ZooLoader.add_constructor(ORDERED_DICT_TAG, ordered_dict)
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.load(handle, Loader=ZooLoader)
    except OSError as exc:
        raise ExportError("cannot read {}: {}".format(path, exc.strerror or exc)) from None
    except yaml.YAMLError as exc:
        raise ExportError("{} is not a zoo config the safe reader accepts: {}".format(
            path, str(exc).splitlines()[0])) from None
    if not isinstance(config, dict):
        raise ExportError("{}: a zoo config is a mapping of hyperparameters".format(path))
    return config


def frame_stack(config: Dict[str, Any], path: str = "config") -> int:
    """How many frames the zoo's `VecFrameStack` stacks (`frame_stack: n`; absent or 0 means none, i.e. 1)."""
    value = config.get("frame_stack", 0)
    if value is None or value is False:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ExportError("{}: frame_stack must be a non-negative integer, got {!r}".format(path, value))
    return max(value, 1)


def normalize_kwargs(config: Dict[str, Any], path: str = "config") -> Optional[Dict[str, Any]]:
    """VecNormalize kwargs when the config enables normalization (`normalize: true` or a kwargs string)."""
    value = config.get("normalize", False)
    if value is False or value is None:
        return None
    if value is True:
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("dict(") and text.endswith(")"):
            text = "{" + ", ".join("'{}': {}".format(*item.split("=", 1)) for item in _split_args(text[5:-1])) + "}"
        try:
            kwargs = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ExportError("{}: cannot read normalize={!r} as keyword arguments".format(path, value)) from None
        if isinstance(kwargs, dict):
            return kwargs
    raise ExportError("{}: unexpected normalize value {!r}".format(path, value))


def _split_args(text: str) -> list:
    """Top-level comma split of 'a=1, b=(2, 3)'."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return parts + ([current.strip()] if current.strip() else [])
