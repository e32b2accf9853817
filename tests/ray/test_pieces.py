"""The pieces `sbif.integrations.ray.SbifDatasource` cuts a dataset into (no cluster needed): every row once, in
order, with its dataset index; and, given a batch size, pieces of whole local-engine batches, so that an actor
mapping a piece in batches from its start forms exactly the batches `sbif.batch.read_batches` forms."""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("ray")

from sbif.batch import dataset_shards, read_batches  # noqa: E402
from sbif.integrations.ray import ROW_COLUMN, SbifDatasource  # noqa: E402


def write_shards(directory: str, kind: str, shard_rows: list, row_group: int) -> str:
    """A directory of shards whose column `value` holds each row's index in the dataset."""
    first = 0
    for index, rows in enumerate(shard_rows):
        values = np.arange(first, first + rows, dtype=np.int64)
        path = os.path.join(directory, "part-{:03d}.{}".format(index, kind))
        if kind == "npy":
            np.save(path, values.reshape(rows, 1))
        else:
            pq.write_table(pa.table({"value": values}), path, row_group_size=row_group)
        first += rows
    return directory


def _rows(data) -> int:
    return data.num_rows if hasattr(data, "num_rows") else len(next(iter(data.values())))


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["parquet", "npy"]), shard_rows=st.lists(st.integers(1, 300), min_size=1, max_size=3),
       row_group=st.integers(1, 120), batch_size=st.one_of(st.none(), st.integers(1, 400)))
def test_pieces_hold_every_row_once_and_whole_batches(kind, shard_rows, row_group, batch_size):
    with tempfile.TemporaryDirectory() as directory:
        path = write_shards(directory, kind, shard_rows, row_group)
        source = SbifDatasource(path, None, batch_size)
        tables = [source.read_piece(index) for index in range(len(source.pieces))]
        indices = np.concatenate([table.column(ROW_COLUMN).to_numpy() for table in tables])
        assert np.array_equal(indices, np.arange(sum(shard_rows)))
        name = "value" if kind == "parquet" else tables[0].column_names[0]
        values = np.concatenate([np.asarray(table.column(name).to_pylist()).reshape(-1) for table in tables])
        assert np.array_equal(values, indices)  # the rows read are the rows the indices name
        if batch_size is not None:
            mapped = [(int(table.column(ROW_COLUMN)[start].as_py()), min(batch_size, table.num_rows - start))
                      for table in tables for start in range(0, table.num_rows, batch_size)]
            assert mapped == [(batch.first_row, _rows(batch.data))
                              for batch in read_batches(dataset_shards(path), batch_size)]


def test_a_piece_is_at_least_a_row_group_and_a_row_group_inside_one_is_read_once(tmp_path):
    """Batches of 16k rows over row groups of 256k: each piece is one row group, read alone."""
    path = str(tmp_path / "data.parquet")
    pq.write_table(pa.table({"value": np.arange(600_000)}), path, row_group_size=262_144)
    pieces = SbifDatasource(path, None, 16_384).pieces
    assert [(piece.start, piece.stop, piece.groups) for piece in pieces] == [
        (0, 262_144, (0,)), (262_144, 524_288, (1,)), (524_288, 600_000, (2,))]
