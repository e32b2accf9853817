"""Which globals Stable-Baselines3's pickles may name, as `safe_pickle.Dialect`s.

SB3 writes three kinds of pickle, each read with the dialect that allows what it needs and nothing more:

- the `:serialized:` values of a save's `data` (policy class, policy kwargs, spaces) and rl-zoo3's
  `vecnormalize.pkl`: gymnasium or gym spaces, numpy arrays and random generators, Stable-Baselines3 and
  sb3-contrib classes, torch activation and optimizer classes and `torch.device`, all as inert stand-ins
  (`SB3_DATA_DIALECT`);
- torch's `data.pkl` of a `.pth` state dict: an OrderedDict of tensors over storages named by persistent ids
  (its dialect lives with the storage reader, `torch_storage.torch_dialect`).
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

from ...errors import ExportError
from ..safe_pickle import (BUILTIN_STUBS, CLOUDPICKLE_HELPERS, CLOUDPICKLE_MODULES, GYM_SPACES, RANDOM_STATE_NAMES,
                           SB2_DIALECT, Dialect)

#: Space classes a file may name: those an SB3 policy takes, and the others so that they are refused by name
#: when the space is read (`save_file.space_record`), not as an unknown global.
SPACE_CLASSES = GYM_SPACES | {"Text", "Graph", "GraphInstance", "Sequence", "OneOf"}
SPACE_MODULES = ("gymnasium.spaces", "gym.spaces")
#: numpy >= 1.17 pickles a seeded Generator through its bit generator and seed sequence (a space's np_random).
SEED_SEQUENCE_NAMES = {"SeedSequence", "__pyx_unpickle_SeedSequence"}
STABLE_BASELINES3_MODULES = ("stable_baselines3", "sb3_contrib")
#: torch classes policy kwargs name: activations (`activation_fn`, nn.Identity among them), optimizers, devices,
#: and nn.Module, the base of a module class the training script defines (pickled by value, read as a name).
TORCH_ACTIVATION_MODULE = "torch.nn.modules.activation"
TORCH_STUBS = {("torch", "device"), ("torch.nn.modules.linear", "Identity"), ("torch.nn.modules.module", "Module")}


def _set(items: Any = ()) -> set:
    """`builtins.set`, from a list or tuple (protocol 2 writes a set so; VecNormalize's `obs_keys` is one)."""
    if not isinstance(items, (list, tuple)):
        raise ExportError("builtins.set with unexpected arguments in the pickle")
    return set(items)


def sb3_allowed_stub(module: str, name: str) -> bool:
    """Whether `module.name` is something SB3 data pickles refer to and may stand in as an inert Stub."""
    top = module.split(".")[0]
    if (module, name) in BUILTIN_STUBS or (module, name) in TORCH_STUBS:
        return True
    if top in STABLE_BASELINES3_MODULES:
        return True  # policies, feature extractors, VecNormalize, RunningMeanStd, RMSpropTFLike
    if any(module == space or module.startswith(space + ".") for space in SPACE_MODULES):
        return name in SPACE_CLASSES
    if module.startswith("numpy.random"):
        return name in RANDOM_STATE_NAMES or name in SEED_SEQUENCE_NAMES
    if module in CLOUDPICKLE_MODULES:
        return name in CLOUDPICKLE_HELPERS  # classes defined in a training script, pickled by value
    if module == TORCH_ACTIVATION_MODULE:
        return True
    return module == "torch.optim" or module.startswith("torch.optim.")


#: numpy's rebuilders and the Python types SB2's dialect maps (`safe_pickle._SPECIAL`), plus `builtins.set`.
SB3_DATA_SPECIAL: Dict[Tuple[str, str], Any] = dict(SB2_DIALECT.special)
SB3_DATA_SPECIAL[("builtins", "set")] = _set

SB3_DATA_DIALECT = Dialect(
    "SB3", "numpy arrays, gym and gymnasium spaces, Stable-Baselines3 and sb3-contrib names, and torch "
    "activations, optimizers and devices", SB3_DATA_SPECIAL, sb3_allowed_stub)

__all__ = ["SB3_DATA_DIALECT", "SB3_DATA_SPECIAL", "SPACE_CLASSES", "SPACE_MODULES", "sb3_allowed_stub"]
