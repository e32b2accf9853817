"""The live exporter: load an SB2 file with Stable-Baselines itself (Python 3.7 + TensorFlow 1.15).

SB2 reads the file and builds its graph; we take `get_parameters()`, the spaces and the policy kwargs, read
the activation off the TensorFlow graph, and hand a `ModelDescription` to the shared builder. `verify`
then runs SB2 and the new file side by side, so a file that does not reproduce SB2 is never written.
What the file names and this interpreter cannot import (the zoo's `utils` policies, modules SB2 deleted) gets
the safe loader's stand-ins while SB2 unpickles it (`stand_ins`), so every file the safe loader exports can be
verified here too.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
import types
import warnings
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import ExportError, SbifError, UnsupportedError, preview
from ..progress import Progress
from .activations import activation_from_reference
from .description import STRUCTURAL_KWARGS, ModelDescription, Space
from .parameter_layouts import first_hidden_layer_output
from .policy_classes import POLICY_MODULES, policy_identity
from .sb2_files import canonical_algorithm, describe_source, detect_algorithm

#: TF op type of a hidden layer's activation -> SBIF activation (LeakyRelu reads its alpha from the op).
ACTIVATION_OPS = {"Tanh": "tanh", "Relu": "relu", "Relu6": "relu6", "Elu": "elu", "Selu": "selu",
                  "Sigmoid": "sigmoid", "Softplus": "softplus", "Softsign": "softsign", "LeakyRelu": "leaky_relu"}


def import_sb2():
    """Import stable_baselines quietly, or explain which environment the live loader needs."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with quiet():
            import stable_baselines
            import tensorflow as tf
    except ImportError as exc:
        raise ExportError("the live loader needs Stable-Baselines 2 and TensorFlow 1.15 (the Python 3.7 "
                          "environment, .venv-sb2): {}".format(exc)) from None
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
    return stable_baselines


def load_sb2_model(path: str, algorithm: Optional[str] = None) -> Tuple[Any, str]:
    """(the SB2 model, its algorithm name), loaded by SB2 itself.

    `algorithm` is any spelling `canonical_algorithm` accepts ('ppo2', as the zoo names its folders). Globals the
    file's pickles name that this interpreter cannot import get the stand-ins the safe loader infers for them while
    SB2 unpickles the file (`stand_ins`), so what the safe loader exports can be verified against SB2.
    """
    if algorithm is not None:
        algorithm = canonical_algorithm(algorithm)
    with Progress("loading with Stable-Baselines") as progress:
        progress.doing("importing TensorFlow and Stable-Baselines")
        sb2 = import_sb2()
        if not os.path.isfile(path):
            raise ExportError("no such file: {}".format(path))
        progress.doing("reading {}".format(os.path.basename(path)))
        with stand_ins(path, algorithm):
            if algorithm is None:
                try:
                    with quiet():
                        data, _ = sb2.common.base_class.BaseRLModel._load_from_file(path)
                except Exception as exc:  # SB2 raises anything from zipfile, json or pickle
                    raise ExportError("Stable-Baselines cannot read {}: {}".format(path, _one_line(exc))) from None
                algorithm = detect_algorithm(data, path)
            model_class = getattr(sb2, algorithm, None)
            if model_class is None:
                raise ExportError("this Stable-Baselines installation has no {} (DDPG, GAIL, PPO1 and TRPO need "
                                  "mpi4py)".format(algorithm))
            progress.doing("building the {} model's TensorFlow graph".format(algorithm))
            try:
                with quiet():
                    model = model_class.load(path)
            except Exception as exc:
                raise ExportError("Stable-Baselines could not load {} as {}: {}".format(
                    path, algorithm, _one_line(exc))) from None
    return model, algorithm


