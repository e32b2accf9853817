"""The safe loader: an SB2 `.zip` or legacy `.pkl` read as data, with no Stable-Baselines, no TensorFlow and
no code from the file ever run.

It fills the same `ModelDescription` as the live loader (same parameters in the same order and dtypes, same
spaces, same policy class name and resolved kwargs, same algorithm settings), so both build the same SBIF
document. What SB2 would compute by running code is reproduced from SB2's own rules instead: parameter names
of the old unnamed lists (its variable creation order, `unnamed_lists.py`), the default activation of its
policy classes, and the list entries it takes.

Every problem with the file is an `ExportError` naming it; valid files this version cannot describe raise
`UnsupportedError`, and both say which option (`--algo`, `--policy`, `--policy-kwargs`, `--loader live`)
would help.
"""
from __future__ import annotations

import base64
import binascii
import io
import os
import re
import zipfile
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import ExportError, SbifError, UnsupportedError, preview
from ..format.strict_json import loads_json_input
from . import safe_pickle
from .archive import (MAX_FILE_BYTES, ArchiveKind, MiB, check_central_directory, check_zip_members, json_member,
                      read_member)
from .activations import activation_from_name, activation_from_reference
from .description import ACTOR_CRITIC_ALGORITHMS, STRUCTURAL_KWARGS, ModelDescription, Space, real_number
from .parameter_layouts import first_hidden_layer_output, nature_cnn_kernel
from .policy_classes import PolicyIdentity, policy_identity
from .safe_pickle import (NUMERIC_CODES, BuildBudget, Stub, build_array, exception_text, is_stub_class, materialize,
                          stub_reference)
from .sb2_files import canonical_algorithm, describe_source, detect_algorithm, file_format
from .unnamed_lists import NETWORK_KWARGS, PARAMETER_NAMERS, describe_network, name_unnamed_list

#: Largest uncompressed member of a .zip (SB2 stores members uncompressed); the file is at most MAX_FILE_BYTES.
MAX_MEMBER_BYTES = {"data": 64 * MiB, "parameter_list": 16 * MiB, "parameters": MAX_FILE_BYTES}
ZIP_MEMBERS = ("data", "parameters", "parameter_list")
#: Members an archive may list (SB2 writes 3; a few more still get a clear "unexpected member" message).
MAX_ZIP_MEMBERS = 16
#: How refusals name an SB2 archive (the outer one, and the np.savez archive of its parameters).
SB2_ARCHIVE = ArchiveKind("an SB2 model archive", "SB2")
#: Parameters per model, and the longest .npy header numpy itself accepts by default.
MAX_PARAMETERS = 100000
MAX_NPY_HEADER = 10000
#: What `np.savez` appends to each array's name to name its member.
NPY_SUFFIX = ".npy"
#: Elements of a space (bounds are broadcast to this size): far above any image SB2 can train on.
MAX_SPACE_ELEMENTS = 1 << 24
#: Policy kwargs --policy-kwargs may give: those that shape the network (optimizer settings do not matter).
OVERRIDABLE_KWARGS = ("act_fun", "net_arch", "layers", "n_lstm", "layer_norm", "feature_extraction", "pad",
                      "data_format", "dueling", "cnn_extractor")


def describe_safe_file(path: str, algorithm: Optional[str] = None, policy_kwargs: Any = None,
                       policy: Optional[str] = None) -> ModelDescription:
    """The builder's input for an SB2 save file, read without running anything from it.

    `algorithm`, `policy_kwargs` (a dict or a JSON object string) and `policy` (a class name) override or
    complete what the file says, for files that do not tell (old files, custom policy classes).
    """
    overrides = parse_policy_kwargs(policy_kwargs)
    source = read_source(path)
    algorithm = resolve_algorithm(source.data, algorithm, path)
    family = her_inner_algorithm(source.data, path) if algorithm == "HER" else algorithm
    observation_space = read_space(source, "observation_space", path)
    action_space = read_space(source, "action_space", path)
    identity = policy_identity(source.data.get("policy"), policy, family, path)
    notes: List[str] = []
    kwargs = file_policy_kwargs(source.data.get("policy_kwargs"), path)
    kwargs.update(family_spelling(overrides, family, notes))
    parameters = read_parameters(source, family, kwargs, identity, observation_space, action_space, path, notes)
    extra = algorithm_settings(source.data, family, path)
    if algorithm == "HER":
        from .her import observation_dict

        dict_space = source.data.get("her_obs_space")
        extra.update(model_class=family, observation_dict=observation_dict(
            gym_like(dict_space, "{}: her_obs_space".format(path)) if isinstance(dict_space, Stub) else None))
    description = ModelDescription(
        algorithm=algorithm,
        policy_class=identity.name,
        policy_base=identity.base,
        policy_kwargs=structural_kwargs(kwargs, identity, parameters, family, path),
        observation_space=observation_space,
        action_space=action_space,
        parameters=parameters,
        provenance={"exporter": "safe", "sb2_version": None, "source": describe_source(path)},
        extra=extra,
    )
    description.notes = notes
    return description


