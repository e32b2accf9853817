"""Datasets on disk: read in bounded batches, written whole or not at all.

A dataset is a Parquet file, a `.npy` file (an array [rows, *shape]: the observations, one column), or a directory
of shards, Parquet or `.npy` files taken in the order of their names, whose rows follow one another. Reading streams:
Parquet by record batches (pyarrow reads one row group at a time), `.npy` through a memory map, so memory is bounded
by the batch size and the row groups, never by the dataset.

Writing goes to a temporary name beside the destination (`.NAME.sbif-tmp-PID`), renamed over it only when every
row is written: a failure or an interruption leaves the destination as it was. A Parquet destination gets the
input's columns (or only the outputs) and the outputs as fixed-size-list columns; a `.npy` destination one output
(an array [rows, *shape]); a directory (a name without a suffix) Parquet shards, one per input shard, named after
it.
"""
from __future__ import annotations

import functools
import operator
import os
import shutil
from typing import Any, BinaryIO, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError, SbifError, preview
from .tables import batch_format, check_numeric_dtype, to_arrow

PARQUET_SUFFIXES = (".parquet", ".pq")
NPY_SUFFIX = ".npy"
#: the column a `.npy` dataset's array is read as
NPY_COLUMN = "obs"
TEMPORARY_MARK = ".sbif-tmp-"


class Shard(NamedTuple):
    """One file of a dataset: its path, 'parquet' or 'npy', and its number of rows."""

    path: str
    kind: str
    rows: int


class DataBatch(NamedTuple):
    """Rows of a dataset: the index of the shard they come from, the dataset index of their first row, and the
    data, a pyarrow RecordBatch (Parquet) or a dict of NumPy arrays (`.npy`)."""

    shard: int
    first_row: int
    data: Any


def file_kind(path: str) -> Optional[str]:
    """'parquet' or 'npy' from a file name's suffix; None for anything else."""
    lower = path.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return "npy" if lower.endswith(NPY_SUFFIX) else None


def destination_kind(out: str) -> str:
    """'parquet', 'npy' or 'directory' (an existing directory, or a name without a suffix) for a destination."""
    kind = file_kind(out)
    if kind is not None:
        return kind
    if os.path.isdir(out) or not os.path.splitext(os.path.basename(os.path.normpath(out)))[1]:
        return "directory"
    raise InputError("cannot write {}: write a .parquet or .npy file, or a directory (a name without a "
                     "suffix)".format(preview(out)))


def dataset_shards(path: str) -> List[Shard]:
    """The shards of the dataset at `path` (a file, or a directory of Parquet or `.npy` files, by name)."""
    if os.path.isdir(path):
        names = sorted(name for name in os.listdir(path)
                       if file_kind(name) and not name.startswith(".") and TEMPORARY_MARK not in name)
        kinds = {file_kind(name) for name in names}
        if not names:
            raise InputError("the directory {} holds no Parquet (.parquet) or .npy shards".format(preview(path)))
        if len(kinds) > 1:
            raise InputError("the directory {} mixes Parquet and .npy shards: use one kind".format(preview(path)))
        files = [os.path.join(path, name) for name in names]
    elif os.path.exists(path):
        if file_kind(path) is None:
            raise InputError("{} is not a dataset: use a .parquet or .npy file, or a directory of them".format(
                preview(path)))
        files = [path]
    else:
        raise InputError("no dataset at {} (a Parquet or .npy file, or a directory of them)".format(preview(path)))
    return [Shard(file, str(file_kind(file)), _row_count(file)) for file in files]


def _row_count(path: str) -> int:
    if file_kind(path) == "npy":
        return int(open_npy(path).shape[0])
    pq = _parquet()
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError("cannot read {} as Parquet: {}".format(preview(path), exc)) from None


def dataset_columns(shards: Sequence[Shard]) -> List[str]:
    """The columns of a dataset: the first Parquet shard's (every shard must have them), or NPY_COLUMN."""
    if shards[0].kind == "npy":
        return [NPY_COLUMN]
    return list(_parquet().ParquetFile(shards[0].path).schema_arrow.names)


