"""`BatchPredictor`: a policy loaded once, mapping batches of a dataset to the batch plus the outputs asked for.

One object serves every engine: the local engine (`sbif.batch.local`) calls it on the batches it reads, Ray Data's
`map_batches` (`sbif.integrations.ray`) on each actor. What it computes for a row depends only on that row (its
observation columns, its id and the seed), and for a recurrent policy on its episode's earlier steps, never on
how the dataset was cut into batches (spec/batch-inference.md).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError, preview
from ..format import SbifFile
from ..format.subgraph import available_outputs, output_aliases, required_subgraph
from ..format.validate import DICT_INPUT_PREFIX
from ..runtime import Policy
from ..runtime.spaces import DictSpace, Discrete, MultiDiscrete, Space
from .noise import MASK64, normal_noise, uniform_noise
from .tables import RowLabels, column_array, column_names, row_count, with_columns

#: where a model comes from: a file's path, the file's bytes (as shipped through Ray's object store), or a Policy
ModelSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Policy]

OBSERVATION_COLUMN = "obs"
ID_COLUMN = "id"
EPISODE_COLUMN = "episode"
STEP_COLUMN = "step"
ACTION_MASK_COLUMN = "action_mask"
#: bytes of batched graph values (inputs and node outputs, all counted as alive at once) one executor call may
#: make: a batch is run in calls of as many rows as fit, so the graph's working memory does not grow with the batch
#: size (the nature CNN's values take about 350 KB a row: calls of about 1,500 rows; a small MLP's, a few hundred
#: bytes: one call for any batch)
CALL_BYTES = 512 << 20


@dataclass(frozen=True)
class BatchSpec:
    """What to compute and where the data is: small and picklable, so an engine ships it to its workers.

    `outputs`: the names of the columns to add: a document output name or a predict-contract alias (SPEC 3.6 and
    5: `action`, `action_sample` or `stochastic_action` for sampled actions, `value`, `q_values`, `probabilities`,
    `logits`, `mean`, `std`, ...). `seed`: the sampled actions' seed (needed when an output samples).
    `observation_column`: the observations, one per row; for a dict observation space (and a HER file without
    that column) one column per key, `obs/KEY` unless `key_columns` maps the key to another name. `id_column`: the
    rows' ids, which seed their noise and name them in errors (None: the column `id` when the data has one, else
    the row's index in the dataset). `episode_column`, `step_column`: a recurrent policy's episodes and their
    order. `output_prefix` goes before each output's column name (`teacher_` makes `teacher_action`). `backend`:
    the executor (`sbif.load`'s; 'auto' picks numba when installed).
    """

    outputs: Tuple[str, ...] = ("action",)
    seed: Optional[int] = None
    observation_column: str = OBSERVATION_COLUMN
    key_columns: Mapping[str, str] = field(default_factory=dict)
    id_column: Optional[str] = None
    episode_column: str = EPISODE_COLUMN
    step_column: str = STEP_COLUMN
    action_mask_column: str = ACTION_MASK_COLUMN
    output_prefix: str = ""
    backend: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.outputs, str) or not self.outputs:
            raise InputError("outputs is a non-empty list of names, e.g. ('action', 'value'), got {}".format(
                preview(self.outputs)))
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed <= MASK64):
            raise InputError("the seed is an integer in [0, 2^64), got {}".format(preview(self.seed)))


def load_policy(model: ModelSource, backend: str = "auto") -> Policy:
    """A Policy from a path, the file's bytes, or a Policy (returned as is). Tensors are views of the mapped file
    (no copy): bytes are written once to an unlinked temporary file, mapped the same way."""
    if isinstance(model, Policy):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        with tempfile.NamedTemporaryFile(prefix="sbif-model-", suffix=".sbif") as handle:
            handle.write(model)
            handle.flush()
            return Policy(SbifFile.read(handle.name), backend)  # the mapping outlives the file's name
    return Policy(SbifFile.read(os.fspath(model)), backend)


class BatchPredictor:
    """A policy and a `BatchSpec`: `predict(batch, first_row)` returns the batch with the output columns added.

    The policy is loaded once (`load_policy`), and the outputs, their graph values, the noise they read and the
    observation columns are resolved here, so a wrong name fails before any data is read."""

    def __init__(self, model: ModelSource, spec: BatchSpec = BatchSpec()):
        self.spec = spec
        self.policy = load_policy(model, spec.backend)
        document = self.policy.document
        predict = document["predict"]
        declared = [entry["name"] for entry in document["outputs"]]
        aliases = output_aliases(document)
        if predict.get("stochastic_action") is not None:  # SPEC 3.6's name for it, whatever this file calls it
            aliases.setdefault("action_sample", predict["stochastic_action"])
        #: output column -> the graph output it holds
        self.graph_outputs: Dict[str, str] = {}
        for name in spec.outputs:
            resolved = name if name in declared else aliases.get(name)
            if resolved is None:
                raise InputError("unknown output {}: {}".format(preview(name), available_outputs(document)))
            self.graph_outputs[spec.output_prefix + name] = resolved
        wanted = sorted(set(self.graph_outputs.values()))
        read = set(required_subgraph(document, wanted).inputs)
        noise_entries = [entry for entry in document["inputs"] if entry["kind"] == "noise"]
        #: (position among the document's noise inputs, entry) of each noise input the outputs read
        self.noise_inputs = [(index, entry) for index, entry in enumerate(noise_entries) if entry["name"] in read]
        if self.noise_inputs and spec.seed is None:
            raise InputError("the outputs {} sample: give a seed (the noise of row r is a function of the seed and "
                             "r's id)".format(", ".join(self.sampling_outputs())))
        self.recurrent = self.policy.recurrent
        #: the SB3 contract's extras (SPEC 5.9): an action-mask input, image spaces that take channel-last rows
        self.action_mask_input: Optional[str] = predict.get("action_mask")
        self._channels_last = bool(predict.get("channels_last", False))
        self._channels_last_keys = set(predict.get("channels_last_keys", []))
        self._actions = {predict["deterministic_action"], predict.get("stochastic_action")}
        self._graph_wanted = wanted + ([self.recurrent["state_output"]] if self.recurrent else [])
        part = required_subgraph(document, self._graph_wanted)
        specs = self.policy.model.specs
        row_bytes = sum(specs[name].nominal_bytes(batch=1) for name in
                        list(part.inputs) + [output for node in part.nodes for output in node["outputs"]]
                        if specs[name].shape[:1] == (None,))
        #: rows per executor call (CALL_BYTES)
        self.call_rows = max(1, CALL_BYTES // max(row_bytes, 1))
        space = self.policy.observation_space
        #: a dict space's keys, or a HER file's (which also takes its flat observation)
        self.observation_keys: List[str] = (list(space.spaces) if isinstance(space, DictSpace) else
                                            list(document.get("observation_dict", {}).get("keys", [])))
        unknown = sorted(set(spec.key_columns) - set(self.observation_keys))
        if unknown:
            raise InputError("key_columns names {} but the observations have the keys {}".format(
                ", ".join(map(repr, unknown)), ", ".join(self.observation_keys) or "none (not a dict space)"))

    # -- what the predictor reads and writes ------------------------------------------------------------------------
    def sampling_outputs(self) -> List[str]:
        """The output columns that depend on noise (sampled actions)."""
        noise = {entry["name"] for _, entry in self.noise_inputs}
        return [column for column, name in self.graph_outputs.items()
                if noise.intersection(required_subgraph(self.policy.document, [name]).inputs)]

    @property
    def output_columns(self) -> List[str]:
        return list(self.graph_outputs)

    def key_column(self, key: str) -> str:
        return self.spec.key_columns.get(key, DICT_INPUT_PREFIX + key)

    def observation_columns(self, available: Sequence[str]) -> List[str]:
        """The columns observations are read from, given the data's columns: `observation_column`, or one per key of
        a dict space (a HER file takes either)."""
        space = self.policy.observation_space
        if not isinstance(space, DictSpace) and (not self.observation_keys or self.spec.observation_column in
                                                 available):
            return [self.spec.observation_column]
        return [self.key_column(key) for key in self.observation_keys]

    def id_column(self, available: Sequence[str]) -> Optional[str]:
        """The id column in use: `spec.id_column` (which must exist), else `id` when the data has it."""
        if self.spec.id_column is not None:
            return self.spec.id_column
        return ID_COLUMN if ID_COLUMN in available else None

    def input_columns(self, available: Sequence[str]) -> List[str]:
        """Every column `predict` reads from data with the columns `available` (what a reader needs to load)."""
        columns = self.observation_columns(available)
        identifier = self.id_column(available)
        columns += [identifier] if identifier else []
        columns += [self.spec.episode_column, self.spec.step_column] if self.recurrent else []
        if self.action_mask_input and self.spec.action_mask_column in available:
            columns.append(self.spec.action_mask_column)
        return columns

    def check_columns(self, available: Sequence[str], passthrough: bool = True) -> None:
        """Refuse data without a column `predict` reads, or, when the input columns are kept beside the outputs
        (`passthrough`), with a column an output would replace."""
        missing = [column for column in self.input_columns(available) if column not in available]
        if missing:
            raise InputError("the data has no column {!r} ({}); its columns: {}".format(
                missing[0], self._column_role(missing[0]), ", ".join(available) or "none"))
        clashes = [column for column in self.graph_outputs if column in available] if passthrough else []
        if clashes:
            raise InputError("the data already has a column {!r}: choose an output prefix (e.g. teacher_) to keep "
                             "both".format(clashes[0]))

    def output_types(self) -> Dict[str, Tuple[np.dtype, Tuple[int, ...]]]:
        """Each output column's dtype and shape per row."""
        declared = {entry["name"]: entry for entry in self.policy.document["outputs"]}
        types = {}
        for column, name in self.graph_outputs.items():
            shape = tuple(declared[name]["shape"][1:])
            if self.policy.contract == "sb3" and name in self._actions:
                shape = self.policy.action_space.shape
            types[column] = (np.dtype(declared[name]["dtype"]), tuple(shape))
        return types

    # -- computing ----------------------------------------------------------------------------------------------------
    def predict(self, batch: Any, first_row: Optional[int] = None, row_indices: Optional[np.ndarray] = None) -> Any:
        """`batch` (a dict of NumPy arrays, a pyarrow Table or RecordBatch, or a pandas DataFrame) with the output
        columns added, in its own format. Where its rows are in the dataset: `first_row`, the index of the batch's
        first row (its rows are consecutive), or `row_indices`, each row's index (rows regrouped, as whole episodes
        are on Ray). The indices are the rows' ids when there is no id column (sampled outputs need one or the
        other), and what errors name."""
        return with_columns(batch, self.compute(batch, first_row, row_indices))

    def compute(self, batch: Any, first_row: Optional[int] = None, row_indices: Optional[np.ndarray] = None
                ) -> Dict[str, np.ndarray]:
        """The output columns alone, arrays [rows, *shape] (`output_types`), in the batch's row order."""
        available = column_names(batch)
        self.check_columns(available)
        rows = row_count(batch)
        if first_row is not None and row_indices is not None:
            raise InputError("give the batch's first row or each row's index, not both")
        if row_indices is not None and np.shape(row_indices) != (rows,):
            raise InputError("row_indices holds one index per row: {} for a batch of {} rows".format(
                np.shape(row_indices), rows))
        if rows == 0:
            return {column: np.zeros((0,) + shape, dtype) for column, (dtype, shape) in self.output_types().items()}
        indices = first_row if row_indices is None else np.asarray(row_indices)
        identifier = self.id_column(available)
        ids = None
        if identifier is not None:
            ids = column_array(batch, identifier, RowLabels(indices, None))
            if ids.ndim != 1 or ids.dtype.kind not in "iu":
                raise InputError("the id column {!r} must hold one integer per row, got {} of shape {}".format(
                    identifier, ids.dtype, ids.shape[1:]))
        labels = RowLabels(indices, ids)
        if ids is not None:
            row_ids = ids
        elif row_indices is not None:
            row_ids = np.asarray(row_indices)
        elif first_row is not None:
            row_ids = np.arange(first_row, first_row + rows, dtype=np.uint64)
        elif self.noise_inputs:
            raise InputError("sampled outputs need each row's id: an id column, or the rows' indices in the dataset")
        else:
            row_ids = None
        feeds = self._observation_feeds(batch, available, labels)
        if self.action_mask_input:  # all actions allowed without an action-mask column
            masks = (column_array(batch, self.spec.action_mask_column, labels)
                     if self.spec.action_mask_column in available else None)
            feeds[self.action_mask_input] = self.policy.action_mask_batch(masks, rows)
        if self.recurrent:
            episodes = self._integer_column(batch, self.spec.episode_column, labels)
            steps = self._integer_column(batch, self.spec.step_column, labels)
            results = self._run_episodes(feeds, row_ids, episodes, steps, labels)
        else:
            results = self._run(feeds, row_ids)
        return {column: self._shaped(name, results[name]) for column, name in self.graph_outputs.items()}

    def _column_role(self, column: str) -> str:
        if column == self.spec.episode_column or column == self.spec.step_column:
            return "a recurrent policy's episodes and steps"
        if column == self.spec.id_column:
            return "the row ids"
        return "the observations"

    def _integer_column(self, batch: Any, name: str, labels: RowLabels) -> np.ndarray:
        values = column_array(batch, name, labels)
        if values.ndim != 1 or values.dtype.kind not in "iu":
            raise InputError("column {!r} must hold one integer per row, got {} of shape {} per row".format(
                name, values.dtype, values.shape[1:]))
        return values

    def _observation_feeds(self, batch: Any, available: Sequence[str], labels: RowLabels) -> Dict[str, np.ndarray]:
        """The observation inputs, each column checked against its space first (so a bad row is named)."""
        policy = self.policy
        columns = self.observation_columns(available)
        space = policy.observation_space
        if isinstance(space, DictSpace):
            observation: Any = {}
            for key, column in zip(self.observation_keys, columns):
                observation[key] = self._checked(batch, column, space.spaces[key], labels,
                                                 key in self._channels_last_keys)
        elif columns == [self.spec.observation_column]:
            observation = self._checked(batch, columns[0], space, labels, self._channels_last)
        else:  # a HER file's dict observation, flattened as SB2's HERGoalEnvWrapper does
            key_spaces = policy.document["observation_dict"]["spaces"]
            observation = {}
            for key, column in zip(self.observation_keys, columns):
                values = column_array(batch, column, labels)
                expected = _her_key_shape(key_spaces.get(key))
                if expected is not None and values.shape[1:] != expected:
                    raise InputError("column {!r}: {} has shape {}; the key {!r} needs {}".format(
                        column, labels(0), values.shape[1:], key, expected))
                observation[key] = values
        feeds, _, _ = policy.observation_feeds(observation)
        return feeds

    def _checked(self, batch: Any, column: str, space: Space, labels: RowLabels, channels_last: bool) -> np.ndarray:
        """Column `column` as observations of `space`: rows of the space's shape (or its channel-last transpose for
        an SB3 image space); under the SB3 contract, Discrete and MultiDiscrete indices within their bounds."""
        values = column_array(batch, column, labels)
        shape = tuple(space.shape)
        accepted = [shape] + ([(shape[1], shape[2], shape[0])] if channels_last and len(shape) == 3 else [])
        if values.shape[1:] not in accepted:
            raise InputError("column {!r}: {} has shape {}; the {} observation space needs {}".format(
                column, labels(0), values.shape[1:], space.kind, " or ".join(map(str, accepted))))
        if self.policy.contract == "sb3" and isinstance(space, (Discrete, MultiDiscrete)):
            bounds = np.array([space.n]) if isinstance(space, Discrete) else np.asarray(space.nvec)
            bad = ((values < 0) | (values >= bounds)).reshape(len(values), -1).any(axis=1)
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise InputError("column {!r} holds an index outside its space at {}: {} (bounds {})".format(
                    column, labels(first), values[first].tolist(), bounds.tolist()))
        return values

    def _noise_feeds(self, row_ids: np.ndarray) -> Dict[str, np.ndarray]:
        """Each noise input the outputs read, for these rows: a function of (seed, the input's index, row id).
        A shared noise input (SPEC 5.9) is drawn per row too: every row is its own request."""
        feeds = {}
        assert self.spec.seed is not None
        for index, entry in self.noise_inputs:
            draw = uniform_noise if entry["distribution"] == "uniform" else normal_noise
            feeds[entry["name"]] = draw(self.spec.seed, index, row_ids, entry["shape"][1:])
        return feeds

    def _run(self, feeds: Dict[str, np.ndarray], row_ids: Optional[np.ndarray]) -> Dict[str, np.ndarray]:
        """The graph outputs for the rows of `feeds`, in executor calls of at most `call_rows` rows."""
        rows = len(next(iter(feeds.values())))
        if rows > self.call_rows:
            parts = [self._run({name: values[start:start + self.call_rows] for name, values in feeds.items()},
                               None if row_ids is None else row_ids[start:start + self.call_rows])
                     for start in range(0, rows, self.call_rows)]
            return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        if self.noise_inputs:
            assert row_ids is not None
            feeds = dict(feeds, **self._noise_feeds(row_ids))
        return self.policy.executor.run(feeds, self._graph_wanted)

    def _run_episodes(self, feeds: Dict[str, np.ndarray], row_ids: Optional[np.ndarray], episodes: np.ndarray,
                      steps: np.ndarray, labels: RowLabels) -> Dict[str, np.ndarray]:
        """A recurrent policy over whole episodes: every episode from the initial state (the mask set at its first
        step), its rows in step order, state carried from step to step. One executor call per step index t runs
        step t of every episode that long, so the number of calls is the longest episode's length."""
        rows = len(episodes)
        order = labels.order(rows)
        by_episode = np.lexsort((order, steps, episodes))  # rows sorted by episode, then step
        sorted_episodes, sorted_steps = episodes[by_episode], steps[by_episode]
        same_episode = sorted_episodes[1:] == sorted_episodes[:-1]
        repeated = np.flatnonzero(same_episode & (sorted_steps[1:] == sorted_steps[:-1]))
        if repeated.size:  # named: the first row in dataset order that repeats an earlier row's step
            later = by_episode[repeated + 1]
            first = int(later[np.argmin(order[later])])
            raise InputError("episode {} has step {} twice ({}): the step column must order each episode's "
                             "rows".format(episodes[first].item(), steps[first].item(), labels(first)))
        starts = np.flatnonzero(np.concatenate([[True], ~same_episode]))
        lengths = np.diff(np.append(starts, rows))
        episode_of = np.repeat(np.arange(len(starts)), lengths)  # per sorted row
        position = np.arange(rows) - np.repeat(starts, lengths)  # step index t within its episode
        rank = np.empty(len(starts), np.int64)
        rank[np.argsort(-lengths, kind="stable")] = np.arange(len(starts))  # longest first: step t's active
        schedule = by_episode[np.lexsort((rank[episode_of], position))]    # episodes are a prefix
        active = np.bincount(position)  # episodes at least t + 1 steps long
        recurrent = self.recurrent
        state = np.zeros((len(starts), self.policy.state_size), np.float32)
        results: Dict[str, np.ndarray] = {}
        offset = 0
        for t, count in enumerate(active):
            chosen = schedule[offset:offset + count]
            offset += count
            step_feeds = {name: values[chosen] for name, values in feeds.items()}
            step_feeds[recurrent["state_input"]] = state[:count]
            step_feeds[recurrent["mask_input"]] = np.full(count, 1.0 if t == 0 else 0.0, np.float32)
            out = self._run(step_feeds, None if row_ids is None else row_ids[chosen])
            state[:count] = out[recurrent["state_output"]]
            for name, values in out.items():
                if name not in results:
                    results[name] = np.empty((rows,) + values.shape[1:], values.dtype)
                results[name][chosen] = values
        return results

    def _shaped(self, name: str, values: np.ndarray) -> np.ndarray:
        """An output as its column holds it: actions in the action space's shape under the SB3 contract (SPEC 5.9)."""
        if self.policy.contract == "sb3" and name in self._actions:
            return values.reshape((-1,) + tuple(self.policy.action_space.shape))
        return values


def _her_key_shape(space: Optional[Mapping[str, Any]]) -> Optional[Tuple[int, ...]]:
    """A HER key's row shape from its JSON space (a Discrete key is one integer per row), None if unknown."""
    if space is None:
        return None
    return () if space.get("kind") == "discrete" else tuple(space.get("shape", ()))