# -- the file -------------------------------------------------------------------------------------------------
class SafeSource(object):
    """What an SB2 file holds: `data` (decoded values), the `readable` JSON of .zip entries, raw params."""

    def __init__(self, data: Dict[str, Any], params: Any, file_format: str,
                 readable: Optional[Dict[str, Any]] = None):
        self.data, self.params, self.format = data, params, file_format
        self.readable = readable or {}


def read_source(path: str) -> SafeSource:
    if not os.path.isfile(path):
        raise ExportError("no such file: {}".format(path))
    size = os.path.getsize(path)
    if size == 0:
        raise ExportError("{}: the file is empty".format(path))
    if size > MAX_FILE_BYTES:
        raise ExportError("{}: the file is {} bytes; the safe loader reads at most {}".format(
            path, size, MAX_FILE_BYTES))
    try:
        fmt = file_format(path)
    except OSError as exc:
        raise ExportError("cannot read {}: {}".format(path, exc)) from None
    return read_zip(path) if fmt == "zip" else read_pickle_file(path)


def read_pickle_file(path: str) -> SafeSource:
    """A legacy cloudpickle file: one pickle of `(data, params)`."""
    with open(path, "rb") as handle:
        blob = handle.read(min(os.path.getsize(path), MAX_FILE_BYTES) + 1)  # read(n) preallocates n bytes
    content = safe_pickle.loads(blob, path)
    if not isinstance(content, (tuple, list)) or len(content) != 2:
        raise ExportError("{}: the pickle does not hold SB2's (data, params) pair; is this an SB2 model "
                          "file?".format(path))
    data, params = content
    if not isinstance(data, dict):
        raise ExportError("{}: the saved data is not a dict; is this an SB2 model file?".format(path))
    return SafeSource(_string_keys(data, path), params, "pkl")


def read_zip(path: str) -> SafeSource:
    """An SB2 >= 2.8 archive: `data` (JSON), `parameter_list` (JSON) and `parameters` (np.savez bytes)."""
    try:
        with open(path, "rb") as handle:
            check_central_directory(handle, os.path.getsize(path), path, MAX_ZIP_MEMBERS, SB2_ARCHIVE)
        with zipfile.ZipFile(path) as archive:
            infos = check_zip_members(archive.infolist(), path, ZIP_MEMBERS, MAX_MEMBER_BYTES,
                                      os.path.getsize(path), SB2_ARCHIVE)
            missing = [name for name in ZIP_MEMBERS if name not in infos]
            if missing:
                raise ExportError("{}: the archive has no {} member; an SB2 model archive holds data, "
                                  "parameters and parameter_list".format(path, " or ".join(missing)))
            members = {name: read_member(archive, info, path) for name, info in infos.items()}
    except SbifError:
        raise
    except Exception as exc:  # zipfile raises BadZipFile, EOFError, OSError, zlib and struct errors
        raise ExportError("{}: not a readable zip archive (truncated or corrupt?): {}".format(
            path, exception_text(exc))) from None
    readable = json_member(members["data"], "data", path)
    if not isinstance(readable, dict):
        raise ExportError("{}: the data member is not a JSON object".format(path))
    names = json_member(members["parameter_list"], "parameter_list", path)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) > MAX_PARAMETERS:
        raise ExportError("{}: parameter_list is not a list of parameter names".format(path))
    seen = set()
    for name in names:
        if name in seen:
            raise ExportError("{}: parameter_list names {} twice; SB2 lists each variable once".format(
                path, preview(name)))
        seen.add(name)
    params = read_npz(members["parameters"], names, path, os.path.getsize(path))
    return SafeSource(decode_data(readable, path, BuildBudget(len(members["data"]))), params, "zip", readable)


def decode_data(readable: Dict[str, Any], path: str, budget: BuildBudget,
                dialect: safe_pickle.Dialect = safe_pickle.SB2_DIALECT) -> Dict[str, Any]:
    """SB2's `json_to_data` (SB3's has the same encoding): entries with `:serialized:` are cloudpickle bytes,
    decoded by the safe unpickler in `dialect`, all within one `budget` for the `data` member they come from."""
    data: Dict[str, Any] = {}
    for key, value in readable.items():
        if isinstance(value, dict) and ":serialized:" in value:
            what = "{}: data[{}]".format(path, preview(key))
            encoded = value[":serialized:"]
            try:
                blob = base64.b64decode(encoded.encode("ascii"), validate=True)
            except (AttributeError, UnicodeEncodeError, binascii.Error, ValueError):
                raise ExportError("{}: the serialized value is not base64 text".format(what)) from None
            data[key] = safe_pickle.loads(blob, what, budget, dialect)
        else:
            data[key] = value
    return data