def read_batches(shards: Sequence[Shard], batch_size: int, columns: Optional[Sequence[str]] = None
                 ) -> Iterator[DataBatch]:
    """The dataset's rows in order, `batch_size` at a time (fewer at the end of each shard), with `columns` only
    (default all). A Parquet shard whose columns differ from the first shard's is refused when reached."""
    if batch_size < 1:
        raise InputError("the batch size must be at least 1, got {}".format(batch_size))
    first_row = 0
    expected = None
    for index, shard in enumerate(shards):
        if shard.kind == "npy":
            array = open_npy(shard.path)
            for start in range(0, len(array), batch_size):
                yield DataBatch(index, first_row + start, {NPY_COLUMN: array[start:start + batch_size]})
        else:
            parquet = _parquet().ParquetFile(shard.path)
            names = list(parquet.schema_arrow.names)
            if expected is None:
                expected = names
            elif names != expected:
                raise InputError("shard {} has the columns {}, where {} has {}".format(
                    preview(shard.path), ", ".join(names), preview(shards[0].path), ", ".join(expected)))
            start = 0
            for record_batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
                yield DataBatch(index, first_row + start, record_batch)
                start += record_batch.num_rows
        first_row += shard.rows


class NpyHeader(NamedTuple):
    """What a .npy file's data is, and where it starts."""

    shape: Tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int
    data_bytes: int


def read_npy_header(handle: BinaryIO) -> NpyHeader:
    """The header of the .npy file open in `handle` (at its start), checked before any of its data is read: format
    version 1.0 or 2.0, numbers (`check_numeric_dtype`), and exactly as many bytes after it as its shape and dtype
    declare, so that a small file declaring a huge shape is refused before anything is allocated (ValueError naming
    what is wrong)."""
    version = np.lib.format.read_magic(handle)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(".npy format version {}.{} is not supported (1.0 or 2.0)".format(*version))
    shape, fortran_order, dtype = readers[version](handle)
    check_numeric_dtype(dtype)
    if not all(isinstance(size, int) and size >= 0 for size in shape):
        raise ValueError("the .npy header declares shape {}, not a shape".format(preview(shape)))
    declared = functools.reduce(operator.mul, shape, 1) * dtype.itemsize  # exact: Python integers
    available = os.fstat(handle.fileno()).st_size - handle.tell()
    if declared != available:
        raise ValueError("the .npy header declares shape {} of {} ({} bytes), but {} bytes follow it".format(
            preview(shape), dtype.name, declared if declared < 10 ** 30 else "more than 10^30", available))
    return NpyHeader(tuple(shape), dtype, fortran_order, handle.tell(), declared)


def open_npy(path: str) -> np.ndarray:
    """A `.npy` file's array, memory-mapped read-only, after checking its header (`read_npy_header`) and that it has
    at least one axis."""
    try:
        with open(path, "rb") as handle:
            header = read_npy_header(handle)
    except (OSError, ValueError) as exc:
        raise InputError("cannot read {} as .npy: {}".format(preview(path), getattr(exc, "strerror", None) or exc)
                         ) from None
    if len(header.shape) == 0:
        raise InputError("{} holds a single value; a dataset has one row per observation".format(preview(path)))
    if header.data_bytes == 0:
        return np.zeros(header.shape, header.dtype)
    return np.memmap(path, dtype=header.dtype, mode="r", offset=header.offset, shape=header.shape,
                     order="F" if header.fortran_order else "C")


def _parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SbifError("Parquet needs pyarrow: pip install 'sbif[parquet]'") from None
    return pq


def dictionary_columns(schema: Any) -> List[str]:
    """The Parquet leaf columns worth dictionary pages: integers and booleans (pixels, discrete actions), whose few
    distinct values a dictionary codes in a byte or less, where Parquet's plain encoding stores even a uint8 in 4
    bytes (an Atari frame: 61 KB a row without, 29 KB with). Floats rarely repeat: building their dictionaries took
    90% of the writing time (500,000 CartPole rows: 0.53 s with them, 0.05 s without)."""
    import pyarrow as pa

    columns = []
    for field in schema:
        path, kind = field.name, field.type
        while pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
            path, kind = path + ".list.element", kind.value_type
        if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
            columns.append(path)
    return columns