# -- stand-ins for what the file names and this interpreter cannot import -----------------------------------
@contextlib.contextmanager
def stand_ins(path: str, algorithm: Optional[str] = None) -> Iterator[None]:
    """While the block runs, stand-ins for the globals the pickles of `path` name that cannot be imported here,
    inferred as the safe loader reads the file. Afterwards `sys.modules` and every module touched are as before,
    so nothing leaks into later loads.

    Two kinds of file need them: rl-baselines-zoo models, whose policy classes live in the zoo's `utils` module
    (`utils.CustomDQNPolicy`), and DDPG pickles of SB2 < 2.6, which refer to the `stable_baselines.ddpg.memory`
    module SB2 deleted. The policy class gets a real SB2 subclass that fixes the kwargs the safe loader reads off
    the parameters (`policy_stand_in`); anything else only a placeholder class of the same name, as the safe
    reader's inert stand-in (SB2 keeps such references, like DDPG's `memory_policy`, without using them). A file
    the safe reader refuses gets none: SB2 then reads it alone and says what it misses.
    """
    from .safe import read_source
    from .safe_pickle import referenced_globals

    try:
        source = read_source(path)
    except SbifError:
        yield
        return
    missing = [(module, name) for module, name in referenced_globals(source.data)
               if "." not in name and _missing(module, name)]
    if not missing:
        yield
        return
    try:
        policy = policy_identity(source.data.get("policy"), None, algorithm or "", path)
        policy_reference: Optional[Tuple[str, str]] = (policy.module, policy.name)
    except SbifError:
        policy_reference = None
    created: List[str] = []  # modules entered in sys.modules, in creation order
    added: List[Tuple[types.ModuleType, str]] = []  # stand-ins set on modules that exist
    try:
        for module, name in missing:
            stand_in = policy_stand_in(path, algorithm, module, name) if (module, name) == policy_reference \
                else placeholder_class(module, name)
            target = _module_for_stand_ins(module, created)
            setattr(target, name, stand_in)
            if module not in created:
                added.append((target, name))
        yield
    finally:
        for target, name in added:
            delattr(target, name)
        for module in created:
            sys.modules.pop(module, None)


def _missing(module: str, name: str) -> bool:
    """Whether an unpickler cannot find `module.name` here: the module (or a package above it) does not exist,
    or has no such name. A module that exists but fails to import is not missing: SB2 then reports its error,
    which a stand-in would hide."""
    try:
        imported = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        absent = exc.name or ""
        return module == absent or module.startswith(absent + ".")
    except Exception:  # the module's own code failed: not ours to paper over
        return False
    return not hasattr(imported, name)


def _module_for_stand_ins(module: str, created: List[str]) -> types.ModuleType:
    """The module to hold stand-ins: the real one where it exists (`_missing` imported it), else a new empty
    package entered in `sys.modules` (and in `created`), below new packages where those are missing too."""
    if module in sys.modules:
        return sys.modules[module]
    parent_name, _, child = module.rpartition(".")
    parent = _module_for_stand_ins(parent_name, created) if parent_name else None
    package = types.ModuleType(module, "Stand-in for {}, which this interpreter cannot import (sbif live "
                                       "loader).".format(module))
    package.__path__ = []  # a package: stand-ins for its submodules import too
    sys.modules[module] = package
    created.append(module)
    if parent_name in created:
        setattr(parent, child, package)
    return package


def placeholder_class(module: str, name: str) -> type:
    """A class named `module.name` that does nothing: SB2 only keeps such references (DDPG's `memory_policy`)."""
    return type(name, (object,), {"__module__": module, "__doc__": "Stand-in for {}.{}, which this interpreter "
                                  "cannot import (sbif live loader).".format(module, name)})