def read_npz(blob: bytes, names: List[str], path: str, file_bytes: int) -> "OrderedDict[str, np.ndarray]":
    """`np.savez` bytes -> arrays in `names` order.

    The arrays are at most what the archive's members declare, checked before anything is read: each is
    parsed from its member's bytes and read once, and the members expand to at most MAX_EXPANSION times the
    size of the SB2 file (`file_bytes`), not of the `parameters` blob, which may itself be an expansion:
    nested archives cannot multiply the ratios.

    Each array is parsed from exactly the bytes whose .npy header was checked (`read_npy`), read once from the
    member the check looked at. No name is handed to numpy to resolve: `np.load(...)["X"]` prefers a member
    named `X` over `X.npy`, so a check of `X.npy` would not be a check of what numpy loads. Archives with two
    members numpy would read under one name are refused (`check_npz_names`).
    """
    what = "{}: parameters".format(path)
    try:
        check_central_directory(io.BytesIO(blob), len(blob), what, MAX_PARAMETERS, SB2_ARCHIVE)
        with zipfile.ZipFile(io.BytesIO(blob)) as inner:
            infos = check_zip_members(inner.infolist(), what, None, MAX_FILE_BYTES, file_bytes, SB2_ARCHIVE)
            if len(infos) > MAX_PARAMETERS:
                raise ExportError("{}: more than {} arrays".format(what, MAX_PARAMETERS))
            check_npz_names(infos, what)
            arrays: "OrderedDict[str, np.ndarray]" = OrderedDict()
            for name in names:
                info = infos.get(name + NPY_SUFFIX)
                if info is None:
                    raise ExportError("{}: parameter_list names {} but the parameters hold no such "
                                      "array".format(path, preview(name)))
                if name not in arrays:
                    arrays[name] = read_npy(read_member(inner, info, what), info.filename, what)
            return arrays
    except SbifError:
        raise
    except Exception as exc:
        raise ExportError("{} are not readable np.savez data (truncated or corrupt?): {}".format(
            what, exception_text(exc))) from None


def check_npz_names(infos: Dict[str, zipfile.ZipInfo], what: str) -> None:
    """Refuse members that `np.load` would present under one name: `X` and `X.npy` are both its array `X`
    (duplicate names are refused by `check_zip_members`). SB2 writes only `NAME.npy` members."""
    for name in infos:
        array_name = name[:-len(NPY_SUFFIX)]
        if name.endswith(NPY_SUFFIX) and array_name in infos:
            raise ExportError("{}: the archive holds both {} and {}, which numpy reads as one array; refused "
                              "as ambiguous".format(what, preview(array_name), preview(name)))


def read_npy(raw: bytes, member: str, what: str) -> np.ndarray:
    """The array in a .npy member's bytes, built from those very bytes once its header is checked: a numeric
    dtype, and a shape whose size is exactly the bytes after the header (numpy would allocate what the header
    declares before finding out)."""
    what = "{}: {}".format(what, preview(member))
    if len(raw) < 10 or raw[:6] != b"\x93NUMPY" or raw[6:7] not in (b"\x01", b"\x02", b"\x03"):
        raise ExportError("{} is not a .npy array".format(what))
    start = 10 if raw[6:7] == b"\x01" else 12
    length = int.from_bytes(raw[8:start], "little")
    if length > MAX_NPY_HEADER:
        raise ExportError("{} has a {}-byte .npy header (numpy accepts {})".format(what, length, MAX_NPY_HEADER))
    if len(raw) < start + length:
        raise ExportError("{} is truncated".format(what))
    try:
        reader = io.BytesIO(raw[:start + length])
        version = np.lib.format.read_magic(reader)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(reader)
    except Exception as exc:
        raise ExportError("{} has an invalid .npy header: {}".format(what, exception_text(exc))) from None
    if dtype.hasobject or dtype.kind not in "biufc":
        # str(dtype) is bounded: the header it was parsed from is at most MAX_NPY_HEADER bytes
        raise ExportError("{} holds {} data; SB2 parameters are numbers".format(what, preview(str(dtype))))
    try:
        return build_array(raw[start + length:], dtype, shape, fortran_order, "the member")
    except SbifError as exc:
        raise ExportError("{}: {}".format(what, exc)) from None


# -- algorithm, policy class and kwargs -----------------------------------------------------------------------
def resolve_algorithm(data: Dict[str, Any], algorithm: Optional[str], path: str) -> str:
    """`--algo` in any case where given (as the live loader reads it), else what the saved data tells."""
    return detect_algorithm(data, path) if algorithm is None else canonical_algorithm(algorithm)


