"""SB2 save files made without SB2, and hostile pickles, for the attack, fuzz and safe-loader tests.

`dumps` is Python's own pickler, except that `Global(module, name)` objects and the stand-in classes below
are written as a GLOBAL reference to `module.name` without importing it: so a test can write exactly what
SB2 (gym spaces, `stable_baselines...MlpPolicy`) or an attacker (`os.system`) would put in a file, in either
environment, with neither gym nor Stable-Baselines installed.
"""
import base64
import io
import json
import pickle
import zipfile
from collections import OrderedDict

import numpy as np

from sbif.export.description import Space
from sbif.export.policy_classes import PolicyIdentity
from sbif.export.unnamed_lists import actor_critic_names


class Global(object):
    """A reference to `module.name`, written as a GLOBAL opcode (never imported while writing)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):
        raise AssertionError("only written, never called")


class Call(object):
    """`func(*args)` when unpickled (REDUCE), then `__setstate__(state)` (BUILD) if a state is given."""

    def __init__(self, func, *args, **options):
        self.func, self.args, self.state = func, args, options.get("state")

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)

    def __call__(self, *args):
        raise AssertionError("only written, never called")


class NewObj(object):
    """`cls.__new__(cls)` (NEWOBJ), then `__setstate__(state)`: how pickle writes instances of classes."""

    def __init__(self, cls, state=None):
        self.cls, self.state = cls, state


class Build(object):
    """`target`, then BUILD with `state`: how a hostile file asks the unpickler to set attributes on whatever
    `target` unpickles to (with `(None, {...})` as the state, Python's BUILD calls setattr for each entry)."""

    def __init__(self, target, state):
        self.target, self.state = target, state


class PairsDict(object):
    """A dict written as EMPTY_DICT and one SETITEM per pair, never built while writing: a key that would take
    for ever to hash is hashed only by the reader."""

    def __init__(self, pairs):
        self.pairs = pairs


def named_class(module, name):
    """A class that pickles as a reference to `module.name` (instances: NEWOBJ of it, then their __dict__)."""
    return type(name, (object,), {"sb2_reference": (module, name)})


BOX = named_class("gym.spaces.box", "Box")
RUNNING_MEAN_STD = named_class("stable_baselines.common.running_mean_std", "RunningMeanStd")
DISCRETE = named_class("gym.spaces.discrete", "Discrete")
MLP_POLICY = named_class("stable_baselines.common.policies", "MlpPolicy")
TF_RELU = Global("tensorflow.python.ops.gen_nn_ops", "relu")


class Writer(pickle._Pickler):
    """The pure-Python pickler, writing `Global`s and `named_class`es by name."""

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, Build):
            self.save(obj.target)
            self.save(obj.state)
            self.write(pickle.BUILD)
            return None
        if isinstance(obj, PairsDict):
            self.write(pickle.EMPTY_DICT)
            for key, value in obj.pairs:
                self.save(key)
                self.save(value)
                self.write(pickle.SETITEM)
            return None
        if isinstance(obj, NewObj):
            self.save(obj.cls)
            self.save(())
            self.write(pickle.NEWOBJ)
            if obj.state is not None:
                self.save(obj.state)
                self.write(pickle.BUILD)
            return None
        reference = None
        if isinstance(obj, Global):
            reference = (obj.module, obj.name)
        elif isinstance(obj, type) and "sb2_reference" in obj.__dict__:
            reference = obj.sb2_reference
        if reference is None:
            return pickle._Pickler.save(self, obj, save_persistent_id)
        self.write(pickle.GLOBAL + "{}\n{}\n".format(*reference).encode("utf-8"))


def dumps(obj, protocol=4):
    stream = io.BytesIO()
    Writer(stream, protocol).dump(obj)
    return stream.getvalue()


# -- SB2-like models ------------------------------------------------------------------------------------------
def gym_box(low, high, shape, dtype=np.float32):
    space = object.__new__(BOX)
    space.__dict__.update(dtype=np.dtype(dtype), shape=tuple(shape), low=np.full(shape, low, dtype),
                          high=np.full(shape, high, dtype))
    return space


def gym_discrete(n):
    space = object.__new__(DISCRETE)
    space.__dict__.update(n=n, shape=(), dtype=np.dtype(np.int64))
    return space


def model_data(observation=None, action=None, **extra):
    """SB2 PPO2's saved data dict, with a Box(4) observation and Discrete(2) actions by default."""
    data = {"gamma": 0.99, "n_steps": 128, "cliprange": 0.2, "learning_rate": 0.00025, "verbose": 0,
            "policy": MLP_POLICY, "observation_space": observation or gym_box(-2.0, 3.0, (4,)),
            "action_space": action or gym_discrete(2), "n_envs": 1, "policy_kwargs": {}}
    data.update(extra)
    return data


