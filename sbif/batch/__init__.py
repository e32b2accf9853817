"""Batch inference over datasets: a policy over millions of logged observations (spec/batch-inference.md).

The API the engines share (the local engine here, Ray Data in `sbif.integrations.ray`):

    BatchSpec(outputs=("action",), seed=None, observation_column="obs", key_columns={}, id_column=None,
              episode_column="episode", step_column="step", action_mask_column="action_mask", output_prefix="",
              backend="auto")
        what to compute and which columns hold what; frozen, picklable (ship it to workers).
    BatchPredictor(model, spec)            model: a path, the file's bytes, or a Policy; loaded once (mmap)
        .predict(batch, first_row=None) -> batch of the same format with the output columns added
            batch: dict of NumPy arrays | pyarrow Table/RecordBatch | pandas DataFrame; first_row: the dataset
            index of the batch's first row (the row ids when there is no id column; sampled outputs need one)
        .compute(batch, first_row=None) -> {output column: array [rows, *shape]}, in the batch's row order
        .input_columns(available) -> the columns it reads; .check_columns(available, passthrough=True)
        .output_columns, .output_types() -> {column: (dtype, row shape)}, .sampling_outputs(), .recurrent
        (None or the predict.recurrent entry: batches must then hold whole episodes), .call_rows (rows per
        executor call: a batch of any size runs in bounded graph memory)
    run_local(model, data, out, spec, batch_size=DEFAULT_BATCH_SIZE, passthrough=True) -> BatchSummary
    BatchSummary(rows, seconds, outputs, out, engine, batch_size, seed); .as_json(), .rows_per_second
    io: dataset_shards(path) -> [Shard(path, kind, rows)], dataset_columns(shards), read_batches(shards,
        batch_size, columns=None) -> DataBatch(shard, first_row, data), DatasetWriter(out, shard_names,
        total_rows) (.write(data, shard), .commit(), .abort(); a context manager), check_destination(data, out)

`sbif.integrations.ray.run_dataset(model, data, out, spec, batch_size, address, passthrough)` -> BatchSummary is
what `sbif predict --engine ray` calls: the same arguments as `run_local` (keywords from batch_size on), plus the
cluster's address; the summary's seed is the spec's when an output samples (`predictor.sampling_outputs()`), else
None. For its output to equal the local engine's:
- row ids: without an id column a row's id is its index in the dataset, in `dataset_shards` order (shards by name,
  rows in file order): give each batch its `first_row`, or put the index in an id column before repartitioning;
- recurrent policies: every batch holds whole episodes (group by `spec.episode_column`); rows come back in the
  order they went in, so restore the dataset order before writing;
- the executor: noise is a function of (seed, row id) alone, but a float result is bit-identical across batchings
  only if the backend computes each row the same whatever batch it is in: numba does for dense and LSTM graphs,
  the NumPy reference does not (its matmul is BLAS's, whose kernels depend on the batch's shape).
"""
from .io import DataBatch, DatasetWriter, Shard, dataset_columns, dataset_shards, read_batches
from .local import DEFAULT_BATCH_SIZE, BatchSummary, check_destination, run_local
from .predictor import BatchPredictor, BatchSpec, load_policy

__all__ = ["BatchPredictor", "BatchSpec", "BatchSummary", "DEFAULT_BATCH_SIZE", "DataBatch", "DatasetWriter",
           "Shard", "check_destination", "dataset_columns", "dataset_shards", "load_policy", "read_batches",
           "run_local"]