def policy_stand_in(path: str, algorithm: Optional[str], module: str, name: str) -> type:
    """A real SB2 policy class named `module.name` for a policy class this interpreter cannot import (the zoo's
    `utils.CustomSACPolicy`): a subclass of the algorithm's FeedForwardPolicy (LstmPolicy for a recurrent one)
    that fixes the kwargs the safe loader resolves from the file, as the zoo's classes fix theirs in code
    (`CustomSACPolicy(FeedForwardPolicy)` with layers=[256, 256], feature_extraction="mlp")."""
    from .build import build_sbif
    from .safe import describe_safe_file

    try:
        description = describe_safe_file(path, algorithm)
        resolved = build_sbif(description).document["provenance"]["policy_kwargs"]
    except SbifError as exc:
        # the safe loader's reason, without its path and its advice (which is for the safe loader)
        reason = str(exc)[len(path) + 2:] if str(exc).startswith(path + ": ") else str(exc)
        raise ExportError("Stable-Baselines cannot load {}: its policy class {} cannot be imported here, and the "
                          "safe loader cannot infer a stand-in for it: {}. Put the module that defines it on "
                          "PYTHONPATH to load it live, or export with the safe loader and --policy-kwargs "
                          "(unverified)".format(path, preview("{}.{}".format(module, name)),
                                                reason.split("; ")[0])) from None
    family = description.extra.get("model_class", description.algorithm)  # HER: the algorithm it wraps
    policies = importlib.import_module(POLICY_MODULES[family])
    base = policies.LstmPolicy if "n_lstm" in resolved else policies.FeedForwardPolicy
    fixed = sb2_policy_kwargs(resolved)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.update(fixed)
        base.__init__(self, *args, **kwargs)

    return type(name, (base,), {"__init__": __init__, "__module__": module, "__qualname__": name,
                                "__doc__": "Stand-in for {}.{}: {} with {} (sbif live loader).".format(
                                    module, name, base.__name__, sorted(fixed))})


def sb2_policy_kwargs(resolved: Dict[str, Any]) -> Dict[str, Any]:
    """SB2 constructor kwargs for the structure a document's resolved `policy_kwargs` describe: the structural
    ones as they are, the activation as its TensorFlow function, MLP features unless they say 'cnn' (SB2's
    actor-critic policies default to 'cnn'); `cnn_extractor` is nature_cnn, SB2's default, whenever a file is
    exported."""
    fixed = {key: resolved[key] for key in STRUCTURAL_KWARGS if key in resolved}
    fixed.setdefault("feature_extraction", "mlp")
    if "act_fun" in resolved:
        fixed["act_fun"] = tf_activation(resolved["act_fun"])
    return fixed


def tf_activation(activation: Dict[str, Any]) -> Any:
    """The TensorFlow function SB2 would be given for an SBIF activation ({'name': 'relu'}); leaky_relu at TF's
    alpha 0.2, the only one a file can name (`activations.ACTIVATIONS`)."""
    import tensorflow as tf

    functions = {"tanh": tf.tanh, "relu": tf.nn.relu, "relu6": tf.nn.relu6, "elu": tf.nn.elu, "selu": tf.nn.selu,
                 "sigmoid": tf.sigmoid, "softplus": tf.nn.softplus, "softsign": tf.nn.softsign,
                 "swish": tf.nn.swish, "leaky_relu": tf.nn.leaky_relu, "identity": tf.identity}
    if activation["name"] not in functions:
        raise UnsupportedError("no TensorFlow function for the activation {}".format(preview(activation["name"])))
    return functions[activation["name"]]


