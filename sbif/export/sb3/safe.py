"""The safe SB3 loader: an `Sb3Description` from the file read as data (`save_file.read_sb3_save`): no torch, no SB3,
no code from the file. It describes the model exactly as the live loader does from the loaded model, so both write
the same document and tensors."""
from __future__ import annotations

from typing import Any, Optional

from .description import ClassName, Sb3Description, sb3_space
from .policy_classes import policy_class
from .save_file import ClassRef, read_sb3_save
from .save_format import canonical_sb3_algorithm, detect_algorithm


def class_names(value: Any) -> Any:
    """policy_kwargs with the reader's class references as `ClassName`s, the description's spelling."""
    if isinstance(value, ClassRef):
        return ClassName(value.module, value.name)
    if isinstance(value, dict):
        return {key: class_names(item) for key, item in value.items()}
    if isinstance(value, list):
        return [class_names(item) for item in value]
    return value


def describe_safe_sb3(path: str, algorithm: Optional[str] = None) -> Sb3Description:
    """The description of the SB3 save at `path`, read as data; `algorithm` overrides the detection."""
    save = read_sb3_save(path)
    policy = ClassName(save.policy_class.module, save.policy_class.name)
    known = policy_class(policy.module, policy.name)
    name = detect_algorithm(known, save.data, path) if algorithm is None else canonical_sb3_algorithm(algorithm)
    provenance = {"exporter": "safe", "framework_version": save.sb3_version, "source": save.source}
    return Sb3Description(name, policy, class_names(save.policy_kwargs),
                          sb3_space(save.observation_space, "{}: observation space".format(path)),
                          sb3_space(save.action_space, "{}: action space".format(path)),
                          save.state_dict, provenance, use_sde=save.data.get("use_sde") is True,
                          exploration_rate=save.data.get("exploration_rate"))
