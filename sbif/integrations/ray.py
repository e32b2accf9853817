"""Batch inference on Ray Data: a policy over datasets that outgrow one process (spec/batch-inference.md).

Three levels, each built on the one before:

    SbifMapper        the callable class for `Dataset.map_batches(SbifMapper, fn_constructor_kwargs=...,
                      compute=ActorPoolStrategy(size=N), batch_format="pyarrow" | "numpy" | "pandas")`: each actor
                      loads the policy once and runs `sbif.batch.BatchPredictor` on the batches it is given
    map_dataset       any Ray dataset with the outputs added (actor pool, recurrent episodes kept whole)
    map_pieces        a dataset on disk whose pieces (runs of a shard's rows) the actors read themselves and map,
                      with no read tasks and no input blocks in the object store
    run_dataset       what `sbif predict --engine ray` calls: a dataset on disk (Parquet, .npy, a directory of
                      shards) read and mapped on a cluster, written atomically as the local engine writes it

    import ray
    from sbif.batch import BatchSpec
    from sbif.integrations.ray import SbifMapper, policy_reference

    spec = BatchSpec(outputs=("action", "value"))
    dataset.map_batches(SbifMapper, fn_constructor_kwargs={"model": policy_reference("ppo2.sbif"), "spec": spec},
                        compute=ray.data.ActorPoolStrategy(size=8), batch_size=16384, batch_format="pyarrow")

The policy travels once: `policy_reference` puts the file's bytes in the object store, and every actor of a node
gets them from that node's one copy (no per-task shipping, no file system shared between the nodes); a path works as
well where every node sees it. Each actor then maps a copy of its own: SBIF's reader maps files, so the bytes are
written once per actor to an unlinked temporary file (`sbif.batch.load_policy`; a few milliseconds even for the
7 MB nature CNN).

`connect(address)` joins a cluster once for many `run_dataset` calls (a notebook, a benchmark); `run_dataset` alone
joins and leaves each time, as `sbif predict` does.

Results do not depend on the cluster: a row's outputs are a function of its observations, its id and the seed
(`sbif.batch.noise`), so the same dataset gives the same values on one process or a hundred, however Ray cuts it
into blocks, as long as each row's id is the same. Rows of a dataset without an id column are identified by their
index in it, which only the reader knows: `read_dataset` adds it as the column `ROW_COLUMN`. Recurrent policies
need whole episodes per batch; `map_dataset` regroups the rows by episode first (its docstring says how).
"""
from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import os
import sys
import time
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from ..batch import BatchPredictor, BatchSpec, BatchSummary, DatasetWriter, Shard, check_destination
from ..batch import dataset_columns, dataset_shards
from ..batch.io import NPY_COLUMN, file_kind, open_npy
from ..batch.local import DEFAULT_BATCH_SIZE, check_episodes_together
from ..batch.tables import RowLabels, column_array, column_names, to_arrow, with_columns
from ..errors import InputError, SbifError, preview
from ..progress import Progress

try:
    import ray
    import ray.data
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask
except ImportError:  # pragma: no cover - the message is the point
    raise SbifError("the Ray engine needs Ray Data: pip install 'sbif[ray]'") from None

#: The column `read_dataset` adds: each row's index in the dataset (int64), the id of rows without an id column,
#: and how the driver puts the results back in dataset order. Dropped before anything is written.
ROW_COLUMN = "__sbif_row"


def policy_reference(path: str) -> "ray.ObjectRef":
    """The policy file's bytes in Ray's object store, put there once: pass the reference as `SbifMapper`'s `model`.

    A uint8 array rather than `bytes`, so that an actor's `ray.get` returns a read-only view of its node's shared
    copy instead of a private copy of it."""
    try:
        contents = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputError("cannot read the policy file {}: {}".format(preview(path), exc.strerror)) from None
    return ray.put(contents)