def describe_live_model(model: Any, algorithm: str, path: str) -> ModelDescription:
    """The builder's input, read from a loaded SB2 model."""
    import stable_baselines
    from .build import SUPPORTED_ALGORITHMS

    if algorithm == "HER":
        return describe_live_her(model, path)

    if algorithm not in SUPPORTED_ALGORITHMS:
        raise UnsupportedError("{} models are not supported by this SBIF version yet (supported: {})".format(
            algorithm, ", ".join(SUPPORTED_ALGORITHMS)))
    policy_class = model.policy
    kwargs = dict(model.policy_kwargs or {})
    kwargs.update(policy_object_kwargs(model))
    structural: Dict[str, Any] = {}
    act_fun = kwargs.get("act_fun")
    try:
        parameters = OrderedDict((name, np.asarray(value)) for name, value in model.get_parameters().items())
    except Exception as exc:
        raise ExportError("Stable-Baselines could not read the parameters of {}: {}".format(
            path, _one_line(exc))) from None
    traced = trace_activation(model, parameters)
    if act_fun is not None:
        try:
            declared = activation_from_reference(act_fun.__module__ or "", getattr(act_fun, "__qualname__",
                                                                                    act_fun.__name__))
        except UnsupportedError:
            declared = None
        if declared is not None and traced is not None and declared["name"] != traced["name"]:
            raise ExportError("policy_kwargs say act_fun={} but the TensorFlow graph applies {}".format(
                declared["name"], traced["name"]))
        structural["act_fun"] = declared or traced
        if structural["act_fun"] is None:
            raise UnsupportedError("cannot identify the activation {!r}".format(act_fun))
    elif traced is not None:
        structural["act_fun"] = traced
    structural.update(structural_kwargs(kwargs))
    return ModelDescription(
        algorithm=algorithm,
        policy_class=policy_class.__name__,
        policy_base=_sb2_base_name(policy_class, stable_baselines),
        policy_kwargs=structural,
        observation_space=Space.from_gym(model.observation_space),
        action_space=Space.from_gym(model.action_space),
        parameters=parameters,
        provenance={"exporter": "live", "sb2_version": stable_baselines.__version__, "source": describe_source(path)},
        extra=algorithm_settings(model, algorithm),
    )


def policy_object_kwargs(model: Any) -> Dict[str, Any]:
    """Structural settings held by the policy object of SAC/TD3/DDPG (`policy_tf`), where a custom subclass may
    fix them in its class instead of policy_kwargs: the activation (`activ_fn`; DDPG `activ`) and, for CNN
    features, the extractor and its kwargs."""
    policy = getattr(model, "policy_tf", None)
    if policy is None:
        return {}
    found: Dict[str, Any] = {}
    activation = getattr(policy, "activ_fn", None) or getattr(policy, "activ", None)
    if activation is not None:
        found["act_fun"] = activation
    if getattr(policy, "feature_extraction", None) == "cnn":
        found.update(getattr(policy, "cnn_kwargs", None) or {})
        if getattr(policy, "cnn_extractor", None) is not None:
            found["cnn_extractor"] = policy.cnn_extractor
    return found


def algorithm_settings(model: Any, algorithm: str) -> Dict[str, Any]:
    """`ModelDescription.extra`: settings outside the policy that change what predict computes (DDPG's
    observation normalization and clip, the return range and normalization of its critic; the exploration noise
    TD3's and DDPG's stochastic predict add)."""
    extra: Dict[str, Any] = {}
    if algorithm == "DDPG":
        for key in ("observation_range", "return_range"):
            extra[key] = tuple(float(bound) for bound in getattr(model, key))
        for key in ("normalize_observations", "normalize_returns"):
            extra[key] = bool(getattr(model, key))
        extra["param_noise"] = model.param_noise is not None
    if algorithm in ("TD3", "DDPG"):
        extra["action_noise"] = describe_action_noise(model.action_noise)
    return extra


def describe_action_noise(noise: Any) -> Optional[Dict[str, Any]]:
    """None, {'kind': 'normal', 'mean', 'sigma'} (float64 arrays, as np.random.normal converts them) for SB2's
    NormalActionNoise itself, or {'kind': class name} for any other noise (stateful, or unknown code)."""
    if noise is None:
        return None
    from stable_baselines.common.noise import NormalActionNoise

    if type(noise) is NormalActionNoise:
        return {"kind": "normal", "mean": np.asarray(noise._mu, dtype=np.float64),
                "sigma": np.asarray(noise._sigma, dtype=np.float64)}
    return {"kind": type(noise).__name__}


