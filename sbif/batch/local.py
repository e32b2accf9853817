"""The local engine: a dataset through a `BatchPredictor` in this process, batch by batch, into an output dataset.

The same predictor runs on Ray's actors (`sbif.integrations.ray`); here it runs on the batches `io.read_batches`
streams, and `io.DatasetWriter` writes the results atomically. Memory is bounded by the batch size (and, for a
recurrent policy, by the longest episode: an episode is computed whole).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from ..errors import InputError, preview
from ..progress import Progress
from .io import DataBatch, DatasetWriter, Shard, dataset_columns, dataset_shards, destination_kind, read_batches
from .predictor import BatchPredictor, BatchSpec, ModelSource
from .tables import RowLabels, batch_format, column_array, row_count, with_columns

#: rows per batch by default: the per-batch cost (reading, checking, writing a row group: about a millisecond) is
#: then negligible (500,000 rows of a small MLP: 21,000 rows/s in batches of 20, 750,000 in batches of 500), and a
#: batch of Atari frames (28 KB of uint8 each) holds 460 MB of observations
DEFAULT_BATCH_SIZE = 16384


@dataclass(frozen=True)
class BatchSummary:
    """What a run did: `sbif predict --out --json` prints it. `seed`: the sampled outputs' seed, None when no
    output samples."""

    rows: int
    seconds: float
    outputs: List[str]
    out: str
    engine: str
    batch_size: int
    seed: Optional[int]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def as_json(self) -> Dict[str, Any]:
        return {"rows": self.rows, "seconds": round(self.seconds, 3), "rows_per_second": round(self.rows_per_second),
                "outputs": self.outputs, "out": self.out, "engine": self.engine, "batch_size": self.batch_size,
                "seed": self.seed}


def run_local(model: ModelSource, data: str, out: str, spec: BatchSpec, batch_size: int = DEFAULT_BATCH_SIZE,
              passthrough: bool = True) -> BatchSummary:
    """Predict over the dataset at `data` and write `out` (formats: `sbif.batch.io`). `passthrough`: a Parquet
    destination also gets every input column (the dataset plus its new columns); False writes the outputs alone.
    A `.npy` destination always holds the one output alone."""
    started = time.monotonic()
    if batch_size < 1:
        raise InputError("the batch size must be at least 1, got {}".format(batch_size))
    predictor = BatchPredictor(model, spec)
    shards = dataset_shards(data)
    check_destination(data, out)
    total = sum(shard.rows for shard in shards)
    if total == 0:
        raise InputError("the dataset {} has no rows".format(preview(data)))
    available = dataset_columns(shards)
    keep_inputs = passthrough and destination_kind(out) != "npy"
    predictor.check_columns(available, keep_inputs)
    batches = read_batches(shards, batch_size, None if keep_inputs else predictor.input_columns(available))
    groups = episode_groups(batches, spec.episode_column) if predictor.recurrent else ([batch] for batch in batches)
    with Progress("predicting", total=total, unit="rows") as progress, \
            DatasetWriter(out, [shard.path for shard in shards], total) as writer:
        for group in groups:
            rows = predict_group(predictor, group, writer, keep_inputs)
            progress.advance(rows, detail="{:,.0f} rows/s".format(progress.done / max(progress.elapsed(), 1e-9)))
    return BatchSummary(total, time.monotonic() - started, predictor.output_columns, out, "local", batch_size,
                        spec.seed if predictor.sampling_outputs() else None)


def check_destination(data: str, out: str) -> None:
    """The destination must not be the dataset (it is replaced only at the end, but a reader could still be
    mapping it), nor inside a directory dataset."""
    source, target = os.path.realpath(data), os.path.realpath(out)
    if source == target or target.startswith(source.rstrip(os.sep) + os.sep):
        raise InputError("--out {} would overwrite the dataset it reads".format(preview(out)))


def predict_group(predictor: BatchPredictor, group: List[DataBatch], writer: DatasetWriter, keep_inputs: bool) -> int:
    """Predict consecutive batches as one (a recurrent policy's whole episodes) and write each back to its shard."""
    data = concatenate([batch.data for batch in group])
    outputs = predictor.compute(data, first_row=group[0].first_row)
    offset = 0
    for batch in group:
        rows = row_count(batch.data)
        part = {name: values[offset:offset + rows] for name, values in outputs.items()}
        writer.write(with_columns(batch.data, part) if keep_inputs else part, batch.shard)
        offset += rows
    return offset


def concatenate(parts: List[Any]) -> Any:
    """Batches of one format as one: an Arrow Table over RecordBatches (no copy), or NumPy arrays joined."""
    if len(parts) == 1:
        return parts[0]
    if batch_format(parts[0]) == "numpy":
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    import pyarrow as pa

    return pa.Table.from_batches(parts)


def slice_batch(batch: DataBatch, start: int, stop: int) -> DataBatch:
    data = batch.data
    if batch_format(data) == "numpy":
        part = {name: values[start:stop] for name, values in data.items()}
    else:
        part = data.slice(start, stop - start)
    return DataBatch(batch.shard, batch.first_row + start, part)


class EpisodeOrder:
    """Checks, batch by batch in dataset order, that each episode's rows lie together in the dataset (in any step
    order): an episode that appears again after another one is refused, naming the row, as the local engine would
    otherwise compute it as two episodes. The Ray engine, which groups rows by episode wherever they are, runs the
    same check over the episode column first, so that both engines accept and refuse the same datasets. Remembering
    finished episodes costs a set entry per episode."""

    def __init__(self) -> None:
        #: the episode of the last row seen, not known to be complete
        self.open_episode: Any = None
        self.finished: Set[Any] = set()

    def add(self, episodes: np.ndarray, first_row: int) -> Tuple[np.ndarray, bool]:
        """The next rows' episodes (their first row's dataset index is `first_row`): the positions where an
        episode starts among them, and whether the first continues the episode the rows before ended in."""
        starts = np.flatnonzero(np.concatenate([[True], episodes[1:] != episodes[:-1]]))
        continues = episodes[0].item() == self.open_episode
        for index, start in enumerate(starts):
            episode = episodes[start].item()
            if index == 0 and continues:
                continue
            if self.open_episode is not None:
                self.finished.add(self.open_episode)
            if episode in self.finished:
                raise InputError("episode {}'s rows are not together in the dataset: it appears again at row {} "
                                 "after another episode (each episode's rows must lie together, in any step order: "
                                 "sort the data by episode)".format(preview(episode), first_row + int(start)))
            self.open_episode = episode
        return starts, continues


def check_episodes_together(shards: Sequence[Shard], episode_column: str, batch_size: int) -> None:
    """`EpisodeOrder` over a whole dataset's episode column (read alone, `batch_size` rows at a time)."""
    order = EpisodeOrder()
    for batch in read_batches(shards, batch_size, [episode_column]):
        if row_count(batch.data):
            order.add(column_array(batch.data, episode_column, RowLabels(batch.first_row, None)), batch.first_row)


def episode_groups(batches: Iterable[DataBatch], episode_column: str) -> Iterator[List[DataBatch]]:
    """The batches regrouped so that every group holds whole episodes: the rows of the episode a batch ends in are
    held back and go with the next batch, until the episode ends (`EpisodeOrder` refuses an episode whose rows are
    not together)."""
    pending: List[DataBatch] = []  # the rows of the open episode (the last one seen), not known to be complete
    order = EpisodeOrder()
    for batch in batches:
        rows = row_count(batch.data)
        if rows == 0:
            continue
        episodes = column_array(batch.data, episode_column, RowLabels(batch.first_row, None))
        starts, continues = order.add(episodes, batch.first_row)
        last = int(starts[-1])
        if last == 0 and continues:
            pending.append(batch)
        elif last == 0:
            if pending:
                yield pending
            pending = [batch]
        else:
            yield pending + [slice_batch(batch, 0, last)]
            pending = [slice_batch(batch, last, rows)]
    if pending:
        yield pending
