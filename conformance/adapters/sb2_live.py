"""Stable-Baselines 2 itself as a conformance runtime: the live oracle (SB2 environment: Python 3.7, TF 1.15).

    python -m conformance.adapters.sb2_live [--sources DIR_OR_FILE ...] [--map MODEL.sbif=SOURCE.zip ...]

For a request naming an `.sbif` file, the adapter loads the SB2 model it was exported from — the file named in
the document's provenance (`source.file_name`, checked against `source.sha256`), looked for next to the
`.sbif` file, as `<model>.zip`/`.pkl`, under `--sources`, or as given by `--map` — and answers with SB2:

- `predict` requests call the model's own `predict`, `action_probability` and the policy's `value`;
- `run` requests evaluate the policy's TensorFlow tensors for the file's outputs (by role: the deterministic and
  sampled actions with predict's post-processing, logits, probabilities, mean, std, value, Q-values, state);
- sampling uses the request's noise: the policy's `RandomUniform` / `RandomStandardNormal` ops are fed
  (TensorFlow 1 lets any tensor be fed), and DQN's NumPy `random.choice` is given the uniforms;
- recurrent policies, which SB2 builds for a fixed number of envs, get the rows in chunks of that size, padded
  with zeros (rows are independent, so padding changes nothing else).

Outputs SB2 has no tensor for are left out of the result and listed in its `missing` field. A file with
VecNormalize statistics folded in takes raw observations, which SB2's model never sees: in-process, `add` can give
the oracle those statistics (`sbif.export.normalization.ObservationNormalization`, per frame when the zoo stacks
frames), and SB2 is then fed the normalized observations, as `VecNormalize` (under `VecFrameStack`) feeds it;
without them such files are answered `skipped`.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..protocol import Answer, Runtime, hello_message, serve
from .sources import SourceFinder, SourceNotFound

ACTOR_CRITIC = ("A2C", "ACER", "ACKTR", "PPO1", "PPO2", "TRPO", "GAIL")
#: the roles the oracle maps for off-policy algorithms (the critics, evaluated at SBIF's chosen action, are not)
OFF_POLICY_ROLES = {"SAC": ("action", "action_sample", "mean", "std", "value"), "TD3": ("action", "action_sample"),
                    "DDPG": ("action", "action_sample")}
RANDOM_OPS = ("RandomUniform", "RandomStandardNormal")


class Sb2Runtime(Runtime):
    """The oracle, in-process (used by `conformance.record` and served by `main`)."""

    def __init__(self, sources: Sequence[str] = (), mapping: Optional[Mapping[str, str]] = None):
        from sbif.export.live import import_sb2

        sb2 = import_sb2()
        import tensorflow as tf

        self.hello = hello_message("stable-baselines", sb2.__version__, "python {}.{} + tensorflow {}".format(
            sys.version_info[0], sys.version_info[1], tf.__version__), ("run", "predict", "recurrent", "sampling"),
            None)
        self.finder = SourceFinder(sources, mapping, (".zip", ".pkl"), "SB2 file")
        #: .sbif path -> the VecNormalize statistics folded into it (given by `add`; None: none)
        self.normalizations: Dict[str, Any] = {}
        self._models: Dict[str, "Sb2Model"] = {}

    # -- finding the SB2 file ----------------------------------------------------------------------------------
    def source_of(self, sbif_path: str, provenance: Mapping[str, Any]) -> str:
        return self.finder.find(sbif_path, provenance)

    def add(self, sbif_path: str, source: str, model: Any = None, normalization: Any = None) -> None:
        """Use `source` (and, to save loading it again, the SB2 `model` already loaded from it) for `sbif_path`;
        `normalization` is the `ObservationNormalization` the file was exported with, if any."""
        from ..models import ModelInfo

        key = os.path.abspath(sbif_path)
        self.finder.mapping[key] = os.path.abspath(source)
        self.normalizations[key] = normalization
        self._models.pop(key, None)
        if model is not None:
            self._models[key] = Sb2Model(ModelInfo(key), source, model, normalization)

    def model(self, sbif_path: str) -> "Sb2Model":
        key = os.path.abspath(sbif_path)
        if key not in self._models:
            from ..models import ModelInfo

            info = ModelInfo(key)
            self._models[key] = Sb2Model(info, self.source_of(key, info.provenance), None,
                                         self.normalizations.get(key))
        return self._models[key]

    # -- requests -----------------------------------------------------------------------------------------------
    def request(self, request: Mapping[str, Any]) -> Answer:
        kind = request.get("type")
        if kind not in ("run", "predict"):
            return Answer("skipped", message="the SB2 oracle answers run and predict requests, not {!r}".format(kind))
        try:
            model = self.model(request["model"])
            problem = model.unsupported()
            if problem:
                return Answer("skipped", message=problem)
            if kind == "run":
                outputs, missing = model.run(request["inputs"], request["outputs"])
                return Answer("result", outputs, missing=missing)
            return Answer("result", model.predict_request(request))
        except SourceNotFound as exc:
            return Answer("errored", message=str(exc))
        except Exception as exc:
            return Answer("errored", message="{}: {}".format(type(exc).__name__, exc),
                          details=traceback.format_exc(limit=6))


class Sb2Model:
    """One SB2 model and the roles of its tensors, for the outputs of the `.sbif` file exported from it."""

    def __init__(self, info: Any, source: str, model: Any = None, normalization: Any = None):
        from sbif.export.live import load_sb2_model, quiet, sb2_policy

        self.info = info
        self.source = source
        self.normalization = normalization
        self.algorithm = info.provenance["algorithm"]
        self.model = model if model is not None else load_sb2_model(source, self.algorithm)[0]
        if self.algorithm == "HER":  # the wrapped model predicts on the flattened observation the file takes
            self.model = self.model.model
            self.algorithm = type(self.model).__name__
        self.policy = sb2_policy(self.model)
        self.quiet = quiet
        shape = self.policy.obs_ph.shape
        self.rows = shape[0].value if shape.ndims and shape[0].value is not None else None
        self.recurrent = info.recurrent is not None
        predict = info.predict
        parameters = (info.distribution or {}).get("parameters", {})
        #: SBIF output name -> role
        self.roles: Dict[str, str] = {}
        for role, name in (("action_sample", predict.get("stochastic_action")), ("action", predict["deterministic_action"])):
            if name:
                self.roles[name] = role  # (a file whose two actions are one output keeps the deterministic role)
        for role, name in parameters.items():
            self.roles.setdefault(name, role)
        for name in ("value", "q_values"):
            if name in info.outputs:
                self.roles.setdefault(name, name)
        if info.recurrent:
            self.roles[info.recurrent["state_output"]] = "state"
        self.noise_tensors = self._noise_tensors() if self.algorithm in ACTOR_CRITIC + ("SAC",) else []

    def unsupported(self) -> Optional[str]:
        folded = self.info.provenance.get("vecnormalize")
        if folded is not None and self.normalization is None:
            return ("the file folds VecNormalize statistics into its graph; the SB2 model does not include them, "
                    "so SB2 alone cannot answer for it")
        if folded is not None and folded != self.normalization.as_kwargs():
            return "the oracle was given normalization {} but the file folds in {}".format(
                self.normalization.as_kwargs(), folded)
        if folded is None and self.normalization is not None:
            return "the oracle was given normalization statistics but the file folds in none"
        return None

    def fed(self, observations: Any) -> Any:
        """What SB2's model is fed for the file's observations: VecNormalize's normalization (per frame) when the
        file folds it in, else the observations themselves."""
        if self.normalization is None:
            return observations
        return self.normalization.apply(np.asarray(observations, np.float64))

    # -- noise --------------------------------------------------------------------------------------------------
    def _noise_tensors(self) -> List[Any]:
        """The random tensors behind the policy's sampled action, in the order of the file's noise columns."""
        action = self.policy.policy if self.algorithm == "SAC" else self.policy.action
        parts = list(action.op.inputs) if action.op.type == "Pack" else [action]
        found = []
        for part in parts:
            ops = _upstream_ops(part, RANDOM_OPS)
            if len(ops) != 1:
                raise RuntimeError("expected one random op behind {}, found {}".format(part.name, len(ops)))
            found.append(ops[0].outputs[0])
        return found

    def noise_feeds(self, noise: Mapping[str, np.ndarray]) -> Dict[Any, np.ndarray]:
        if not self.noise_tensors or not noise:
            return {}
        entries = self.info.noise_inputs
        if len(entries) != 1:
            raise RuntimeError("the file has {} noise inputs; the SB2 oracle maps one".format(len(entries)))
        values = np.asarray(noise[entries[0]["name"]], np.float32)
        nvec = (self.info.distribution or {}).get("nvec")
        if len(self.noise_tensors) == 1:
            return {self.noise_tensors[0]: values}
        splits = np.split(values, np.cumsum(nvec)[:-1], axis=-1)
        return dict(zip(self.noise_tensors, splits))

    @contextlib.contextmanager
    def injected(self, noise: Optional[Mapping[str, np.ndarray]]):
        """SB2's own predict, with the request's noise fed to the policy's random ops (or to DQN's choice)."""
        if not noise:
            yield
            return
        if self.algorithm == "DQN":
            uniform = np.asarray(noise[self.info.noise_inputs[0]["name"]], np.float64).reshape(-1)
            draws = iter(uniform)
            original = np.random.choice

            def choice(n, p=None, *args, **kwargs):
                cdf = np.cumsum(np.asarray(p, np.float64))
                cdf /= cdf[-1]
                return int(cdf.searchsorted(next(draws), side="right"))

            np.random.choice = choice
            try:
                yield
            finally:
                np.random.choice = original
            return
        if self.algorithm in ("TD3", "DDPG"):
            with self.action_noise(noise):
                yield
            return
        feeds = self.noise_feeds(noise)
        session = self.policy.sess
        run = session.run

        def run_with_noise(fetches, feed_dict=None, **kwargs):
            merged = dict(feed_dict or {})
            merged.update(feeds)
            return run(fetches, merged, **kwargs)

        session.run = run_with_noise
        try:
            yield
        finally:
            del session.run

    @contextlib.contextmanager
    def action_noise(self, noise: Mapping[str, np.ndarray]):
        """TD3/DDPG's exploration noise (`NormalActionNoise`: `np.random.normal(mu, sigma)`) drawn from the request's
        standard normals, one draw per row (SB2 draws one vector per call and adds it to every row; rows are
        independent in SBIF, so the oracle gives each row its own draw: the same thing for one observation)."""
        z = np.asarray(noise[self.info.noise_inputs[0]["name"]], np.float64)
        original = np.random.normal
        flatten = self.algorithm == "DDPG"  # DDPG adds the noise to the flattened action

        def normal(loc=0.0, scale=1.0, size=None):
            value = np.asarray(loc) + np.asarray(scale) * z
            return value.reshape(-1) if flatten else value

        np.random.normal = normal
        try:
            yield
        finally:
            np.random.normal = original

    # -- run requests -------------------------------------------------------------------------------------------
    def run(self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]):
        missing = {name: "SB2 has no tensor for the SBIF output {!r}".format(name) for name in outputs
                   if name not in self.roles}
        wanted = [name for name in outputs if name in self.roles]
        mapped = OFF_POLICY_ROLES.get(self.algorithm)
        if mapped is not None:
            for name in list(wanted):
                if self.roles[name] not in mapped:
                    missing[name] = "the SB2 oracle does not map {}'s {!r} output".format(self.algorithm, name)
                    wanted.remove(name)
        inputs = dict(inputs, obs=self.fed(inputs["obs"]))
        obs = inputs["obs"]
        rows = len(obs)
        results: Dict[str, List[np.ndarray]] = {name: [] for name in wanted}
        step = self.rows or max(rows, 1)
        for start in range(0, rows, step):
            chunk = {name: np.asarray(value)[start:start + step] for name, value in inputs.items()}
            count = len(chunk["obs"])
            if self.rows and count < self.rows:
                chunk = {name: _pad(value, self.rows) for name, value in chunk.items()}
            values = self._evaluate(chunk, wanted)
            for name in wanted:
                results[name].append(np.asarray(values[name])[:count])
        return {name: np.concatenate(parts, axis=0) if parts else np.zeros(0) for name, parts in results.items()}, missing

    def _evaluate(self, inputs: Mapping[str, np.ndarray], wanted: Sequence[str]) -> Dict[str, np.ndarray]:
        policy = self.policy
        if self.algorithm in OFF_POLICY_ROLES:
            return self._evaluate_off_policy(inputs, wanted)
        feed = {policy.obs_ph: inputs["obs"]}
        if self.recurrent:
            recurrent = self.info.recurrent
            feed[policy.states_ph] = inputs[recurrent["state_input"]]
            feed[policy.dones_ph] = inputs[recurrent["mask_input"]]
        noise = {entry["name"]: inputs[entry["name"]] for entry in self.info.noise_inputs if entry["name"] in inputs}
        if self.algorithm == "DQN":
            return self._evaluate_dqn(feed, noise, wanted)
        tensors = {}
        for name in wanted:
            tensors[name] = self._tensor(self.roles[name])
        if any(self.roles[name] == "action_sample" for name in wanted):
            feed.update(self.noise_feeds(noise))
        values = policy.sess.run(tensors, feed)
        for name in wanted:
            role = self.roles[name]
            value = values[name]
            if isinstance(value, list):
                value = np.concatenate(value, axis=-1)
            if role in ("action", "action_sample"):
                value = self._postprocess(value)
            values[name] = value
        return values

    def _tensor(self, role: str) -> Any:
        policy = self.policy
        table = {"action": lambda: policy.deterministic_action, "action_sample": lambda: policy.action,
                 "logits": lambda: policy.policy, "probabilities": lambda: policy.policy_proba,
                 "mean": lambda: policy.proba_distribution.mean, "std": lambda: policy.proba_distribution.std,
                 "value": lambda: policy.value_flat, "q_values": lambda: policy.q_value, "state": lambda: policy.snew}
        return table[role]()

    def _postprocess(self, actions: np.ndarray) -> np.ndarray:
        """What `BaseRLModel.predict` does after the step: reshape, and clip Box actions."""
        space = self.model.action_space
        actions = np.asarray(actions).reshape((-1,) + space.shape)
        if type(space).__name__ == "Box":
            actions = np.clip(actions, space.low, space.high)
        return actions

    def _evaluate_off_policy(self, inputs: Mapping[str, np.ndarray], wanted: Sequence[str]) -> Dict[str, np.ndarray]:
        """SAC/TD3/DDPG: the deterministic action from SB2's predict; SAC's sample (noise fed, then predict's
        unscale), mean, std and value from the policy's tensors."""
        from stable_baselines.common.math_util import unscale_action

        values: Dict[str, np.ndarray] = {}
        tensors = {}
        for name in wanted:
            role = self.roles[name]
            if role == "action":
                values[name], _ = self.model.predict(inputs["obs"], deterministic=True)
            elif role == "action_sample" and self.algorithm != "SAC":
                noise = {e["name"]: inputs[e["name"]] for e in self.info.noise_inputs if e["name"] in inputs}
                with self.injected(noise):
                    values[name], _ = self.model.predict(inputs["obs"], deterministic=False)
            elif role == "action_sample":
                tensors[name] = self.policy.policy
            elif role == "mean":
                tensors[name] = self.policy.act_mu
            elif role == "std":
                tensors[name] = self.policy.std
            elif role == "value":
                tensors[name] = self.policy.value_fn[:, 0]
        if tensors:
            feed = {self.policy.obs_ph: inputs["obs"]}
            if any(self.roles[name] == "action_sample" for name in tensors):
                noise = {e["name"]: inputs[e["name"]] for e in self.info.noise_inputs if e["name"] in inputs}
                feed.update(self.noise_feeds(noise))
            results = self.policy.sess.run(tensors, feed)
            for name, value in results.items():
                if self.roles[name] == "action_sample":
                    value = unscale_action(self.model.action_space, np.asarray(value).reshape(
                        (-1,) + self.model.action_space.shape))
                values[name] = value
        return values

    def _evaluate_dqn(self, feed: Dict[Any, np.ndarray], noise: Mapping[str, np.ndarray],
                      wanted: Sequence[str]) -> Dict[str, np.ndarray]:
        policy = self.policy
        q_values, probabilities = policy.sess.run([policy.q_values, policy.policy_proba], feed)
        values = {}
        for name in wanted:
            role = self.roles[name]
            if role == "action":
                values[name] = np.argmax(q_values, axis=1)
            elif role == "action_sample":
                u = np.asarray(noise[self.info.noise_inputs[0]["name"]], np.float64).reshape(-1)
                values[name] = np.array([_choice(p, x) for p, x in zip(probabilities, u)], np.int64)
            elif role == "probabilities":
                values[name] = probabilities
            else:
                values[name] = q_values
        return values

    # -- predict requests ---------------------------------------------------------------------------------------
    def predict_request(self, request: Mapping[str, Any]) -> Dict[str, Any]:
        model = self.model
        method = request["method"]
        obs = request["observation"]
        if isinstance(obs, Mapping):  # HER: flattened as SB2's HERGoalEnvWrapper does, in its KEY_ORDER
            from stable_baselines.her.utils import KEY_ORDER

            obs = np.concatenate([np.asarray(obs[key]) for key in KEY_ORDER], axis=-1)
        obs = np.array(self.fed(obs))
        state, mask = request.get("state"), request.get("mask")
        vectorized = model._is_vectorized_observation(obs, model.observation_space)
        with self.quiet():
            if self.recurrent and self.rows:
                return self._predict_padded(method, obs, vectorized, state, mask, request)
            return self._predict(method, obs, state, mask, request)

    def _predict(self, method: str, obs: Any, state: Any, mask: Any, request: Mapping[str, Any]) -> Dict[str, Any]:
        model = self.model
        if method == "predict":
            deterministic = request.get("deterministic")
            kwargs = {} if deterministic is None else {"deterministic": deterministic}
            with self.injected(request.get("noise")):
                action, new_state = model.predict(obs, state, mask, **kwargs)
            return {"action": _array(action), "state": _array(new_state)}
        if method == "action_probability":
            result = model.action_probability(obs, state, mask, actions=request.get("actions"),
                                              logp=bool(request.get("logp", False)))
            if isinstance(result, (list, tuple)):
                return {"probability": [np.asarray(r) for r in result]}
            return {"probability": _array(result)}
        vectorized = model._is_vectorized_observation(obs, model.observation_space)
        batch = np.asarray(obs).reshape((-1,) + model.observation_space.shape)
        if self.algorithm == "SAC":
            values = self.policy.sess.run(self.policy.value_fn[:, 0], {self.policy.obs_ph: batch})
        elif self.algorithm in ACTOR_CRITIC:
            values = self.policy.value(batch, state, mask) if self.recurrent else self.policy.value(batch)
        else:
            raise RuntimeError("the SB2 oracle computes value() for actor-critic and SAC policies only")
        return {"value": np.asarray(values if vectorized else values[0])}

    def _predict_padded(self, method: str, obs: np.ndarray, vectorized: bool, state: Any, mask: Any,
                        request: Mapping[str, Any]) -> Dict[str, Any]:
        """SB2 recurrent models take exactly n_envs rows: the request's rows go in chunks of n_envs, the last one
        padded with zeros, and the results are put back together (rows are independent)."""
        if not vectorized:  # as BaseRLModel.predict / action_probability do
            raise ValueError("Error: The environment must be vectorized when using recurrent policies.")
        space_shape = self.model.observation_space.shape
        batch = obs.reshape((-1,) + space_shape)
        count = len(batch)
        state = np.zeros((count, self.info.state_size), np.float32) if state is None else \
            np.asarray(state, np.float32).reshape(count, -1)
        mask = np.zeros(count, np.float32) if mask is None else np.asarray(mask, np.float32).reshape(-1)
        actions = request.get("actions")
        if actions is not None:
            actions = np.asarray(actions)
            actions = actions.reshape(count) if actions.size == count and self.info.action_space["kind"] == \
                "discrete" else actions.reshape((count, -1))
        noise = {k: np.asarray(v) for k, v in (request.get("noise") or {}).items()}
        parts: List[Dict[str, Any]] = []
        for start in range(0, count, self.rows):
            rows = slice(start, start + self.rows)
            chunk = dict(request)
            if actions is not None:
                chunk["actions"] = _pad(actions[rows], self.rows)
            if noise:
                chunk["noise"] = {k: _pad(v[rows], self.rows) for k, v in noise.items()}
            taken = min(self.rows, count - start)
            result = self._predict(method, _pad(batch[rows], self.rows), _pad(state[rows], self.rows),
                                   _pad(mask[rows], self.rows), chunk)
            parts.append({key: [None if v is None else np.asarray(v)[:taken] for v in value]
                          if isinstance(value, list) else None if value is None else np.asarray(value)[:taken]
                          for key, value in result.items()})

        def join(values: List[Any]) -> Any:
            if values[0] is None:
                return None
            if isinstance(values[0], list):
                return [join([v[i] for v in values]) for i in range(len(values[0]))]
            return np.concatenate(values, axis=0)

        return {key: join([part[key] for part in parts]) for key in parts[0]}


