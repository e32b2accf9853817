"""`Policy`: the predict / action_probability / value contract of the framework a file came from (SPEC section 5).

Shapes, dtypes and the single-versus-batch rule follow SB2's `BaseRLModel` (`_is_vectorized_observation`,
`predict`, `action_probability`), or SB3's `BasePolicy.predict` for files under the SB3 contract (SPEC section 5.9:
a stochastic default, channel-last images transposed, arrays for single results, action masks, shared noise), so
code written against either model works unchanged.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..format import SbifFile
from .backends import make_executor
from ..format.validate import DICT_INPUT_PREFIX
from .spaces import Box, DictSpace, Discrete, RandomSource, Space, space_from_json

Noise = Mapping[str, np.ndarray]


class Policy:
    """A loaded SBIF policy. `deterministic=None` means the algorithm's SB2 default (from the file).

    `backend` chooses the executor, as `load`'s does: 'auto' (the default: numba when it is installed, unless
    SBIF_BACKEND names a backend), 'numpy' (the reference) or 'numba'; every method behaves the same on all,
    within SPEC section 6. `observation_space` and `action_space` are gym-like objects (`sbif.runtime.spaces`);
    the document keeps their JSON form.
    """

    def __init__(self, model: SbifFile, backend: str = "auto"):
        self.model = model
        self.document = model.document
        self.executor = make_executor(model, backend)
        self.observation_space: Space = space_from_json(self.document["observation_space"])
        self.action_space: Space = space_from_json(self.document["action_space"])
        self.algorithm = self.document["provenance"]["algorithm"]
        self._predict = self.document["predict"]
        self._observation_inputs = [entry["name"] for entry in self.document["inputs"] if entry["kind"] == "observation"]
        self._input_dtypes = {name: np.dtype(self.executor.inputs[name]["dtype"]) for name in self._observation_inputs}
        self._obs_dtype = self._input_dtypes.get("obs")
        self._noise_inputs = [entry for entry in self.document["inputs"] if entry["kind"] == "noise"]
        #: SPEC section 5.9: whose predict this is, and the SB3 contract's extras
        self.contract: str = self._predict.get("contract", "sb2")
        self._shared_noise = set(self._predict.get("shared_noise", []))
        self._channels_last = bool(self._predict.get("channels_last", False))
        self._channels_last_keys = set(self._predict.get("channels_last_keys", []))
        self._action_mask = self._predict.get("action_mask")
        self._rng: Optional["np.random.Generator"] = None  # made on the first draw
        self.recurrent = self._predict.get("recurrent")
        self.state_size = (self.executor.inputs[self.recurrent["state_input"]]["shape"][1]
                           if self.recurrent else 0)
        self._obs_shape = self.observation_space.shape
        #: the executor's fast path for the deterministic action of one observation, if it has one
        single_row = getattr(self.executor, "single_row", None)
        checked_indices = self.contract == "sb3" and self.observation_space.kind in ("discrete", "multi_discrete")
        self._single = (single_row(self._predict["deterministic_action"])
                        if single_row is not None and not self.recurrent and not self._action_mask
                        and not checked_indices else None)

    @property
    def backend(self) -> str:
        """The executor in use: 'numpy' or 'numba'."""
        return self.executor.backend

    @property
    def output_names(self) -> List[str]:
        return [output["name"] for output in self.document["outputs"]]

    # -- the SB2 interface -------------------------------------------------------------------------------------
    def predict(self, observation: Any, state: Any = None, mask: Any = None, deterministic: Optional[bool] = None,
                rng: RandomSource = None, noise: Optional[Noise] = None, episode_start: Any = None,
                action_masks: Any = None) -> Tuple[np.ndarray, Any]:
        """(actions, state) as the framework's `model.predict`. Sampling draws from `noise` if given, else from
        `rng`.

        Recurrent policies take and return the state [n, S] (None: start from zeros) and a reset mask of n
        booleans (True: the previous step ended that env's episode; SB3 calls it `episode_start`, which is
        accepted by that name too); any number of envs n. `action_masks` (SB3 contract, MaskablePPO): True allows an
        action; None allows all.
        """
        if episode_start is not None:
            if mask is not None:
                raise InputError("pass mask or episode_start, not both: they are the same reset flags")
            mask = episode_start
        if action_masks is not None and self._action_mask is None:
            raise InputError("this {} policy takes no action masks".format(self.algorithm))
        if deterministic is None:
            deterministic = self._predict["deterministic_default"]
        single = self._single
        if (single is not None and deterministic and state is None and mask is None
                and type(observation) is np.ndarray and observation.shape == self._obs_shape):
            try:
                action = single(observation)
                if self.contract == "sb2":
                    return action, None
                return np.asarray(action).reshape(self.action_space.shape), None  # SB3's shape (SPEC 5.9)
            except (TypeError, ValueError):
                pass  # an observation that does not convert: the checked path below says why
        name = self._predict["deterministic_action" if deterministic else "stochastic_action"]
        if name is None:
            raise InputError("this {} file cannot sample actions as {} does (predict.stochastic_action is null: the "
                             "exploration noise comes from state the file does not hold, such as Ornstein-Uhlenbeck "
                             "action noise or gSDE's exploration matrix); use deterministic=True".format(
                                 self.algorithm, self.contract.upper()))
        wanted = [name] + ([self.recurrent["state_output"]] if self.recurrent else [])
        feeds, vectorized = self.make_feeds(observation, state, mask, wanted, action_masks)
        if not deterministic:
            feeds.update(self.noise_feeds(self.batch_rows(feeds), rng, noise))
        results = self.executor.run(feeds, wanted)
        actions = results[name]
        new_state = results[self.recurrent["state_output"]] if self.recurrent else None
        if self.contract == "sb3":
            actions = actions.reshape((-1,) + self.action_space.shape)  # SB3's predict: the space's shape
            if not self.recurrent:
                new_state = state  # SB3's predict hands a feed-forward policy's state back as given
            elif isinstance(state, (tuple, list)) or state is None:
                new_state = self.state_pair(new_state)  # SB3's (h, c), the actor's, even for one observation
                return (actions if vectorized else actions[0:1].reshape(actions.shape[1:])), new_state
        if vectorized:
            return actions, new_state
        if self.contract == "sb3":
            return actions[0:1].reshape(actions.shape[1:]), new_state  # SB3's squeeze(axis=0): a 0-d array too
        return actions[0], (None if new_state is None else new_state[0])

    def action_probability(self, observation: Any, state: Any = None, mask: Any = None, actions: Any = None,
                           logp: bool = False) -> Any:
        """SB2's `action_probability`: the distribution parameters, or the (log-)probability of `actions`.

        As in SB2, a single (non-batched) observation returns element 0 of the result, which for a Box action
        space is the mean alone; deterministic policies (no distribution in the file) return None.
        """
        distribution = self._predict.get("distribution")
        if distribution is None:
            if actions is not None:
                raise InputError("this {} policy is deterministic: it has no action probabilities".format(
                    self.algorithm))
            return None
        feeds, vectorized = self.make_feeds(observation, state, mask, parameter_outputs(distribution))
        proba = distribution_parameters(distribution, self.executor.run(feeds, parameter_outputs(distribution)))
        result = proba if actions is None else self._probability_of(distribution["kind"], proba, actions,
                                                                    self.batch_rows(feeds), logp)
        return result if vectorized else result[0]

    def value(self, observation: Any, state: Any = None, mask: Any = None) -> np.ndarray:
        """The value estimate V(s): shape [batch], or a scalar for a single observation."""
        feeds, vectorized = self.make_feeds(observation, state, mask, ["value"])
        values = self.executor.run(feeds, ["value"])["value"]
        return values if vectorized else values[0]

    def run(self, inputs: Mapping[str, Any], outputs: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
        """Evaluate named outputs (default: all) from raw graph inputs: `obs` already batched, and noise."""
        return self.executor.run(inputs, list(outputs or self.output_names))

    @property
    def initial_state(self) -> Optional[np.ndarray]:
        """SB2's `model.initial_state`: the state a recurrent policy starts from, float32 zeros [1, S] (SB2's are
        [n_envs, S] for the envs the model was trained with; a file is for any number: `initial_state_for`),
        None for feed-forward policies. A new array on every read, so a caller may write into it."""
        return self.initial_state_for(1)

    def initial_state_for(self, n_envs: int) -> Optional[np.ndarray]:
        """The state `n_envs` envs start from: float32 zeros [n_envs, S], None for feed-forward policies."""
        return np.zeros((n_envs, self.state_size), np.float32) if self.recurrent else None

    # -- helpers ----------------------------------------------------------------------------------------------
    def make_feeds(self, observation: Any, state: Any, mask: Any, outputs: Optional[Sequence[str]] = None,
                   action_masks: Any = None) -> Tuple[Dict[str, np.ndarray], bool]:
        """Graph inputs for a request: the observation batch, for recurrent policies state and mask (default: the
        initial state and no reset, as SB2's predict), and the action mask of a policy that takes one (default: all
        allowed). Given the `outputs` the request computes, its batch is checked against the run-time size limit
        (SPEC section 5.8) before any state or noise the runtime would add is allocated."""
        feeds, rows, vectorized = self.observation_feeds(observation)
        if outputs is not None:
            self.executor.check_batch(outputs, rows)
        if self._action_mask is not None:
            feeds[self._action_mask] = self.action_mask_batch(action_masks, rows)
        if self.recurrent:
            if state is None:
                state = self.initial_state_for(rows)
            elif self.contract == "sb3" and isinstance(state, (tuple, list)):
                state = self.state_rows(state, rows)
            state = np.asarray(state, dtype=np.float32)
            if state.shape == (self.state_size,) and not vectorized:
                state = state[None]
            if state.shape != (rows, self.state_size):
                raise InputError("state must have shape ({}, {}) for {} observation(s), got {}".format(
                    rows, self.state_size, rows, state.shape))
            mask = np.zeros(rows, np.float32) if mask is None else np.asarray(mask, dtype=np.float32).reshape(-1)
            if mask.shape != (rows,):
                raise InputError("mask must have one entry per observation ({}), got {}".format(rows, mask.size))
            feeds[self.recurrent["state_input"]] = state
            feeds[self.recurrent["mask_input"]] = mask
        return feeds, vectorized

    def observation_feeds(self, observation: Any) -> Tuple[Dict[str, np.ndarray], int, bool]:
        """The observation inputs of a request (`obs`, or `obs/KEY` per key of a dict space), its number of rows,
        and whether the input was batched."""
        if not isinstance(self.observation_space, DictSpace):
            batch, vectorized = self.observation_batch(observation)
            return {"obs": batch}, len(batch), vectorized
        if not isinstance(observation, Mapping):
            raise InputError("this {} policy takes dict observations with the keys {}".format(
                self.algorithm, ", ".join(self.observation_space.spaces)))
        missing = [key for key in self.observation_space.spaces if key not in observation]
        extra = [str(key) for key in observation if key not in self.observation_space.spaces]
        if missing or extra:
            raise InputError("the dict observation {}".format("; ".join(
                (["lacks " + ", ".join(missing)] if missing else []) +
                (["has keys the space does not: " + ", ".join(extra)] if extra else []))))
        feeds, rows, vectorized = {}, set(), False
        for key, space in self.observation_space.spaces.items():
            name = DICT_INPUT_PREFIX + key
            batch, batched = self._space_batch(np.asarray(observation[key]), space, self._input_dtypes[name],
                                               key in self._channels_last_keys, "observation[{!r}]".format(key))
            feeds[name] = batch
            rows.add(len(batch))
            vectorized = vectorized or batched  # SB3's obs_to_tensor: batched if any key is
        if len(rows) != 1:
            raise InputError("the dict observation's keys hold different numbers of rows ({})".format(
                ", ".join(map(str, sorted(rows)))))
        return feeds, rows.pop(), vectorized

    def observation_batch(self, observation: Any) -> Tuple[np.ndarray, bool]:
        """The batch SB2 would feed (reshaped and cast to the input dtype) and whether the input was batched.

        Goal-conditioned (HER) files also take the dict observation, flattened as SB2's HERGoalEnvWrapper does.
        """
        if type(observation) is np.ndarray:
            obs = observation  # not copied: nothing writes into inputs
        else:
            if isinstance(observation, Mapping):
                if "observation_dict" not in self.document:
                    raise InputError("this {} policy takes array observations: only goal-conditioned (HER) files "
                                     "and dict observation spaces take a dict observation".format(self.algorithm))
                observation = self.flatten_dict_observation(observation)
            obs = np.array(observation)
        return self._space_batch(obs, self.observation_space, self._obs_dtype, self._channels_last, "observation")

    def _space_batch(self, obs: np.ndarray, space: Space, dtype: np.dtype, channels_last: bool,
                     what: str) -> Tuple[np.ndarray, bool]:
        """One space's observation as the batch its input takes (SPEC section 5.1; SB3's channel-last images and
        index checks under the SB3 contract), and whether it was batched."""
        shape = space.shape
        if channels_last and obs.shape != shape and obs.shape[1:] != shape and obs.ndim in (3, 4):
            transposed = np.transpose(obs, (2, 0, 1) if obs.ndim == 3 else (0, 3, 1, 2))  # SB3's maybe_transpose
            if transposed.shape == shape or transposed.shape[1:] == shape:
                obs = transposed
        if isinstance(space, Box):
            vectorized = obs.shape != shape
            ok = obs.shape == shape or obs.shape[1:] == shape
        elif isinstance(space, Discrete):
            vectorized = obs.shape != ()
            ok = obs.ndim <= 1
        else:
            vectorized = obs.shape != shape
            ok = obs.shape == shape or (obs.ndim == 2 and obs.shape[1:] == shape)
        if not ok:
            raise InputError("unexpected {} shape {} for a {} observation space: use {} or (n_env, {})".format(
                what, obs.shape, space.kind, shape, ", ".join(map(str, shape))))
        try:
            batch = obs.reshape((-1,) + shape)
            if self.contract == "sb3" and space.kind in ("discrete", "multi_discrete"):
                self._check_indices(batch.astype(np.int64), space, what)
            return (batch if batch.dtype == dtype else batch.astype(dtype)), vectorized
        except (TypeError, ValueError) as exc:
            raise InputError("{} cannot be converted to {}: {}".format(what, dtype, exc)) from None

    def batch_rows(self, feeds: Mapping[str, np.ndarray]) -> int:
        """The number of rows of a request's feeds (`make_feeds`)."""
        return len(feeds[self._observation_inputs[0]])

    def state_rows(self, pair: Any, rows: int) -> np.ndarray:
        """SB3's recurrent state, the actor LSTM's (h, c) as [layers, n_envs, hidden] each, as the file's state rows
        (SPEC section 5.9: h of every layer, then c; a critic LSTM's part, which SB3's predict does not pass, zero)."""
        layout = self.recurrent["state_layout"]
        layers, hidden = layout["layers"], layout["hidden"]
        if len(pair) != 2:
            raise InputError("state must be the pair (h, c) SB3's predict returns, got {} arrays".format(len(pair)))
        parts = []
        for name, value in zip("hc", pair):
            value = np.asarray(value, dtype=np.float32)
            if value.shape != (layers, rows, hidden):
                raise InputError("state {} must have shape ({}, {}, {}) for {} observation(s), got {}".format(
                    name, layers, rows, hidden, rows, value.shape))
            parts.append(np.transpose(value, (1, 0, 2)).reshape(rows, layers * hidden))
        critic = np.zeros((rows, self.state_size - 2 * layers * hidden), np.float32)
        return np.concatenate(parts + [critic], axis=1)

    def state_pair(self, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The state rows' actor part as SB3's (h, c), each [layers, n_envs, hidden]."""
        layout = self.recurrent["state_layout"]
        layers, hidden = layout["layers"], layout["hidden"]
        h = rows[:, :layers * hidden].reshape(-1, layers, hidden)
        c = rows[:, layers * hidden:2 * layers * hidden].reshape(-1, layers, hidden)
        return np.ascontiguousarray(np.transpose(h, (1, 0, 2))), np.ascontiguousarray(np.transpose(c, (1, 0, 2)))

    @staticmethod
    def _check_indices(indices: np.ndarray, space: Space, what: str) -> None:
        """SB3 one-hot encodes Discrete and MultiDiscrete observations with torch, which refuses an index outside
        [0, n) (SPEC section 5.9): so does SBIF, rather than encode it as a row of zeros."""
        bounds = np.array([space.n]) if isinstance(space, Discrete) else np.asarray(space.nvec)
        bad = (indices < 0) | (indices >= bounds)
        if np.any(bad):
            raise InputError("{} index {} is outside its space ([0, {}))".format(
                what, int(indices[bad][0]), int(np.broadcast_to(bounds, indices.shape)[bad][0])))

    def action_mask_batch(self, action_masks: Any, rows: int) -> np.ndarray:
        """The action-mask input for `rows` observations: all True without masks; given masks reshaped to [rows, L]
        as SB3 reshapes them to the logits' shape (SPEC section 5.9)."""
        width = self.executor.inputs[self._action_mask]["shape"][1]
        if action_masks is None:
            return np.ones((rows, width), np.bool_)
        masks = np.asarray(action_masks, dtype=np.bool_)
        if masks.size != rows * width:
            raise InputError("action_masks hold {} values; {} observation(s) need {} x {}".format(
                masks.size, rows, rows, width))
        return masks.reshape(rows, width)

    def flatten_dict_observation(self, observation: Mapping[str, Any]) -> np.ndarray:
        """Concatenate the dict entries along the last axis in the file's key order; Discrete entries (a
        MultiDiscrete flat space) become one integer column each."""
        keys = self.document["observation_dict"]["keys"]
        missing = [key for key in keys if key not in observation]
        if missing:
            raise InputError("the dict observation lacks {}".format(", ".join(missing)))
        if self.observation_space.kind == "multi_discrete":
            parts = [np.asarray(observation[key]).astype(np.int64)[..., None] for key in keys]
        else:
            parts = [np.asarray(observation[key]) for key in keys]
        try:
            return np.concatenate(parts, axis=-1)
        except ValueError as exc:
            raise InputError("the dict observation's entries do not concatenate: {}".format(exc)) from None

    def noise_feeds(self, batch: int, rng: RandomSource, noise: Optional[Noise]) -> Dict[str, np.ndarray]:
        """Noise inputs for sampling: the caller's arrays, else U[0,1) / N(0,1) float32 draws from `rng`."""
        if rng is None:
            if self._rng is None:
                self._rng = np.random.default_rng()
            generator = self._rng
        else:
            generator = np.random.default_rng(rng) if isinstance(rng, int) else rng
        feeds = {}
        for entry in self._noise_inputs:
            name = entry["name"]
            if noise is not None and name in noise:
                feeds[name] = np.asarray(noise[name], dtype=np.float32)
                continue
            shared = name in self._shared_noise  # one draw per request, on every row (SPEC section 5.9)
            shape = (1 if shared else batch,) + tuple(entry["shape"][1:])
            if entry["distribution"] == "uniform":
                draw = generator.random(shape, dtype=np.float32)
            else:
                draw = generator.standard_normal(shape, dtype=np.float32)
            feeds[name] = np.repeat(draw, batch, axis=0) if shared else draw
        return feeds

    def _probability_of(self, kind: str, proba: Any, actions: Any, batch: int, logp: bool) -> np.ndarray:
        """SB2's NumPy formulas (`base_class.py`, action_probability with `actions`), result shaped [batch, 1].

        The categorical kinds index the probabilities with the actions, so they take integers only (SPEC section
        5.4): NumPy would read bool actions as a mask, which picks column 0 whenever the mask has a row's length.
        """
        prob = logprob = None
        try:  # NumPy's own refusals of the actions become InputErrors below (an InputError is a ValueError too)
            actions = np.array([actions])
            if kind in ("categorical", "multi_categorical") and actions.dtype.kind not in "iu":
                raise InputError("{} actions are indices: they must be integers, got {}".format(
                    kind, actions.dtype))
            if kind == "categorical":
                actions = actions.reshape((-1,))
                self._check_batch(actions, batch)
                prob = proba[np.arange(batch), actions]
            elif kind == "multi_categorical":
                actions = np.swapaxes(actions.reshape((-1, len(proba))), 0, 1)
                self._check_batch(actions[0], batch)
                prob = np.prod([p[np.arange(a.shape[0]), a] for p, a in zip(proba, actions)], axis=0)
            elif kind == "bernoulli":
                actions = actions.reshape((-1, proba.shape[1]))
                self._check_batch(actions, batch)
                prob = np.prod(proba * actions + (1 - proba) * (1 - actions), axis=1)
            else:
                mean, std = proba
                actions = actions.reshape((-1, mean.shape[1]))  # the flat action rows (SPEC 5.4, 5.9)
                self._check_batch(actions, batch)
                logstd = np.log(std)
                n_elements = int(np.prod(mean.shape[1:]))
                log_normalizer = np.float32(n_elements / 2.0 * np.log(2 * np.pi)) + np.sum(logstd, axis=1)
                logprob = -np.sum(np.square(actions - mean) / (2 * np.square(std)), axis=1) - log_normalizer
        except InputError:
            raise
        except (IndexError, ValueError, TypeError) as exc:
            raise InputError("actions do not fit the {} action space: {}".format(kind, exc)) from None
        with np.errstate(divide="ignore"):
            if logp:
                result = logprob if logprob is not None else np.log(prob)
            else:
                result = prob if prob is not None else np.exp(logprob)
        return result.reshape((-1, 1))

    @staticmethod
    def _check_batch(actions: np.ndarray, batch: int) -> None:
        if actions.shape[0] != batch:
            raise InputError("batch sizes differ: {} actions for {} observations".format(actions.shape[0], batch))


def parameter_outputs(distribution: Mapping[str, Any]) -> List[str]:
    """The outputs SB2's `action_probability` reads: a Gaussian's mean and std, else the probabilities."""
    parameters = distribution["parameters"]
    if distribution["kind"] == "diag_gaussian":
        return [parameters["mean"], parameters["std"]]
    return [parameters["probabilities"]]


def distribution_parameters(distribution: Mapping[str, Any], values: Mapping[str, Any]) -> Any:
    """`action_probability`'s result without actions (SPEC section 5.4) from the `parameter_outputs` arrays in
    `values` (or anything shaped like them, such as their error scales): [mean, std], one array per
    multi-categorical component, or the probabilities."""
    wanted = parameter_outputs(distribution)
    if distribution["kind"] == "diag_gaussian":
        return [values[wanted[0]], values[wanted[1]]]
    if distribution["kind"] == "multi_categorical":
        return np.split(values[wanted[0]], np.cumsum(distribution["nvec"])[:-1], axis=-1)
    return values[wanted[0]]


def load(path: str, backend: str = "auto") -> Policy:
    """Read, validate and prepare an SBIF file for inference (`Policy(SbifFile.read(path), backend)`).

    `backend`: 'numpy' (the reference), 'numba' (compiled; `UnsupportedError` without numba) or 'auto' (numba
    when it can be imported, unless the environment variable SBIF_BACKEND names one)."""
    return Policy(SbifFile.read(path), backend)