def parse_policy_kwargs(value: Any) -> Dict[str, Any]:
    """The --policy-kwargs override: a JSON object (text) or a dict, with structural keys only."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = loads_json_input(value)
        except ValueError as exc:  # StrictJsonError too
            raise ExportError("--policy-kwargs is not valid JSON: {}".format(exc)) from None
    if not isinstance(value, dict):
        raise ExportError("--policy-kwargs must be a JSON object such as '{\"act_fun\": \"relu\"}'")
    unknown = sorted(set(value) - set(OVERRIDABLE_KWARGS))
    if unknown:
        raise ExportError("--policy-kwargs: unknown key(s) {}; the keys that shape the network are {}".format(
            preview(unknown), ", ".join(OVERRIDABLE_KWARGS)))
    return dict(value)


def family_spelling(overrides: Dict[str, Any], algorithm: str, notes: List[str]) -> Dict[str, Any]:
    """--policy-kwargs in the spelling `algorithm`'s policies take. DQN's and SAC/TD3/DDPG's policies have
    `layers` and no `net_arch` (SB2 ignores it there), so a flat `net_arch` list, as Stable-Baselines3 and
    the actor-critic policies spell it, is read as their `layers`, and `notes` says so. (The actor-critic
    policies take both, with different meanings: net_arch [16] is one layer shared by the policy and the
    value function, layers [16] one layer each, so neither is rewritten.)"""
    net_arch = overrides.get("net_arch")
    if "net_arch" not in NETWORK_KWARGS.get(algorithm, ("net_arch",)) and net_arch is not None:
        if overrides.get("layers") is not None:
            raise ExportError("--policy-kwargs gives both net_arch and layers; {} policies take layers "
                              "only".format(algorithm))
        if not isinstance(net_arch, list) or not all(isinstance(size, int) and not isinstance(size, bool)
                                                     for size in net_arch):
            raise ExportError("--policy-kwargs net_arch {}: {} policies take layers, a list of layer "
                              "sizes".format(preview(net_arch), algorithm))
        notes.append("read --policy-kwargs net_arch {} as layers, the name {} policies give it".format(
            preview(net_arch), algorithm))
        overrides = dict(overrides, layers=net_arch)
        del overrides["net_arch"]
    return overrides


def file_policy_kwargs(value: Any, path: str) -> Dict[str, Any]:
    """The file's policy_kwargs (missing or None in old files)."""
    if value is None:
        return {}
    if isinstance(value, dict) and ":type:" in value:
        raise ExportError("{}: policy_kwargs are stored only as text (their pickle is missing); pass "
                          "--policy-kwargs JSON".format(path))
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ExportError("{}: policy_kwargs is not a dict of keyword arguments; pass --policy-kwargs "
                          "JSON".format(path))
    return dict(value)


def resolve_activation(kwargs: Dict[str, Any], identity: PolicyIdentity, parameters: Dict[str, np.ndarray],
                       algorithm: str, path: str) -> Optional[Dict[str, Any]]:
    """act_fun as the live loader reports it: the kwargs' function (a TF reference, or a name given with
    --policy-kwargs), else the class default where the live loader finds one (SAC/TD3/DDPG policies always
    hold their activation; other families where a hidden layer applies it), else None."""
    value = kwargs.get("act_fun")
    if value is None:
        if algorithm not in OFF_POLICY_ALGORITHMS and first_hidden_layer_output(parameters) is None:
            return None  # no hidden layer (e.g. nature_cnn only): the live loader traces nothing either
        if identity.default_activation is None:
            raise UnsupportedError(
                "{}: the policy class {} is not a Stable-Baselines class, so the file does not tell its "
                "activation; pass --policy-kwargs '{{\"act_fun\": \"tanh\"}}' (or the activation it uses), or "
                "export with --loader live in the SB2 environment".format(path, preview(identity.name)))
        return activation_from_name(identity.default_activation)
    if isinstance(value, (str, dict)):
        name = value if isinstance(value, str) else value.get("name")
        if not isinstance(name, str) or not _is_plain_data(value, "{}: policy_kwargs act_fun".format(path)):
            raise UnsupportedError("{}: policy_kwargs act_fun {} is not an activation name; pass --policy-kwargs "
                                   "'{{\"act_fun\": \"NAME\"}}'".format(path, preview(value)))
        return activation_from_name(value)
    if is_stub_class(value):
        module, name = stub_reference(value)
        return activation_from_reference(module, name)
    raise UnsupportedError(
        "{}: policy_kwargs act_fun is a function defined in the training script (stored as code, which the "
        "safe loader does not run); pass --policy-kwargs '{{\"act_fun\": \"NAME\"}}' with the TensorFlow "
        "activation it computes".format(path))


def structural_kwargs(kwargs: Dict[str, Any], identity: PolicyIdentity, parameters: Dict[str, np.ndarray],
                      algorithm: str, path: str) -> Dict[str, Any]:
    """The kwargs the description carries, exactly as the live loader resolves them (`live.structural_kwargs`):
    the activation, the JSON structural kwargs, and `cnn_extractor` by name (SAC/TD3/DDPG policies with CNN
    features always name theirs, nature_cnn by default)."""
    result: Dict[str, Any] = {}
    activation = resolve_activation(kwargs, identity, parameters, algorithm, path)
    if activation is not None:
        result["act_fun"] = activation
    for key in STRUCTURAL_KWARGS:
        if kwargs.get(key) is not None:
            if not _is_plain_data(kwargs[key], "{}: policy_kwargs {}".format(path, key)):
                raise UnsupportedError("{}: policy_kwargs {} is not plain data; pass --policy-kwargs with its "
                                       "value".format(path, key))
            result[key] = kwargs[key]
    extractor = kwargs.get("cnn_extractor")
    if extractor is None and algorithm in OFF_POLICY_ALGORITHMS and _has_cnn(parameters):
        extractor = "nature_cnn"
    if extractor is not None:
        result["cnn_extractor"] = _function_name(extractor)
    return result


