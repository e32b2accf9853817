"""Batches of a dataset as NumPy columns, and back: a dict of NumPy arrays, a pyarrow Table or RecordBatch, or a
pandas DataFrame (the three batch formats of Ray Data's `map_batches`), read without copying where the layout allows.

A tensor column (one observation per row) is, in Arrow, a fixed-size list (nested for more than one axis), a list
of equal-length lists, or a fixed-shape tensor extension (pyarrow's, or Ray's); in NumPy an array [rows, *shape];
in pandas an array-valued column. pyarrow and pandas are imported only when a batch of theirs comes in (the core
needs neither).
"""
from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import InputError, preview

#: NumPy dtype kinds an observation can be made of (booleans for MultiBinary, integers, floats), and what the others
#: are, for the refusal
NUMERIC_KINDS = "biuf"
NON_NUMERIC_KINDS = {"c": "complex (the imaginary part would be dropped)", "m": "timedelta", "M": "datetime",
                     "O": "Python objects", "S": "byte strings", "U": "strings", "V": "structured or raw records"}


def check_numeric_dtype(dtype: np.dtype) -> None:
    """ValueError unless `dtype` holds numbers an observation can be made of (not complex, dates, objects, strings,
    records or subarrays: NumPy would convert some of them silently later)."""
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        kind = "subarrays" if dtype.subdtype is not None else NON_NUMERIC_KINDS.get(dtype.kind, dtype.kind)
        raise ValueError("expected numbers, not {} (dtype {})".format(kind, preview(dtype.str)))


class RowLabels:
    """How an error names a row of a batch: by its index in the dataset when that is known, and by its id when the
    data has an id column (`ids`: that column's values). `rows`: None (unknown), the index of the batch's first row
    (its rows are consecutive in the dataset), or each row's index (a batch of rows regrouped, as Ray's batches of
    whole episodes are)."""

    def __init__(self, rows: Union[None, int, np.ndarray], ids: Optional[np.ndarray]):
        self.rows = rows
        self.ids = ids

    def index(self, position: int) -> Optional[int]:
        """The dataset index of the batch's row at `position`, None when unknown."""
        if self.rows is None:
            return None
        if isinstance(self.rows, np.ndarray):
            return int(self.rows[position])
        return self.rows + position

    def order(self, count: int) -> np.ndarray:
        """The batch's `count` rows' dataset order: their indices, or their positions when the batch's rows are
        consecutive or their indices unknown."""
        if isinstance(self.rows, np.ndarray):
            return self.rows
        return np.arange(count)

    def __call__(self, position: int) -> str:
        index = self.index(position)
        parts = [] if index is None else ["row {}".format(index)]
        if self.ids is not None:
            parts.append("id {}".format(preview(self.ids[position].item())))
        if not parts:
            return "row {} of its batch".format(position)
        return parts[0] if len(parts) == 1 else "{} ({})".format(*parts)


def batch_format(batch: Any) -> str:
    """'numpy' (a mapping of column name to array), 'arrow' (a pyarrow Table or RecordBatch) or 'pandas'."""
    if isinstance(batch, Mapping):
        return "numpy"
    module = type(batch).__module__.split(".")[0]
    if module == "pyarrow" and hasattr(batch, "schema"):
        return "arrow"
    if module == "pandas" and hasattr(batch, "columns"):
        return "pandas"
    raise InputError("a batch is a dict of NumPy arrays, a pyarrow Table or RecordBatch, or a pandas DataFrame; got "
                     "{}".format(type(batch).__name__))


def column_names(batch: Any) -> List[str]:
    kind = batch_format(batch)
    if kind == "numpy":
        return [str(name) for name in batch]
    if kind == "arrow":
        return list(batch.schema.names)
    return [str(name) for name in batch.columns]


def row_count(batch: Any) -> int:
    kind = batch_format(batch)
    if kind == "numpy":
        return len(next(iter(batch.values()))) if batch else 0
    return batch.num_rows if kind == "arrow" else len(batch)


def column_array(batch: Any, name: str, labels: RowLabels) -> np.ndarray:
    """Column `name` as an array [rows, *row shape]: every row must hold numbers of one shape (nested lists of
    equal lengths, no nulls). An InputError names the column and the first row that breaks this."""
    kind = batch_format(batch)
    if kind == "numpy":
        values = np.asarray(batch[name])
    elif kind == "arrow":
        values = _arrow_column(batch.column(name), name, labels)
    else:
        values = _pandas_column(batch[name], name, labels)
    if values.dtype == object:
        values = _stack_rows(list(values), name, labels)
    if values.ndim == 0:
        raise InputError("column {!r} is a single value, not a column of rows".format(name))
    if values.dtype.kind not in NUMERIC_KINDS:
        raise InputError("column {!r} holds {} values, not numbers ({})".format(name, values.dtype, labels(0)))
    return values


def _stack_rows(rows: List[Any], name: str, labels: RowLabels) -> np.ndarray:
    """Rows given one by one (an object column: lists, arrays, None) as one array; the first row whose shape
    differs from row 0's, or that is missing or not numeric, is named."""
    arrays = []
    for index, row in enumerate(rows):
        if row is None:
            raise InputError("column {!r} has no value at {}".format(name, labels(index)))
        array = np.asarray(row)
        if array.dtype.kind not in NUMERIC_KINDS:
            raise InputError("column {!r} holds {} at {}, not numbers".format(
                name, "missing values" if array.dtype == object else array.dtype, labels(index)))
        if arrays and array.shape != arrays[0].shape:
            raise InputError("column {!r} has shape {} at {} where earlier rows have {}".format(
                name, array.shape, labels(index), arrays[0].shape))
        arrays.append(array)
    if not arrays:
        return np.zeros((0,), np.float32)
    return np.stack(arrays)


