"""The rl-baselines-zoo's `config.yml`, read as data: which wrappers shaped the observations a model saw.

The zoo dumps an OrderedDict with PyYAML's python tag; we map that one tag to a plain dict and evaluate
nothing else. `normalize` may be `true` or a string of keyword arguments (read with `ast.literal_eval`).

YAML is read within budgets checked before the work they bound, so a config costs memory and time in
proportion to its size: the file is at most MAX_CONFIG_BYTES; collections nest at most MAX_NESTING deep
(counted on the parser's event stream, which is iterative, before PyYAML's recursive composer runs); and the
document, with every alias expanded, holds at most MAX_EXPANDED_NODES nodes (a "billion laughs" file is small
because its aliases share nodes, but anything that walks the result — a comparison, an error message — pays
for the expansion). Zoo configs are a few hundred bytes, two levels deep and a few dozen nodes.
"""
from __future__ import annotations

import ast
import os
from typing import Any, Dict, List, Optional

from ..errors import ExportError, preview
from .description import real_number

ORDERED_DICT_TAG = "tag:yaml.org,2002:python/object/apply:collections.OrderedDict"
#: Largest config read (real ones are under 1 KiB).
MAX_CONFIG_BYTES = 1024 * 1024
#: Deepest nesting of sequences and mappings (the zoo's OrderedDict is three levels: tag, list, pair).
MAX_NESTING = 32
#: Nodes of the document with every alias expanded.
MAX_EXPANDED_NODES = 100000
#: Longest `normalize` keyword string handed to `ast.literal_eval` (whose parser recurses on nesting).
MAX_NORMALIZE_TEXT = 1000
#: VecNormalize's keyword arguments (SB2 2.10 `VecNormalize.__init__`), and which take numbers.
VEC_NORMALIZE_FLAGS = ("training", "norm_obs", "norm_reward")
VEC_NORMALIZE_NUMBERS = ("clip_obs", "clip_reward", "gamma", "epsilon")


def read_zoo_config(path: str) -> Dict[str, Any]:
    """The hyperparameters in a zoo config.yml, as a dict (python tags other than OrderedDict refused)."""
    try:
        import yaml
    except ImportError:
        raise ExportError("reading zoo config files needs PyYAML (pip install pyyaml)") from None
    text = _read_text(path)

    class ZooLoader(yaml.SafeLoader):
        pass

    def ordered_dict(loader: Any, node: Any) -> Dict[str, Any]:
        arguments = loader.construct_sequence(node, deep=True) or [[]]
        pairs = arguments[0] if len(arguments) == 1 else None
        if not isinstance(pairs, list) or not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
            raise ExportError("{}: the OrderedDict is not a list of [key, value] pairs".format(path))
        return {key: value for key, value in pairs if _is_name(key, path)}

    ZooLoader.add_constructor(ORDERED_DICT_TAG, ordered_dict)
    try:
        _check_nesting(yaml.parse(text, Loader=yaml.SafeLoader), path)
        loader = ZooLoader(text)
        try:
            node = loader.get_single_node()
            _check_expanded_size(node, path)
            config = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ExportError("{} is not a zoo config the safe reader accepts: {}".format(
            path, preview(str(exc).splitlines()[0] if str(exc) else type(exc).__name__))) from None
    except ValueError as exc:  # PyYAML's int() of a scalar with more digits than Python converts
        raise ExportError("{} holds a value the safe reader refuses: {}".format(path, preview(str(exc)))) from None
    if not isinstance(config, dict):
        raise ExportError("{}: a zoo config is a mapping of hyperparameters".format(path))
    for key in config:
        _is_name(key, path)
    return config


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ExportError("cannot read {}: {}".format(path, exc.strerror or exc)) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ExportError("{} is larger than {} bytes; zoo configs are a few hundred bytes".format(
            path, MAX_CONFIG_BYTES))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExportError("{} is not UTF-8 text (byte {} is invalid)".format(path, exc.start)) from None


def _check_nesting(events: Any, path: str) -> None:
    depth = 0
    for event in events:
        name = type(event).__name__
        if name in ("SequenceStartEvent", "MappingStartEvent"):
            depth += 1
            if depth > MAX_NESTING:
                raise ExportError("{}: collections nested more than {} deep; zoo configs are flat".format(
                    path, MAX_NESTING))
        elif name in ("SequenceEndEvent", "MappingEndEvent"):
            depth -= 1


def _check_expanded_size(root: Any, path: str) -> None:
    """Count the document's nodes with aliases expanded, each distinct node's subtree summed once (memoised),
    so the count costs time in proportion to the file while measuring what walking the result would cost.
    A node that contains itself through an alias (`&a [*a]`, which PyYAML composes) is refused too."""
    if root is None:
        return
    sizes: Dict[int, int] = {}
    open_nodes = set()
    stack = [(root, False)]
    while stack:  # depth-first: a node is summed once every node below it is
        node, children_done = stack.pop()
        if children_done:
            open_nodes.discard(id(node))
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            if total > MAX_EXPANDED_NODES:
                raise ExportError("{}: the YAML expands to more than {} values through its aliases; "
                                  "refused".format(path, MAX_EXPANDED_NODES))
            sizes[id(node)] = total
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            raise ExportError("{}: the YAML holds a value that contains itself (a recursive alias); "
                              "refused".format(path))
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def _children(node: Any) -> list:
    value = node.value
    if not isinstance(value, list):
        return []
    return [part for item in value for part in (item if isinstance(item, tuple) else (item,))]