def _has_cnn(parameters: Dict[str, np.ndarray]) -> bool:
    """Whether any tower of the policy has nature_cnn."""
    kernel = nature_cnn_kernel("")
    return any(name == kernel or name.endswith("/" + kernel) for name in parameters)


def _function_name(value: Any) -> str:
    """A function reference as `live.structural_kwargs` names it ('nature_cnn' or module.qualname)."""
    if isinstance(value, str):
        return value
    reference = stub_reference(value) if is_stub_class(value) else None
    if reference == ("stable_baselines.common.policies", "nature_cnn"):
        return "nature_cnn"
    if reference is not None:
        return "{}.{}".format(*reference)
    return "<a function defined in the training script>"


# -- algorithm settings outside the policy -------------------------------------------------------------------
OFF_POLICY_ALGORITHMS = ("SAC", "TD3", "DDPG")
#: DDPG's constructor defaults, for files saved without these keys
DDPG_DEFAULTS = {"observation_range": (-5.0, 5.0), "return_range": (-np.inf, np.inf),
                 "normalize_observations": False, "normalize_returns": False}
NORMAL_ACTION_NOISE = {("stable_baselines.common.noise", "NormalActionNoise"),
                       ("stable_baselines.ddpg.noise", "NormalActionNoise")}  # the same class in SB2 2.10


def algorithm_settings(data: Dict[str, Any], algorithm: str, path: str) -> Dict[str, Any]:
    """`ModelDescription.extra` as `live.algorithm_settings` reads it off the model, here from the saved data."""
    extra: Dict[str, Any] = {}
    if algorithm == "DDPG":
        for key in ("observation_range", "return_range"):
            value = data.get(key, DDPG_DEFAULTS[key])
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise ExportError("{}: DDPG's {} is not a (low, high) pair: {}".format(path, key, preview(value)))
            extra[key] = tuple(real_number(bound, "{}: DDPG's {}".format(path, key), finite=False)
                               for bound in value)
        for key in ("normalize_observations", "normalize_returns"):
            extra[key] = bool(data.get(key, DDPG_DEFAULTS[key]))
        extra["param_noise"] = data.get("param_noise") is not None
    if algorithm in ("TD3", "DDPG"):
        extra["action_noise"] = describe_action_noise(data.get("action_noise"), path)
    return extra


def describe_action_noise(noise: Any, path: str) -> Optional[Dict[str, Any]]:
    """As `live.describe_action_noise`: None, SB2's NormalActionNoise with its mean and sigma (float64), or
    {'kind': class name} for any other noise."""
    if noise is None:
        return None
    reference = stub_reference(noise) if isinstance(noise, Stub) else None
    if reference in NORMAL_ACTION_NOISE and isinstance(noise.state, dict):
        try:  # arrays or numbers only: np.asarray of a list of shared references would expand it
            mean, sigma = (np.asarray(_numeric_array(materialize(noise.state.get(key)), key), dtype=np.float64)
                           for key in ("_mu", "_sigma"))
        except SbifError:
            raise ExportError("{}: the action noise has no numeric mean and sigma".format(path)) from None
        return {"kind": "normal", "mean": mean, "sigma": sigma}
    if reference is None or reference[0] == "<call>":
        raise ExportError("{}: cannot tell what kind of action noise the file holds".format(path))
    return {"kind": reference[1].split(".")[-1]}


def her_inner_algorithm(data: Dict[str, Any], path: str) -> str:
    """The algorithm HER wraps, from its saved `model_class` (e.g. stable_baselines.sac.sac.SAC)."""
    from .her import INNER_ALGORITHMS

    reference = stub_reference(data.get("model_class")) if is_stub_class(data.get("model_class")) else None
    name = reference[1].split(".")[-1] if reference is not None else None
    if name not in INNER_ALGORITHMS:
        raise ExportError("{}: cannot tell which algorithm this HER model wraps (model_class must be one of "
                          "{})".format(path, ", ".join(INNER_ALGORITHMS)))
    return name


# -- spaces ---------------------------------------------------------------------------------------------------
def read_space(source: SafeSource, key: str, path: str) -> Space:
    """A space from its pickled gym object (preferred) or, failing that, from the readable .zip text."""
    value = source.data.get(key)
    what = "{}: {}".format(path, key)
    if isinstance(value, Stub):
        return space_from_stub(value, what)
    readable = source.readable.get(key)
    if isinstance(readable, dict) and ":type:" in readable:
        return space_from_text(readable, what)
    raise ExportError("{}: the file has no readable {}".format(path, key))


def space_from_stub(value: Stub, what: str) -> Space:
    return Space.from_gym(gym_like(value, what))