def _arrow_column(column: Any, name: str, labels: RowLabels) -> np.ndarray:
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    rows = len(column)
    if isinstance(column.type, pa.BaseExtensionType):
        _check_no_nulls(column, name, labels)
        to_ndarray = getattr(column, "to_numpy_ndarray", None)  # pyarrow's fixed_shape_tensor
        if to_ndarray is not None:
            return np.asarray(to_ndarray())
        try:  # Ray's tensor extension arrays give their ndarray through to_numpy
            return np.asarray(column.to_numpy(zero_copy_only=False))
        except (TypeError, ValueError, pa.ArrowException) as exc:
            raise InputError("column {!r} of type {} cannot be read as a tensor: {}".format(
                name, column.type, exc)) from None
    shape: List[int] = []
    levels: List[Any] = []  # per list depth: its fixed size, or its lists' offsets (to find a value's row)
    values = column
    while pa.types.is_list(values.type) or pa.types.is_large_list(values.type) \
            or pa.types.is_fixed_size_list(values.type):
        _check_no_nulls(values, name, labels, levels)
        if pa.types.is_fixed_size_list(values.type):
            length = values.type.list_size
            levels.append(length)
        else:
            lengths = _arrow_values(values.value_lengths())
            length = int(lengths[0]) if len(lengths) else 0
            bad = np.flatnonzero(lengths != length)
            if bad.size:
                first = _row_of(levels, int(bad[0]))
                count = int(lengths[bad[0]])
                raise InputError("column {!r} has rows of different lengths: {} holds {} value{} where the first "
                                 "row holds {}".format(name, labels(first), count, "" if count == 1 else "s", length))
            offsets = _arrow_values(values.offsets)
            levels.append(offsets - offsets[0])
        shape.append(length)
        values = values.flatten()
    _check_no_nulls(values, name, labels, levels)
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
            or pa.types.is_boolean(values.type)):
        raise InputError("column {!r} holds {} values, not numbers ({})".format(name, values.type, labels(0)))
    return _arrow_values(values).reshape([rows] + shape)


def _row_of(levels: List[Any], index: int) -> int:
    """The row holding value `index` of the depth below `levels` (outermost first: a fixed list size, or offsets)."""
    for level in reversed(levels):
        index = index // level if isinstance(level, int) else int(np.searchsorted(level, index, side="right")) - 1
    return index


def _arrow_values(values: Any) -> np.ndarray:
    """A primitive Arrow array without nulls as NumPy: a view of its data buffer (booleans, stored as bits,
    unpacked). Read from the buffers directly: Arrow's own conversions import pandas (0.3 s) on first use."""
    import pyarrow as pa

    if pa.types.is_boolean(values.type):
        bits = np.unpackbits(np.frombuffer(values.buffers()[1], np.uint8), bitorder="little")
        return bits[values.offset:values.offset + len(values)].astype(np.bool_)
    dtype = np.dtype(values.type.to_pandas_dtype())
    return np.frombuffer(values.buffers()[1], dtype, count=len(values), offset=values.offset * dtype.itemsize)


def _check_no_nulls(values: Any, name: str, labels: RowLabels, levels: Sequence[Any] = ()) -> None:
    """Refuse nulls among `values` (at the depth below `levels`), naming the first row that has one."""
    if values.null_count:
        missing = np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))
        raise InputError("column {!r} has a missing value (null) at {}".format(
            name, labels(_row_of(list(levels), int(missing[0])))))


def _pandas_column(series: Any, name: str, labels: RowLabels) -> np.ndarray:
    """A pandas column's values: numbers, or (object dtype) one array or list per row, stacked by the caller."""
    try:
        return np.asarray(series.to_numpy())
    except (TypeError, ValueError) as exc:  # an extension dtype with missing values, for one
        raise InputError("column {!r} cannot be read as numbers: {}".format(name, exc)) from None


def with_columns(batch: Any, columns: Mapping[str, np.ndarray]) -> Any:
    """`batch` with `columns` (arrays [rows, ...]) appended, in the batch's own format: NumPy arrays as they are,
    Arrow fixed-size lists (nested for more than one axis per row), pandas array-valued columns."""
    kind = batch_format(batch)
    if kind == "numpy":
        merged = dict(batch)
        merged.update(columns)
        return merged
    if kind == "arrow":
        import pyarrow as pa

        arrays = [to_arrow(values) for values in columns.values()]
        if isinstance(batch, pa.RecordBatch):
            return pa.RecordBatch.from_arrays(list(batch.columns) + arrays,
                                              names=list(batch.schema.names) + list(columns))
        for name, array in zip(columns, arrays):
            batch = batch.append_column(name, array)
        return batch
    return batch.assign(**{name: (values if values.ndim == 1 else list(values)) for name, values in columns.items()})


def to_arrow(values: np.ndarray) -> Any:
    """An array [rows, *shape] as an Arrow column: primitive for one value per row, else fixed-size lists nested
    once per axis (the layout every Parquet reader understands, unlike tensor extension types). The data buffer is
    the array's own (booleans packed to bits), built without Arrow's pandas-importing conversion."""
    import pyarrow as pa

    flat = np.ascontiguousarray(values).reshape(-1)
    if flat.dtype == np.bool_:
        data = pa.py_buffer(np.packbits(flat, bitorder="little"))
    else:
        data = pa.py_buffer(flat)
    array = pa.Array.from_buffers(pa.from_numpy_dtype(flat.dtype), len(flat), [None, data])
    for size in reversed(values.shape[1:]):
        array = pa.FixedSizeListArray.from_arrays(array, size)
    return array