def _is_name(key: Any, path: str) -> bool:
    if not isinstance(key, str):
        raise ExportError("{}: hyperparameter names are strings, got {}".format(path, preview(key)))
    return True


def frame_stack(config: Dict[str, Any], path: str = "config") -> int:
    """How many frames the zoo's `VecFrameStack` stacks (`frame_stack: n`; absent or 0 means none, i.e. 1)."""
    value = config.get("frame_stack", 0)
    if value is None or value is False:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1024:
        raise ExportError("{}: frame_stack must be an integer from 0 to 1024, got {}".format(path, preview(value)))
    return max(value, 1)


def normalize_kwargs(config: Dict[str, Any], path: str = "config") -> Optional[Dict[str, Any]]:
    """VecNormalize kwargs when the config enables normalization (`normalize: true` or a kwargs string)."""
    value = config.get("normalize", False)
    if value is False or value is None:
        return None
    if value is True:
        return {}
    if isinstance(value, str):
        if len(value) > MAX_NORMALIZE_TEXT:
            raise ExportError("{}: normalize is a text of {} characters; keyword arguments take at most {}".format(
                path, len(value), MAX_NORMALIZE_TEXT))
        text = value.strip()
        if text.startswith("dict(") and text.endswith(")"):
            text = "{" + ", ".join("'{}': {}".format(*item.split("=", 1)) if "=" in item else item
                                   for item in _split_args(text[5:-1])) + "}"
        try:
            kwargs = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ExportError("{}: cannot read normalize={} as keyword arguments".format(
                path, preview(value))) from None
        if isinstance(kwargs, dict):
            return _vec_normalize_kwargs(kwargs, path)
        raise ExportError("{}: normalize={} is not keyword arguments".format(path, preview(value)))
    raise ExportError("{}: unexpected normalize value {}".format(path, preview(value)))


def _vec_normalize_kwargs(kwargs: Dict[Any, Any], path: str) -> Dict[str, Any]:
    """The kwargs, each a VecNormalize argument of the right kind: flags are booleans, the rest finite numbers."""
    for key, value in kwargs.items():
        if key in VEC_NORMALIZE_NUMBERS:
            real_number(value, "{}: normalize's {}".format(path, key))
        elif key not in VEC_NORMALIZE_FLAGS:
            raise ExportError("{}: normalize has {}, which is not an argument of VecNormalize ({})".format(
                path, preview(key), ", ".join(VEC_NORMALIZE_FLAGS + VEC_NORMALIZE_NUMBERS)))
        elif not isinstance(value, bool):
            raise ExportError("{}: normalize's {} must be true or false, got {}".format(path, key, preview(value)))
    return kwargs


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


#: Where the zoo keeps a model's statistics, in the folder named after it (`DIR/ENV/` beside `DIR/ENV.pkl`), in
#: the order they are preferred: SB2's own VecNormalize save (which also holds clip_obs and epsilon), then the
#: rl-baselines-zoo's pickled RunningMeanStd.
STATISTICS_FILES = ("vecnormalize.pkl", "obs_rms.pkl")
CONFIG_FILE = "config.yml"


class ZooFolder(object):
    """What lies in a zoo model's folder: its config.yml and its observation statistics, each None if absent."""

    def __init__(self, config: Optional[str] = None, statistics: Optional[str] = None):
        self.config, self.statistics = config, statistics


def zoo_folder(source: str) -> ZooFolder:
    """The zoo layout around `source` (`DIR/ENV.pkl` or `.zip`): `DIR/ENV/config.yml` and the first of
    STATISTICS_FILES there. The folder is the model's path without its extension, as the zoo's enjoy.py finds it."""
    folder = os.path.splitext(source)[0]
    if not os.path.isdir(folder):
        return ZooFolder()
    return ZooFolder(_existing(folder, CONFIG_FILE), statistics_beside(folder))


def statistics_beside(folder: str) -> Optional[str]:
    """The first of STATISTICS_FILES in `folder`, or None."""
    return next((path for path in (_existing(folder, name) for name in STATISTICS_FILES) if path), None)


def _existing(folder: str, name: str) -> Optional[str]:
    path = os.path.join(folder, name)
    return path if os.path.isfile(path) else None


def env_wrappers(config: Dict[str, Any], path: str = "config") -> List[str]:
    """The wrapper classes the zoo put around the environment, each quoted (`env_wrapper`: a 'module.Class'
    name, as rl-baselines-zoo's utils.get_wrapper_class reads it; lists of names or of {name: kwargs}, as
    rl-zoo3 writes them). They change what the environment returns before the policy sees it, which an .sbif
    file cannot express."""
    value = config.get("env_wrapper")
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    names = []
    for item in items:
        if isinstance(item, dict) and len(item) == 1:
            item = next(iter(item))
        if not isinstance(item, str):
            raise ExportError("{}: env_wrapper must name wrapper classes ('module.Class'), got {}".format(
                path, preview(value)))
        names.append(preview(item))  # quoted and bounded: the name comes from the file
    return names