def gym_like(value: Any, what: str, depth: int = 0) -> Any:
    """A pickled gym space as an object with the attributes `Space.from_gym` and `her.observation_dict`
    read, each checked (numeric bounds, sizes within MAX_SPACE_ELEMENTS)."""
    reference = stub_reference(value) if isinstance(value, Stub) else None
    if reference is None or not reference[0].startswith("gym.spaces"):
        raise ExportError("{} is not a gym space".format(what))
    kind = reference[1].split(".")[-1]
    state = value.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
        state = state[0]
    if not isinstance(state, dict):
        raise ExportError("{}: the pickled {} has no attributes".format(what, kind))
    try:
        attrs = {k.lstrip("_"): materialize(v) for k, v in state.items() if isinstance(k, str)}
    except SbifError as exc:
        raise ExportError("{}: {}".format(what, exc)) from None
    if kind == "Box":
        return _box(attrs.get("low"), attrs.get("high"), attrs.get("shape"), attrs.get("dtype"), what)
    if kind in ("Discrete", "MultiBinary"):
        return _GymLike(kind, n=_count(attrs.get("n"), what + ".n"))
    if kind == "MultiDiscrete":
        return _GymLike("MultiDiscrete", nvec=_nvec(attrs.get("nvec"), what + ".nvec"))
    if kind == "Dict" and depth == 0 and isinstance(attrs.get("spaces"), dict):
        return _GymLike("Dict", spaces=OrderedDict(
            (key, gym_like(space, "{}[{}]".format(what, preview(key)), depth + 1))
            for key, space in attrs["spaces"].items() if isinstance(key, str)))
    return _GymLike(kind)  # Space.from_gym refuses it: Dict/Tuple spaces are not policy inputs


def space_from_text(readable: Dict[str, Any], what: str) -> Space:
    """A space from the JSON SB2 writes next to the pickle: numbers as `str(ndarray)` text, read exactly."""
    type_text = readable.get(":type:")
    match = re.match(r"^<class '([\w.]+)'>$", type_text) if isinstance(type_text, str) else None
    kind = match.group(1).split(".")[-1] if match else ""
    if kind == "Box":
        dtype = space_dtype(readable.get("dtype"), what)
        shape = space_shape(readable.get("shape"), what)
        low = parse_array_text(readable.get("low"), shape, dtype, what + ".low")
        high = parse_array_text(readable.get("high"), shape, dtype, what + ".high")
        return Space.from_gym(_box(low, high, shape, dtype, what))
    if kind in ("Discrete", "MultiBinary"):
        return Space.from_gym(_GymLike(kind, n=_count(readable.get("n"), what + ".n")))
    if kind == "MultiDiscrete":
        shape = space_shape(readable.get("shape"), what)
        if len(shape) != 1:
            raise ExportError("{}: the readable MultiDiscrete has shape {}; its nvec is a vector".format(
                what, preview(shape)))
        nvec = parse_array_text(readable.get("nvec"), shape, np.dtype(np.int64), what + ".nvec")
        return Space.from_gym(_GymLike("MultiDiscrete", nvec=_nvec(nvec, what + ".nvec")))
    raise ExportError("{}: cannot read a space of type {}".format(what, preview(readable.get(":type:"))))


class _GymLike(object):
    """Attributes a gym space would have, under the class name `Space.from_gym` dispatches on."""

    def __new__(cls, kind: str, **attrs: Any) -> Any:
        instance = object.__new__(type(kind, (object,), {}))
        instance.__dict__.update(attrs)
        return instance


def _box(low: Any, high: Any, shape: Any, dtype: Any, what: str) -> Any:
    low, high = _numeric_array(low, what + ".low"), _numeric_array(high, what + ".high")
    shape = space_shape(low.shape if shape is None else shape, what)
    dtype = space_dtype(low.dtype if dtype is None else dtype, what)
    for bound in (low, high):
        if bound.shape != shape and bound.size != 1:
            raise ExportError("{}: Box bounds of shape {} do not fit its shape {}".format(what, bound.shape, shape))
    return _GymLike("Box", low=low, high=high, shape=shape, dtype=dtype)


def _numeric_array(value: Any, what: str) -> np.ndarray:
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise ExportError("{} is missing or not a numeric array".format(what))
    return value


def _count(value: Any, what: str) -> int:
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if not _is_count(value):
        raise ExportError("{} is missing or not a valid count: {}".format(what, preview(value)))
    return int(value)