class SbifMapper:
    """A policy on a Ray actor: `map_batches` gives it batches, it returns them with the output columns added.

    `model`: a reference from `policy_reference` (or a path every node can read, or the file's bytes); the policy
    is loaded once, when the actor starts. `spec`: what to compute (`sbif.batch.BatchSpec`). Batches are a pyarrow
    Table, a dict of NumPy arrays or a pandas DataFrame, and come back in their own format.

    Rows: `ROW_COLUMN`, which `read_dataset` adds, holds each row's index in the dataset, whatever batch it is in:
    errors name rows by it, as the local engine does, and it is the rows' id when the data has no id column
    (`spec.id_column`, or `id`). The batches of a recurrent policy must hold whole episodes (`map_dataset`
    arranges that). `keep_inputs=False` returns the outputs alone (and `ROW_COLUMN`, when the batch has it),
    sparing the transfer of the observations back to whoever reads the results."""

    def __init__(self, model: Any, spec: BatchSpec, keep_inputs: bool = True):
        if isinstance(model, ray.ObjectRef):
            model = ray.get(model)
        if isinstance(model, np.ndarray):  # policy_reference's bytes: a view of the object store's copy
            model = memoryview(model)
        self.predictor = BatchPredictor(model, spec)
        self.keep_inputs = keep_inputs

    def __call__(self, batch: Any) -> Any:
        names = column_names(batch)
        rows = column_array(batch, ROW_COLUMN, RowLabels(None, None)) if ROW_COLUMN in names else None
        outputs = self.predictor.compute(batch, row_indices=rows)
        if self.keep_inputs:
            return with_columns(batch, outputs)
        kept = [ROW_COLUMN] if ROW_COLUMN in names else []
        return with_columns(_select(batch, kept), outputs)


def _select(batch: Any, names: Sequence[str]) -> Any:
    """The columns `names` of a batch, in its format."""
    if isinstance(batch, dict):
        return {name: batch[name] for name in names}
    if hasattr(batch, "select"):  # pyarrow
        return batch.select(list(names))
    return batch[list(names)]  # pandas


#: the one column of the dataset `map_pieces` maps: the index of a piece in `SbifDatasource.pieces`
PIECE_COLUMN = "piece"
#: pieces an actor of `map_pieces` holds at a time: the one it maps and the next
PIECES_IN_FLIGHT = 2


class PieceMapper:
    """A policy on a Ray actor that reads its own input: `map_batches` gives it the indices of pieces of a
    `SbifDatasource` (`Piece`: rows of a shard), and it reads each, maps it in batches of
    `batch_size` rows with a `SbifMapper`, and returns the piece's rows with the outputs added, as one Arrow table
    (with `ROW_COLUMN`). `map_pieces` says why."""

    def __init__(self, model: Any, spec: BatchSpec, keep_inputs: bool, source: "SbifDatasource", batch_size: int):
        self.mapper = SbifMapper(model, spec, keep_inputs)
        self.source, self.batch_size = source, batch_size

    def __call__(self, batch: Dict[str, np.ndarray]) -> Any:
        import pyarrow as pa

        mapped = []
        for index in batch[PIECE_COLUMN]:
            table = self.source.read_piece(int(index))
            mapped += [self.mapper(table.slice(start, self.batch_size))
                       for start in range(0, max(table.num_rows, 1), self.batch_size)]
        return pa.concat_tables(mapped)


class Piece(NamedTuple):
    """Rows [start, stop) of a shard, which `SbifDatasource` reads as one table: `first_row` is row start's index
    in the dataset; `groups`: the Parquet row groups that hold the rows (none for .npy), the first beginning at
    the shard's row `groups_start`."""

    shard: Shard
    start: int
    stop: int
    first_row: int
    groups: Tuple[int, ...]
    groups_start: int