def structural_kwargs(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The JSON-able structural kwargs, with `cnn_extractor` named ('nature_cnn' or module.qualname)."""
    found = {key: kwargs[key] for key in STRUCTURAL_KWARGS if key in kwargs and kwargs[key] is not None}
    extractor = kwargs.get("cnn_extractor")
    if extractor is not None:
        module, name = getattr(extractor, "__module__", ""), getattr(extractor, "__qualname__", repr(extractor))
        found["cnn_extractor"] = name if (module, name) == ("stable_baselines.common.policies", "nature_cnn") \
            else "{}.{}".format(module, name)
    return found


def describe_live_her(model: Any, path: str) -> ModelDescription:
    """HER's inner model, described as itself, plus the dict observation layout."""
    from .her import observation_dict

    inner_algorithm = type(model.model).__name__
    description = describe_live_model(model.model, inner_algorithm, path)
    description.algorithm = "HER"
    description.extra.update(model_class=inner_algorithm, observation_dict=observation_dict(model.observation_space))
    return description


def trace_activation(model: Any, parameters: "OrderedDict[str, np.ndarray]") -> Optional[Dict[str, Any]]:
    """The activation applied after the first hidden layer, read from the ops that consume its output."""
    layer_output = first_hidden_layer_output(parameters)
    if layer_output is None:
        return None
    types = set()
    leaky_alpha = None
    for op in model.graph.get_operations():
        if op.name.startswith("gradients") or "/gradients" in op.name or op.type.endswith("Grad"):
            continue  # training ops read the layer output too
        for tensor in op.inputs:
            if tensor.name == layer_output or tensor.name.endswith("/" + layer_output):
                types.add(op.type)
                if op.type == "LeakyRelu":
                    leaky_alpha = float(op.get_attr("alpha"))
    activations = {ACTIVATION_OPS[t] for t in types if t in ACTIVATION_OPS}
    if {"Sigmoid", "Mul"} <= types:
        return {"name": "swish"}  # x * sigmoid(x): both ops read the layer output
    if types and types <= {"MatMul"}:
        return {"name": "identity"}
    if len(activations) != 1:
        return None
    name = activations.pop()
    return {"name": name, "alpha": leaky_alpha} if name == "leaky_relu" else {"name": name}


def _sb2_base_name(policy_class: type, sb2: Any) -> str:
    from stable_baselines.common.policies import FeedForwardPolicy, LstmPolicy

    for base in (FeedForwardPolicy, LstmPolicy):
        if issubclass(policy_class, base):
            return base.__name__
    return policy_class.__mro__[1].__name__ if len(policy_class.__mro__) > 1 else ""


@contextlib.contextmanager
def quiet():
    """Silence the deprecation chatter TensorFlow 1.15 and SB2 print on import and load."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def sb2_policy(model: Any) -> Any:
    """The policy object SB2's predict runs: the owner of `model.step` (actor-critic), else the algorithm's
    own policy attribute (`step_model` for DQN, `policy_tf` for SAC/TD3/DDPG)."""
    step = getattr(model, "step", None)
    if step is not None and hasattr(step, "__self__"):
        return step.__self__
    for attribute in ("step_model", "policy_tf"):
        if getattr(model, attribute, None) is not None:
            return getattr(model, attribute)
    raise ExportError("cannot find the policy object of a {} model".format(type(model).__name__))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return "{}: {}".format(type(exc).__name__, text[0] if text else "")


def compare_with_sb2(model: Any, policy: Any, observations: np.ndarray,
                     normalization: Any = None) -> Dict[str, float]:
    """Run SB2 and an SBIF policy on the same batch; return how well each output agrees (SPEC section 6).

    Discrete actions are counted in `action_mismatches` (near-ties excluded); every float output is reported as
    its worst |SB2 − SBIF| / (λ·σ) under the error scales of the file on those observations
    (`sbif.runtime.error_scales`): <= 1 is a pass. With `normalization` (VecNormalize statistics folded into the
    file), SB2 gets the normalized observations and SBIF the raw ones.
    """
    from ..compare import discrete_disagreements
    from ..runtime.error_scales import ErrorScales, decision_scores, predict_agreement, result_agreement

    report: Dict[str, float] = {}
    raw = observations
    if normalization is not None:
        observations = normalization.apply(raw)
    expected, _ = model.predict(observations, deterministic=True)
    actual, _ = policy.predict(raw, deterministic=True)
    distribution = policy.document["predict"].get("distribution")
    feeds = policy.make_feeds(raw, None, None)[0]
    scales = ErrorScales(policy.model)
    sb2_batch = np.asarray(observations).reshape(feeds["obs"].shape)
    if np.asarray(actual).dtype.kind == "f" and (distribution is None or distribution["kind"] != "bernoulli"):
        report["action"] = predict_agreement(policy, expected, "predict", raw, "action", deterministic=True)
    else:
        values, found = scales.run(feeds, list(distribution["parameters"].values()))
        scores, score_scales = decision_scores(distribution, values, found)
        report["action_mismatches"] = discrete_disagreements(expected, actual, scores, score_scales)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SAC, TD3, DDPG warn that they have no action probabilities (None)
        expected_proba = model.action_probability(observations)
    if expected_proba is not None:
        report["probabilities"] = predict_agreement(policy, expected_proba, "action_probability", raw,
                                                    "probability")
    sb2_step_policy = sb2_policy(model)
    if "value" in policy.output_names and hasattr(sb2_step_policy, "value"):
        recurrent = {} if not policy.recurrent else {"state": model.initial_state, "mask": [False] * len(sb2_batch)}
        report["value"] = predict_agreement(policy, sb2_step_policy.value(sb2_batch, **recurrent), "value", raw,
                                            "value")
    if "q_values" in policy.output_names and getattr(sb2_step_policy, "q_values", None) is not None:
        # DQN: softmax and argmax cannot see a constant offset (the dueling state value): compare q itself
        expected_q = sb2_step_policy.sess.run(sb2_step_policy.q_values, {sb2_step_policy.obs_ph: sb2_batch})
        values, found = scales.run(feeds, ["q_values"])
        report["q_values"] = result_agreement(expected_q, values["q_values"], found["q_values"])
    if getattr(model, "policy_tf", None) is not None:
        from .off_policy_live import sb2_critic_values  # SAC, TD3, DDPG: the critics at the deterministic action

        for name, expected_critic in sb2_critic_values(model, sb2_batch).items():
            if name in policy.output_names:
                values, found = scales.run(feeds, [name])
                report[name] = result_agreement(expected_critic, values[name], found[name])
    return report


def verify_export(model: Any, policy: Any, count: int = 64, seed: int = 0,
                  normalization: Any = None) -> Dict[str, float]:
    """Compare on `count` sampled observations; raise ExportError if SBIF does not reproduce SB2 (SPEC section
    6, the conformance suite's rule)."""
    from ..compare import sample_observations

    observations = sample_observations(policy.observation_space, count, np.random.default_rng(seed))
    if normalization is not None:  # raw observations around the statistics, some far outside
        observations = normalization.typical_observations(observations.shape, np.random.default_rng(seed)).astype(
            observations.dtype)
    # SB2 runs a recurrent policy only on exactly the n_envs rows it was built for: compare chunk by chunk
    rows = int(getattr(model, "n_envs", 1) or 1) if policy.recurrent else len(observations)
    starts = range(0, len(observations) - rows + 1, rows)
    chunks = []
    with Progress("verifying against SB2", total=rows * len(starts), unit="observations") as progress:
        for start in starts:
            chunks.append(compare_with_sb2(model, policy, observations[start:start + rows], normalization))
            progress.advance(rows)
    # mismatched discrete actions add up over the chunks; every other entry is a worst case
    report = {key: (sum if key == "action_mismatches" else max)(chunk[key] for chunk in chunks) for key in chunks[0]}
    failures = ["{} on {} of {} observations".format(k, int(v), count) if k == "action_mismatches"
                else "{} ({:.3g} times its error scale bound)".format(k, v) for k, v in report.items()
                if (v > 0 if k == "action_mismatches" else v > 1.0)]
    if failures:
        raise ExportError("the exported policy does not reproduce SB2: " + "; ".join(failures) +
                          ". Please report this with the model file.")
    return report