def _is_count(value: Any) -> bool:
    """An exact integer from 0 to MAX_SPACE_ELEMENTS (no bool, float or text that would be read as one)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) \
        and 0 <= value <= MAX_SPACE_ELEMENTS


#: The dtypes of SB2 observation and action spaces by name: booleans, integers and floats (safe_pickle's
#: numeric codes without the complex ones); never datetimes, sub-arrays, records, objects or text.
SPACE_DTYPES = OrderedDict((np.dtype(code).name, np.dtype(code)) for code in sorted(NUMERIC_CODES)
                           if np.dtype(code).kind in "biuf")


def space_dtype(value: Any, what: str) -> np.dtype:
    """A space's dtype: a numpy dtype (any byte order) or the name SB2 writes (`str(dtype)`) of SPACE_DTYPES.
    Names are looked up, never handed to `np.dtype`, which would parse `'M8'`, `'(4,)f4'` or records."""
    dtype = value if isinstance(value, np.dtype) else SPACE_DTYPES.get(value) if isinstance(value, str) else None
    if dtype is None or dtype.name not in SPACE_DTYPES:
        shown = str(value) if isinstance(value, np.dtype) else value  # a numpy dtype's text is bounded
        raise ExportError("{}: dtype {} is not one SB2 spaces use ({})".format(
            what, preview(shown), ", ".join(SPACE_DTYPES)))
    return dtype


def space_shape(value: Any, what: str) -> Tuple[int, ...]:
    """A space's shape: a list or tuple of at most MAX_DIMS exact integers, each a count (`_is_count`), with
    at most MAX_SPACE_ELEMENTS elements in all (checked before any bound is parsed or broadcast)."""
    if not isinstance(value, (list, tuple)) or len(value) > safe_pickle.MAX_DIMS \
            or not all(_is_count(dim) for dim in value):
        raise ExportError("{}: the space's shape {} is not a list of non-negative integers".format(
            what, preview(value)))
    shape = tuple(int(dim) for dim in value)
    size = 1
    for dim in shape:
        size *= dim
    if size > MAX_SPACE_ELEMENTS:
        raise ExportError("{}: a space of shape {} ({} elements) is larger than the {} the safe loader "
                          "accepts".format(what, shape, size, MAX_SPACE_ELEMENTS))
    return shape


def _nvec(value: Any, what: str) -> np.ndarray:
    """MultiDiscrete's choices per dimension: a vector of integers, each at least 1."""
    nvec = _numeric_array(value, what)
    space_shape(nvec.shape, what)
    if nvec.dtype.kind not in "iu" or nvec.ndim != 1 or not all(_is_count(n) and n >= 1 for n in nvec.tolist()):
        raise ExportError("{} is not a vector of positive integers: {}".format(what, preview(nvec.tolist())))
    return nvec


#: Significant digits that identify every value of a float type (numpy prints at most 8 fraction digits).
ROUND_TRIP_DIGITS = {2: 5, 4: 9, 8: 17}
PRINT_PRECISION = 8
_NUMBER = re.compile(r"^[+-]?(\d*)\.?(\d*)(?:e[+-]?\d+)?$")


def parse_array_text(text: Any, shape: Tuple[int, ...], dtype: np.dtype, what: str) -> np.ndarray:
    """The exact array behind numpy's `str(array)` text, or ExportError where the text lost information.

    numpy summarises arrays over 1000 elements with '...', and prints floats with at most 8 fraction
    digits: a number printed with fewer was printed in full; one printed with 8 is exact only if that is
    enough significant digits for its type (9 for float32, 17 for float64).
    """
    if not isinstance(text, str):
        raise ExportError("{} is not stored as text".format(what))
    if "..." in text:
        raise ExportError("{} is stored only as numpy's summarised text (with '...'), which has lost the "
                          "values; export with --loader live in the SB2 environment".format(what))
    count = 1
    for dim in shape:
        count *= dim
    # Parsed one number at a time into the array the shape declares: a list of every token of a 64 MiB text
    # would take a gigabyte before its length could be compared with the shape's.
    values = np.empty(count, dtype=dtype)
    found = 0
    for match in re.finditer(r"[^\s\[\],]+", text):
        if found == count:
            raise ExportError("{} text holds more than {} numbers; shape {} needs {}".format(what, count, shape, count))
        values[found] = _parse_number(match.group(0), dtype, what)
        found += 1
    if found != count:
        raise ExportError("{} text holds {} numbers; shape {} needs {}".format(what, found, shape, count))
    return values.reshape(shape)


def _parse_number(token: str, dtype: np.dtype, what: str) -> Any:
    if dtype.kind == "b":
        if token not in ("True", "False"):
            raise ExportError("{}: {} is not a boolean".format(what, preview(token)))
        return token == "True"
    if dtype.kind in "iu":
        if not re.match(r"^[+-]?\d{1,20}$", token):
            raise ExportError("{}: {} is not an integer".format(what, preview(token)))
        limits = np.iinfo(dtype)
        if not limits.min <= int(token) <= limits.max:
            raise ExportError("{}: {} is out of range for {}".format(what, preview(token), dtype.name))
        return int(token)
    if token.lstrip("+-") in ("inf", "nan"):
        return float(token)
    match = _NUMBER.match(token)
    if not match or not (match.group(1) or match.group(2)):
        raise ExportError("{}: {} is not a number".format(what, preview(token)))
    fraction = match.group(2)
    significant = len((match.group(1) + fraction).lstrip("0"))
    if len(fraction) >= PRINT_PRECISION and significant < ROUND_TRIP_DIGITS.get(dtype.itemsize, 17):
        raise ExportError("{}: the text {} may be rounded (numpy prints {} fraction digits); export with "
                          "--loader live in the SB2 environment".format(what, preview(token), PRINT_PRECISION))
    value = float(token)
    with np.errstate(over="ignore"):
        if np.isinf(dtype.type(value)) and not np.isinf(value):
            raise ExportError("{}: {} is out of range for {}".format(what, preview(token), dtype.name))
    return value