class SbifDatasource(Datasource):
    """A dataset on disk as `sbif.batch.io` defines it (Parquet or .npy files, or a directory of shards), read by
    Ray Data with each row's index in the dataset in `ROW_COLUMN`: the index is the rows' id when the data has no
    id column (their noise is a function of it), and the order the driver writes the results in.

    The dataset is read in pieces (`pieces`), never across shards: without `batch_size`, a Parquet row group
    (pyarrow's unit of reading) or `NPY_ROWS_PER_READ` rows of a memory-mapped .npy array each. With it, each
    piece is a run of whole batches of the local engine (`sbif.batch.read_batches`: `batch_size` rows at a time
    from each shard's start) at least that long, so that a piece mapped in batches of `batch_size` from its start
    forms the local engine's very batches: a backend whose results depend on the batch a row is in (numba's
    convolutions, NumPy's BLAS products) then gives the local engine's bits too. A row group across two such
    pieces is decoded by both. `columns`: the columns to read (default all)."""

    def __init__(self, path: str, columns: Optional[Sequence[str]] = None, batch_size: Optional[int] = None):
        super().__init__()
        self.path = path
        self.shards: List[Shard] = dataset_shards(path)
        self.columns = list(columns) if columns is not None else None
        offsets = np.cumsum([0] + [shard.rows for shard in self.shards])
        self.pieces = [Piece(shard, start, stop, int(offsets[index]) + start, groups, groups_start)
                       for index, shard in enumerate(self.shards)
                       for start, stop, groups, groups_start in _shard_pieces(shard, batch_size)]
        self.schema = _arrow_schema(self.shards, self.columns)

    def get_name(self) -> str:
        return "ReadSbif"

    def read_piece(self, index: int) -> Any:
        """Piece `index` as one Arrow table, with `ROW_COLUMN`."""
        return next(_read_piece(self.pieces[index], self.columns))

    def estimate_inmemory_data_size(self) -> Optional[int]:
        return sum(os.path.getsize(shard.path) for shard in self.shards)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: Optional[int] = None,
                       data_context: Any = None) -> List[ReadTask]:
        """One task per piece, whatever `parallelism` asks (`read_dataset` asks for exactly that many)."""
        tasks = []
        for piece in self.pieces:
            read = functools.partial(_read_piece, piece, self.columns)
            metadata = BlockMetadata(num_rows=piece.stop - piece.start,
                                     size_bytes=_piece_bytes(piece.shard, piece.stop - piece.start),
                                     exec_stats=None, input_files=[piece.shard.path])
            tasks.append(ReadTask(read, metadata, schema=self.schema, per_task_row_limit=per_task_row_limit))
        return tasks


#: rows of a .npy shard per piece (without a batch size: below)
NPY_ROWS_PER_READ = 131072