def _choice(p: np.ndarray, u: float) -> int:
    """NumPy's `RandomState.choice(n, p=p)` with the uniform draw given."""
    cdf = np.cumsum(np.asarray(p, np.float64))
    cdf /= cdf[-1]
    return int(cdf.searchsorted(u, side="right"))


def _upstream_ops(tensor: Any, types: Sequence[str]) -> List[Any]:
    found, todo, seen = [], [tensor.op], set()
    while todo:
        op = todo.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        if op.type in types:
            found.append(op)
            continue
        todo.extend(t.op for t in op.inputs)
    return found


def _pad(value: np.ndarray, rows: int) -> np.ndarray:
    value = np.asarray(value)
    if len(value) >= rows:
        return value
    return np.concatenate([value, np.zeros((rows - len(value),) + value.shape[1:], value.dtype)], axis=0)


def _array(value: Any) -> Optional[np.ndarray]:
    return None if value is None else np.asarray(value)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.adapters.sb2_live", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", nargs="*", default=[], help="directories or files holding the SB2 models")
    parser.add_argument("--map", action="append", default=[], metavar="MODEL.sbif=SOURCE",
                        help="the SB2 file of one .sbif file (repeatable)")
    args = parser.parse_args(argv)
    mapping = dict(item.split("=", 1) for item in args.map)
    stdout = sys.stdout
    sys.stdout = sys.stderr  # TensorFlow and SB2 print; only protocol lines may reach the real stdout
    return serve(Sb2Runtime(args.sources, mapping), sys.stdin, stdout)


if __name__ == "__main__":
    sys.exit(main())