def model_parameters(data, seed=0, net_arch=None):
    """Random parameters with the names, order and shapes SB2's MlpPolicy has for `data`'s spaces."""
    spaces = [_space(data["observation_space"]), _space(data["action_space"])]
    kwargs = {"net_arch": net_arch} if net_arch is not None else {}
    expected = actor_critic_names(data, kwargs, PolicyIdentity("MlpPolicy", "stable_baselines.common.policies",
                                                               "FeedForwardPolicy", "tanh"), *spaces, path="model")
    rng = np.random.RandomState(seed)
    return OrderedDict((name, rng.standard_normal(shape).astype(np.float32)) for name, shape in expected)


def _space(gym_space):
    attrs = gym_space.__dict__
    if isinstance(gym_space, BOX):
        return Space("box", attrs["shape"], attrs["dtype"].name, attrs["low"], attrs["high"])
    return Space("discrete", (), "int64", n=attrs["n"])


def running_mean_std(shape, **extra_state):
    """A zoo `obs_rms.pkl` object (SB2's RunningMeanStd): mean, var and count, plus any `extra_state`."""
    state = {"mean": np.linspace(-1.0, 1.0, int(np.prod(shape))).reshape(shape), "var": np.full(shape, 4.0),
             "count": 1000.0}
    state.update(extra_state)
    return NewObj(RUNNING_MEAN_STD, state)


def write_pkl(path, data, params, protocol=4):
    """A legacy SB2 file: one pickle of (data, params)."""
    with open(str(path), "wb") as handle:
        handle.write(dumps((data, params), protocol))
    return str(path)


def write_zip(path, data, params, members=None):
    """An SB2 >= 2.8 archive; `members` adds or replaces raw members."""
    readable = {key: value if _is_json(value) else _serialized(value) for key, value in data.items()}
    buffer = io.BytesIO()
    np.savez(buffer, **params)
    contents = OrderedDict([("data", json.dumps(readable, indent=4).encode()), ("parameters", buffer.getvalue()),
                            ("parameter_list", json.dumps(list(params)).encode())])
    contents.update(members or {})
    with zipfile.ZipFile(str(path), "w") as archive:
        for name, content in contents.items():
            archive.writestr(name, content)
    return str(path)


def _is_json(value):
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def _serialized(value):
    """SB2's `data_to_json` entry: the pickle, its type, and its first-level attributes (JSON or str())."""
    kind = type(value)
    name = "{}.{}".format(*kind.sb2_reference) if "sb2_reference" in kind.__dict__ else \
        "{}.{}".format(kind.__module__, kind.__name__)
    entry = {":type:": "<class '{}'>".format(name), ":serialized:": base64.b64encode(dumps(value)).decode()}
    attributes = value if isinstance(value, dict) else getattr(value, "__dict__", {})
    for key, item in attributes.items():
        entry[key] = item if _is_json(item) else str(item)
    return entry


def make_model_files(directory, seed=0):
    """A fresh SB2-like PPO2 model as .zip, .pkl (named parameters) and .pkl (unnamed list)."""
    data = model_data(observation=gym_box(-1.0, 1.0, (3, 2)), action=gym_discrete(3),
                      policy_kwargs={"net_arch": [16, {"pi": [8], "vf": [4]}], "act_fun": TF_RELU})
    params = model_parameters(data, seed, net_arch=[16, {"pi": [8], "vf": [4]}])
    directory = str(directory)
    return {"zip": write_zip(directory + "/generated.zip", data, params),
            "pkl": write_pkl(directory + "/generated.pkl", data, params),
            "pkl_list": write_pkl(directory + "/generated_list.pkl", data, list(params.values()))}


# -- inputs that cost more to build than to store -------------------------------------------------------------
def reused_calls(func, args, count, state=None):
    """`count` calls of `func` on the one same `args` tuple (then BUILD with the one same `state`): the pickler
    writes the arguments once and refers to them by memo afterwards, so each further call costs the file a
    few bytes while the callable builds its result again (`_codecs.encode` of a 1 MiB string: 1 MiB each)."""
    calls = []
    for _ in range(count):
        call = Call(func, state=state)
        call.args = args
        calls.append(call)
    return calls


def shared_nesting(levels, width):
    """A list `levels` deep whose every level holds `width` references to the one below: a few hundred bytes
    pickled, width**levels leaves for anything that walks it (str(), json.dumps, np.asarray)."""
    value = [1]
    for _ in range(levels):
        value = [value] * width
    return value


def doubling_tuple(levels):
    """A tuple holding the tuple below twice, `levels` times: 2**levels nodes to hash, a few bytes per level."""
    value = (1,)
    for _ in range(levels):
        value = (value, value)
    return value