# -- parameters -----------------------------------------------------------------------------------------------
def read_parameters(source: SafeSource, algorithm: str, kwargs: Dict[str, Any], identity: PolicyIdentity,
                    observation_space: Space, action_space: Space, path: str,
                    notes: List[str]) -> "OrderedDict[str, np.ndarray]":
    """Name -> array in SB2's order; unnamed lists are named as SB2 names them when it loads them. A network
    inferred from an unnamed list's shapes is added to `kwargs` and said in `notes`."""
    raw = source.params
    if raw is None:
        raise ExportError("{}: the file holds no parameters".format(path))
    if isinstance(raw, dict):
        pairs = list(raw.items())
        if not all(isinstance(name, str) for name, _ in pairs):
            raise ExportError("{}: the parameter names are not strings".format(path))
    elif isinstance(raw, (list, tuple)):
        namer = PARAMETER_NAMERS.get(algorithm)
        if namer is None:
            raise UnsupportedError("{}: this {} file stores its parameters as an unnamed list (SB2 < 2.6), and "
                                   "the safe loader cannot name {} lists; export it with --loader live in "
                                   "the SB2 environment".format(path, algorithm, algorithm))
        pairs, inferred = name_unnamed_list(algorithm, list(raw), source.data, kwargs, identity, observation_space,
                                            action_space, path)
        if inferred is not None:
            kwargs.update(inferred)
            notes.append("inferred {} from the parameter shapes".format(describe_network(inferred)))
    else:
        raise ExportError("{}: the parameters are neither a dict nor a list".format(path))
    if len(pairs) > MAX_PARAMETERS:
        raise ExportError("{}: more than {} parameters".format(path, MAX_PARAMETERS))
    parameters = OrderedDict()
    for name, value in pairs:
        parameters[name] = _parameter_array(value, name, algorithm, path)
    return parameters


def _parameter_array(value: Any, name: str, algorithm: str, path: str) -> np.ndarray:
    """The array SB2 would assign: TF casts what it is fed to the variable's dtype (float32 for these models)."""
    try:
        array = materialize(value)
    except SbifError as exc:
        raise ExportError("{}: parameter {}: {}".format(path, preview(name), exc)) from None
    if isinstance(array, np.generic):
        array = np.asarray(array)
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise ExportError("{}: parameter {} is not a numeric array".format(path, preview(name)))
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if algorithm in ACTOR_CRITIC_ALGORITHMS and array.dtype != np.float32:
        array = np.asarray(array, dtype=np.float32)
    return array


# -- helpers --------------------------------------------------------------------------------------------------
def _string_keys(data: Dict[Any, Any], path: str) -> Dict[str, Any]:
    if not all(isinstance(key, str) for key in data):
        raise ExportError("{}: the saved data has non-text keys; is this an SB2 model file?".format(path))
    return dict(data)


#: Values (each time it is reached, shared references included) and characters a policy kwarg copied into the
#: document may hold: SB2's net_arch is a few dozen numbers, and the document is JSON text.
MAX_KWARG_VALUES = 10000
MAX_KWARG_CHARS = 1 << 20


def _is_plain_data(value: Any, what: str) -> bool:
    """Whether `value` is JSON data the document can carry: None, booleans, floats, integers of at most 64
    bits, strings, lists, tuples and string-keyed dicts. Walked within MAX_KWARG_VALUES values and
    MAX_KWARG_CHARS characters (ExportError beyond): `json.dumps` of ten levels of shared references would
    write gigabytes before answering, and so would the document."""
    pending = [value]
    values, chars = 1, 0
    while pending:
        item = pending.pop()
        if item is None or isinstance(item, (bool, float)):
            continue
        if isinstance(item, int):
            if item.bit_length() > 64:
                return False
            continue
        if isinstance(item, str):
            chars += len(item)
        elif isinstance(item, (list, tuple, dict)):
            values += len(item)  # counted before the elements are looked at
            if values > MAX_KWARG_VALUES:
                raise ExportError("{} holds more than {} values (shared references?); refused".format(
                    what, MAX_KWARG_VALUES))
            if isinstance(item, dict):
                if not all(isinstance(key, str) for key in item):
                    return False
                chars += sum(len(key) for key in item)
                pending.extend(item.values())
            else:
                pending.extend(item)
        else:
            return False
        if chars > MAX_KWARG_CHARS:
            raise ExportError("{} holds more than {} characters; refused".format(what, MAX_KWARG_CHARS))
    return True