def _shard_pieces(shard: Shard, batch_size: Optional[int]) -> Iterator[Tuple[int, int, Tuple[int, ...], int]]:
    """(start, stop, row groups, first group's start) of each piece of a shard (`SbifDatasource`)."""
    if shard.kind == "npy":
        bounds = list(range(0, shard.rows, NPY_ROWS_PER_READ)) + [shard.rows]
    else:
        import pyarrow.parquet as pq

        metadata = pq.ParquetFile(shard.path).metadata
        bounds = [0] + [int(row) for row in np.cumsum([metadata.row_group(group).num_rows
                                                         for group in range(metadata.num_row_groups)])]
    if batch_size is None:
        pieces = list(zip(bounds[:-1], bounds[1:]))
    else:
        longest = max([stop - start for start, stop in zip(bounds[:-1], bounds[1:])] + [1])
        length = batch_size * -(-longest // batch_size)
        pieces = [(start, min(start + length, shard.rows)) for start in range(0, shard.rows, length)]
    for start, stop in pieces:
        if shard.kind == "npy":
            yield start, stop, (), start
            continue
        first = int(np.searchsorted(bounds, start, side="right")) - 1
        last = int(np.searchsorted(bounds, stop, side="left"))
        yield start, stop, tuple(range(first, last)), bounds[first]


def _arrow_schema(shards: Sequence[Shard], columns: Optional[Sequence[str]]) -> Any:
    """The schema of the tables `_read_piece` makes, known without reading a row (Ray asks before it reads)."""
    import pyarrow as pa

    if shards[0].kind == "npy":
        array = open_npy(shards[0].path)
        fields = [pa.field(NPY_COLUMN, to_arrow(np.zeros((0,) + array.shape[1:], array.dtype)).type)]
    else:
        import pyarrow.parquet as pq

        schema = pq.ParquetFile(shards[0].path).schema_arrow
        fields = [schema.field(name) for name in (columns if columns is not None else schema.names)]
    return pa.schema(fields + [pa.field(ROW_COLUMN, pa.int64())])


def _piece_bytes(shard: Shard, rows: int) -> int:
    """A read task's share of its file's size: Ray's estimate of the block's memory."""
    return int(os.path.getsize(shard.path) * rows // max(shard.rows, 1))


def _read_piece(piece: Piece, columns: Optional[List[str]]) -> Iterator[Any]:
    """A piece's rows as one Arrow table, with their dataset indices in ROW_COLUMN."""
    import pyarrow as pa

    rows = piece.stop - piece.start
    if piece.shard.kind == "npy":
        table = pa.table({NPY_COLUMN: to_arrow(np.asarray(open_npy(piece.shard.path)[piece.start:piece.stop]))})
    else:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(piece.shard.path).read_row_groups(list(piece.groups), columns=columns)
        table = table.slice(piece.start - piece.groups_start, rows)
    indices = np.arange(piece.first_row, piece.first_row + rows, dtype=np.int64)
    yield table.append_column(ROW_COLUMN, pa.array(indices))


def read_dataset(path: Union[str, SbifDatasource], columns: Optional[Sequence[str]] = None,
                 concurrency: Optional[int] = None) -> "ray.data.Dataset":
    """The dataset at `path` (`sbif.batch.io`'s formats; or a `SbifDatasource` made already, whose columns then
    apply) as a Ray dataset with `ROW_COLUMN` added, one block per read task (`SbifDatasource.pieces`).

    The read tasks reserve no CPU: they are short (I/O, and decoding a row group), and an actor pool sized to the
    cluster's CPUs, as `run_dataset`'s is, would otherwise hold every CPU while its actors wait for the very blocks
    those tasks were to read. (Ray fuses a read into an actor pool's map only when both ask for the same CPUs and
    the map takes whole blocks; on Ray 2.60 such a fused job ran one actor of the two the test cluster has room
    for, so the read stays separate; `map_pieces` reads in the actors instead.) `concurrency` caps how many run at
    once."""
    source = path if isinstance(path, SbifDatasource) else SbifDatasource(path, columns)
    return ray.data.read_datasource(source, override_num_blocks=len(source.pieces), num_cpus=0,
                                    concurrency=concurrency)


def map_dataset(dataset: "ray.data.Dataset", model: Any, spec: BatchSpec, actors: int = 1,
                batch_size: int = DEFAULT_BATCH_SIZE, batch_format: str = "pyarrow", keep_inputs: bool = True,
                cpus_per_actor: float = 1.0) -> "ray.data.Dataset":
    """`dataset` with the outputs of `spec` added, computed by a pool of `actors` actors, each holding the policy
    (`model`: a `policy_reference`, or a path every node can read).

    A feed-forward policy maps batches of `batch_size` rows as they come. A recurrent policy needs
    each episode's rows together in one batch: the rows are first grouped by `spec.episode_column`, as
    `groupby().map_groups()` groups them (Ray sorts by the key, so that each block holds whole episodes), but each
    batch is a whole block of many episodes, not one episode: `BatchPredictor` then runs step t of every episode of
    the block in one call, where a call per episode would run one row at a time. The rows come back grouped by
    episode; a dataset from `read_dataset` can be put back in its order by sorting on `ROW_COLUMN`. (Sorting groups
    an episode's rows wherever they are; `run_dataset` first refuses a dataset whose episodes are not together, as
    the local engine does.)"""
    if actors < 1:
        raise InputError("the actor pool needs at least one actor, got {}".format(actors))
    if batch_size < 1:
        raise InputError("the batch size must be at least 1, got {}".format(batch_size))
    predictor = BatchPredictor(model if isinstance(model, str) else _load_for_checks(model), spec)
    available = list(dataset.schema().names)
    predictor.check_columns(available, keep_inputs)
    mapping = dict(fn_constructor_kwargs={"model": model, "spec": spec, "keep_inputs": keep_inputs},
                   compute=ray.data.ActorPoolStrategy(size=actors), batch_format=batch_format,
                   num_cpus=cpus_per_actor)
    if predictor.recurrent:
        # Sorted before the actors start: sorting's tasks need CPUs that a running actor pool would hold.
        grouped = dataset.sort(spec.episode_column).materialize()
        return grouped.map_batches(SbifMapper, batch_size=None, **mapping)
    return dataset.map_batches(SbifMapper, batch_size=batch_size, **mapping)


def _load_for_checks(model: Any) -> Any:
    """The policy `map_dataset`'s driver checks the columns and outputs against, from what the actors get."""
    if isinstance(model, ray.ObjectRef):
        return memoryview(ray.get(model))
    return model


def map_pieces(source: SbifDatasource, model: Any, spec: BatchSpec, actors: int = 1,
               batch_size: int = DEFAULT_BATCH_SIZE, keep_inputs: bool = True, cpus_per_actor: float = 1.0
               ) -> "ray.data.Dataset":
    """The dataset `source` describes with the outputs of `spec` added (a feed-forward policy), one block per piece
    in the pieces' order, computed by a pool of `actors` `PieceMapper`s that read the pieces themselves, each in
    batches of `batch_size` rows from its start (a source made with the same `batch_size` has pieces of whole
    batches: the local engine's batches, then).

    Where `read_dataset` + `map_dataset` read each piece in a Ray task and hand the block to an actor through the
    object store, here the actor that maps a piece reads it: no read tasks, no input block stored or moved
    between nodes. Those tasks cost more than their reading: an actor pool as large as the cluster's CPUs holds
    each node's worker slots, so Ray stops the idle workers the reads ran on (above a node's soft limit of one
    worker per CPU) and starts a new Python process for the next read, about a CPU-second each. Every node must
    see the dataset's path, as for read tasks; the dataset mapped is the pieces' indices, a few bytes each."""
    if actors < 1:
        raise InputError("the actor pool needs at least one actor, got {}".format(actors))
    if batch_size < 1:
        raise InputError("the batch size must be at least 1, got {}".format(batch_size))
    pieces = ray.data.from_items([{PIECE_COLUMN: index} for index in range(len(source.pieces))],
                                 override_num_blocks=len(source.pieces))
    # At most PIECES_IN_FLIGHT pieces per actor, so that each piece goes to an actor about to be free: Ray Data
    # otherwise queues several on the actors of the node holding a task's input block, which here is a piece's
    # index, on the driver's node, not its data (one run on the test cluster gave the other node's actor one piece).
    compute = ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=PIECES_IN_FLIGHT)
    return pieces.map_batches(
        PieceMapper, batch_size=1, batch_format="numpy", compute=compute, num_cpus=cpus_per_actor,
        fn_constructor_kwargs={"model": model, "spec": spec, "keep_inputs": keep_inputs, "source": source,
                               "batch_size": batch_size})


def run_dataset(model: str, data: str, out: str, spec: BatchSpec, batch_size: int = DEFAULT_BATCH_SIZE,
                address: Optional[str] = None, passthrough: bool = True, actors: Optional[int] = None
                ) -> BatchSummary:
    """`sbif predict --engine ray`: the dataset at `data` through the policy at `model` on the Ray cluster at
    `address` (None: a Ray started in this process for the run; joined already: that one), written to `out`
    exactly as `run_local` writes it (same rows, order, columns and types; `passthrough` as there).

    `actors`: the actor pool's size (default `default_actors`). The actors read the pieces of the dataset and
    predict (`map_pieces`; a recurrent policy's rows are read by Ray Data and regrouped, `map_dataset`); the
    results stream back to this process, which writes them
    in dataset order through the local engine's atomic writer, so nothing appears at `out` unless every row was
    predicted. The driver writes, not the actors, because `out` is a path on this machine (a cluster's nodes need
    not share its file system), a single-file destination is one ordered file, and only one writer can make the
    output appear at once (by a rename) or not at all. A failure (a bad column, a lost node Ray could not recover
    from) is an SbifError of one line: the cause's own message, not the cluster's traceback."""
    started = time.monotonic()
    check_destination(data, out)
    shards = dataset_shards(data)
    total = sum(shard.rows for shard in shards)
    if total == 0:
        raise InputError("the dataset {} has no rows".format(preview(data)))
    if actors is not None and actors < 1:
        raise InputError("the actor pool needs at least one actor, got {}".format(actors))
    predictor = BatchPredictor(model, spec)  # a wrong output, seed or column fails here, before Ray starts
    available = dataset_columns(shards)
    keep_inputs = passthrough and file_kind(out) != "npy"
    predictor.check_columns(available, keep_inputs)
    if predictor.recurrent:  # the local engine's refusal, before any work: Ray's grouping would not need it
        check_episodes_together(shards, spec.episode_column, batch_size)
    columns = None if keep_inputs else predictor.input_columns(available)
    with quiet_standard_error() as terminal:
        started_ray = connect(address)
        try:
            # feed-forward: pieces of whole batches, so that the actors form the local engine's batches
            source = SbifDatasource(data, columns, None if predictor.recurrent else batch_size)
            pool = actors or default_actors(len(source.pieces))
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            context.print_on_execution_start = False
            context.execution_options.preserve_order = True
            if predictor.recurrent:  # whole episodes per batch, then back in dataset order (`map_dataset`)
                mapped = map_dataset(read_dataset(source, concurrency=pool), policy_reference(model), spec,
                                     actors=pool, batch_size=batch_size, batch_format="pyarrow",
                                     keep_inputs=keep_inputs).materialize().sort(ROW_COLUMN)
            else:
                mapped = map_pieces(source, policy_reference(model), spec, actors=pool, batch_size=batch_size,
                                    keep_inputs=keep_inputs)
            with Progress("predicting on Ray ({} actors)".format(pool), total=total, unit="rows",
                          stream=terminal) as progress, \
                    DatasetWriter(out, [shard.path for shard in shards], total) as writer:
                written = _write_in_order(mapped, writer, np.asarray([shard.rows for shard in shards]), progress)
            if written != total:
                raise SbifError("Ray returned {} rows of the {} read".format(written, total))
        except SbifError:
            raise
        except Exception as exc:  # Ray's own errors: their cause, in one line
            raise cluster_error(exc) from None
        finally:
            if started_ray:
                ray.shutdown()
    return BatchSummary(total, time.monotonic() - started, predictor.output_columns, out, "ray", batch_size,
                        spec.seed if predictor.sampling_outputs() else None)


def default_actors(read_tasks: int) -> int:
    """The actor pool `run_dataset` uses unless told: one actor per CPU of the cluster, but no more than there are
    read tasks (an actor without a block to map only costs its start: a process that imports SBIF and loads the
    policy)."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, min(cpus, read_tasks))


@contextlib.contextmanager
def quiet_standard_error() -> Iterator[Any]:
    """Point this process's standard error (file descriptor 2) at the null device for a run, and yield a stream to
    the real one, for the run's own progress line. Ray's C++ core writes its notices there directly (such as, for
    every Ray Data actor pool, that the actors' constructor arguments live in the object store), as Ray Data
    writes its own; they are not the user's business, and Ray keeps its logs in its session directory. Failures
    are not lost: they surface as exceptions, reported once the descriptor is back."""
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(2), "w", buffering=1)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield terminal
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        for descriptor in (saved, null):
            os.close(descriptor)
        terminal.close()


def connect(address: Optional[str]) -> bool:
    """Join the cluster at `address`, or start a Ray for this process (None); True if this call started or joined
    it (and so must shut it down), False if Ray was already initialised by the caller (who may join once and run
    many jobs: `run_dataset` then uses that cluster).

    Ray's Python loggers log warnings and errors only, and the workers' output is not forwarded to this process
    (`run_dataset` also keeps the rest of Ray's notices off the terminal: `quiet_standard_error`). A loopback
    address names a cluster on this machine: the driver joins it as a node of that address, where Ray would
    otherwise announce itself by the machine's outward interface."""
    if ray.is_initialized():
        return False
    options: Dict[str, Any] = dict(logging_level=logging.WARNING, log_to_driver=False, include_dashboard=False,
                                   configure_logging=True)
    host = _host_of(address) if address else "127.0.0.1"
    if _is_loopback(host):
        options["_node_ip_address"] = host
    try:
        ray.init(address=address, **options)
    except Exception as exc:
        raise SbifError("cannot join the Ray cluster at {}: {}".format(address or "(local)", _first_line(exc))
                        ) from None
    return True


def _host_of(address: str) -> str:
    """The host of a 'host:port' (or 'ray://host:port') address."""
    bare = address.split("://", 1)[-1]
    return bare.rsplit(":", 1)[0].strip("[]")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _write_in_order(mapped: "ray.data.Dataset", writer: DatasetWriter, shard_rows: np.ndarray,
                    progress: Progress) -> int:
    """Write the mapped blocks, which arrive in dataset order, each row to its shard; a row missing, repeated or
    out of order is an error, not a silently different file."""
    offsets = np.cumsum(np.concatenate([[0], shard_rows]))
    expected = 0
    for table in mapped.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=2):
        rows = table.column(ROW_COLUMN).to_numpy()
        if rows.size == 0:
            continue
        if not np.array_equal(rows, np.arange(expected, expected + rows.size)):
            raise SbifError("Ray returned the rows out of order: rows {}.. where row {} was next".format(
                int(rows[0]), expected))
        table = table.drop_columns([ROW_COLUMN])
        if writer.kind == "npy":  # the writer takes a .npy file's one output as an array
            table = {name: column_array(table, name, RowLabels(expected, None)) for name in table.schema.names}
        position = 0
        while position < rows.size:
            row = expected + position
            shard = int(np.searchsorted(offsets, row, side="right")) - 1
            count = min(rows.size - position, int(offsets[shard + 1]) - row)
            writer.write(_rows(table, position, count), shard)
            position += count
        expected += rows.size
        progress.advance(rows.size, detail="{:,.0f} rows/s".format(progress.done / max(progress.elapsed(), 1e-9)))
    return expected


def _rows(batch: Any, start: int, count: int) -> Any:
    """Rows [start, start + count) of an Arrow table or a dict of arrays."""
    if isinstance(batch, dict):
        return {name: values[start:start + count] for name, values in batch.items()}
    return batch.slice(start, count)


def cluster_error(exc: BaseException) -> SbifError:
    """A Ray failure as one line: the SbifError a task raised (a bad column in some batch: its own message), else
    the first line of Ray's own message."""
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, SbifError) and not isinstance(cause, ray.exceptions.RayError):
            return cause
    for cause in causes:
        if isinstance(cause, SbifError):
            # Ray's stand-in for the task's exception (a RayTaskError that is also an InputError, say): its text
            # is the remote traceback, whose last line is the original's "module.InputError: message"
            kind = next(base for base in type(cause).__mro__
                        if issubclass(base, SbifError) and not issubclass(base, ray.exceptions.RayError))
            last = str(cause).strip().splitlines()[-1]
            return kind(last.split(": ", 1)[1] if ": " in last else last)
    quoted = _quoted_sbif_error(exc)
    if quoted is not None:
        return quoted
    return SbifError("the Ray job failed: {}".format(_first_line(exc)))


def _quoted_sbif_error(exc: BaseException) -> Optional[SbifError]:
    """The SbifError a remote traceback in `exc`'s text ends with ("sbif.errors.InputError: message"): Ray Data
    wraps an exception of the user's function in its own, which keeps the original only as text."""
    from .. import errors

    found = None
    for line in str(exc).splitlines():
        name, _, message = line.strip().partition(": ")
        kind = getattr(errors, name[len("sbif.errors."):], None) if name.startswith("sbif.errors.") else None
        if isinstance(kind, type) and issubclass(kind, SbifError) and message:
            found = kind(message)
    return found


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps: a RayTaskError's `cause` (the exception the task raised), then the chain."""
    seen = set()
    pending: List[Optional[BaseException]] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "cause", None), current.__cause__, current.__context__]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