class DatasetWriter:
    """Writes a dataset to `out` atomically (module docstring): `write(data, shard)` in row order, then `commit()`;
    `abort()` (or leaving the `with` block by an exception) removes what was written.

    `shard_names`: the input's shard names, for a directory destination (one output shard per input shard).
    `total_rows`: the rows to come, for a `.npy` destination (its header comes first)."""

    def __init__(self, out: str, shard_names: Sequence[str], total_rows: int):
        self.out = out
        self.kind = destination_kind(out)
        self.total_rows = total_rows
        self.shard_names = [os.path.splitext(os.path.basename(name))[0] + ".parquet" for name in shard_names]
        self.rows = 0
        parent = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(parent):
            raise InputError("cannot write {}: no directory {}".format(preview(out), preview(parent)))
        if self.kind == "directory" and os.path.isdir(out) and os.listdir(out):
            raise InputError("{} is a directory that is not empty: choose a new one (or a .parquet or .npy "
                             "file)".format(preview(out)))
        if os.path.isdir(out) and self.kind != "directory":
            raise InputError("{} is a directory".format(preview(out)))
        self.temporary = os.path.join(parent, "." + os.path.basename(os.path.normpath(out)) + TEMPORARY_MARK +
                                      str(os.getpid()))
        self._writer: Any = None  # the open ParquetWriter, or the .npy file handle
        self._writer_shard: Optional[int] = None
        self._npy_type: Optional[tuple] = None
        if self.kind == "directory":
            os.mkdir(self.temporary)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, kind: Any, *rest: Any) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()

    def write(self, data: Any, shard: int = 0) -> None:
        """Append rows: a pyarrow Table or RecordBatch, or a dict of NumPy arrays [rows, ...] (for a `.npy`
        destination, exactly one array)."""
        if self.kind == "npy":
            self._write_npy(data)
        else:
            self._write_parquet(data, shard)

    def _write_parquet(self, data: Any, shard: int) -> None:
        import pyarrow as pa

        if batch_format(data) == "numpy":
            data = pa.RecordBatch.from_arrays([to_arrow(np.asarray(values)) for values in data.values()],
                                              names=list(data))
        if self.kind == "directory" and shard != self._writer_shard:
            self._close_writer()
        if self._writer is None:
            path = (self.temporary if self.kind == "parquet" else
                    os.path.join(self.temporary, self.shard_names[shard]))
            self._writer = _parquet().ParquetWriter(path, data.schema,
                                                    use_dictionary=dictionary_columns(data.schema))
            self._writer_shard = shard
        try:
            self._writer.write(data)
        except (ValueError, TypeError) as exc:  # a schema that changed between batches (pyarrow's ArrowInvalid)
            raise InputError("cannot write {}: {}".format(preview(self.out), exc)) from None
        self.rows += data.num_rows

    def _write_npy(self, data: Any) -> None:
        if batch_format(data) != "numpy" or len(data) != 1:
            raise InputError("a .npy file holds one output; ask for one, or write Parquet (a .parquet file or a "
                             "directory) for several")
        (values,) = [np.ascontiguousarray(value) for value in data.values()]
        if self._writer is None:
            self._npy_type = (values.dtype, values.shape[1:])
            self._writer = open(self.temporary, "wb")
            np.lib.format.write_array_header_2_0(self._writer, {
                "descr": np.lib.format.dtype_to_descr(values.dtype), "fortran_order": False,
                "shape": (self.total_rows,) + values.shape[1:]})
        if (values.dtype, values.shape[1:]) != self._npy_type:
            raise InputError("rows of {} {} cannot follow rows of {} {} in one .npy file".format(
                values.dtype, values.shape[1:], *self._npy_type))
        self._writer.write(values.tobytes())
        self.rows += len(values)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def commit(self) -> None:
        """Finish the files and rename them into place (a `.npy` must have received exactly `total_rows`)."""
        try:
            if self.kind == "npy" and (self._writer is None or self.rows != self.total_rows):
                raise SbifError("{} rows were written where {} were announced".format(self.rows, self.total_rows))
            if self._writer is None and self.kind == "parquet":
                raise SbifError("no rows to write: an empty dataset has no schema to write")
            self._close_writer()
            if self.kind == "directory" and os.path.isdir(self.out):
                os.rmdir(self.out)  # empty (checked at the start): replaced by the finished directory
            os.replace(self.temporary, self.out)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Remove everything written (the destination is untouched)."""
        try:
            self._close_writer()
        except (OSError, ValueError):
            pass  # closing a half-written file can fail too; it is removed below all the same
        if os.path.isdir(self.temporary):
            shutil.rmtree(self.temporary, ignore_errors=True)
        elif os.path.exists(self.temporary):
            os.unlink(self.temporary)

