"""`sbif predict`: run a policy on observations given as JSON or .npy, with a recurrent policy's state and masks,
over a sequence of steps, or on a goal-conditioned (HER) file's dict observation; with --out, over a dataset
(Parquet, .npy, a directory of shards) into another, in this process or on a Ray cluster (`sbif.batch`)."""
from __future__ import annotations

import argparse
import json
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union, cast

import numpy as np

from ..errors import InputError, SbifError, preview
from ..format.strict_json import loads_json_input
from ..progress import Progress
from .common import add_command, table

#: What --obs holds: an array, or for a HER file a dict of arrays (one per key of its dict observation).
Observations = Union[np.ndarray, Dict[str, np.ndarray]]


def add_parser(commands: Any) -> argparse.ArgumentParser:
    predict = add_command(
        commands, "predict", "run a policy on observations", run_predict,
        "  sbif predict model.sbif --obs '[0.1, 0.2, 0.3, 0.4]'\n"
        "  sbif predict model.sbif --obs batch.npy --stochastic --seed 1 -o actions.npy\n"
        "  sbif predict model.sbif --obs '[[0.1, 0.2, 0.3, 0.4]]' --json    (actions; a recurrent policy's state)\n"
        "  sbif predict lstm.sbif --obs episode.npy --steps --mask dones.npy   (episode.npy: [steps, envs, ...])\n"
        "  sbif predict lstm.sbif --obs next.npy --state state.json     (go on from the \"state\" --json printed)\n"
        "  sbif predict her.sbif --obs '{\"observation\": [...], \"achieved_goal\": [...], \"desired_goal\": [...]}'\n"
        "  sbif predict model.sbif --obs logged.parquet --out relabelled.parquet --outputs action,value\n"
        "  sbif predict model.sbif --obs shards/ --out out/ --outputs action_sample --seed 7 --engine ray "
        "--address 127.0.0.1:6379\n"
        "  sbif predict model.sbif --obs /shared/logs/ --out actions/ --engine ray --address 10.0.0.1:6379 "
        "--actors 16\n"
        "  sbif predict lstm.sbif --obs episodes.parquet --out actions.npy --episode-column episode --step-column t")
    predict.add_argument("file")
    predict.add_argument("--obs", required=True,
                         help="observations: a .npy or .json file, or inline JSON (one observation or a batch); for "
                              "a goal-conditioned (HER) file also a JSON object of its dict observation; with --out, "
                              "a dataset: a Parquet or .npy file, or a directory of them")
    predict.add_argument("--state", help="a recurrent policy's state to start from, [envs, S] ([S] for one "
                                         "observation), as --obs (default: zeros, as SB2's initial_state)")
    predict.add_argument("--mask", help="a recurrent policy's episode starts, one per observation (true: the "
                                        "previous step ended that env's episode), as --obs; with --steps one row "
                                        "per step (default: none)")
    predict.add_argument("--steps", action="store_true",
                         help="the observations' first axis is time: run the steps one after another, each "
                              "starting from the state the one before left (a recurrent policy's sequence)")
    mode = predict.add_mutually_exclusive_group()
    mode.add_argument("--deterministic", dest="deterministic", action="store_const", const=True, default=None,
                      help="take the distribution's mode")
    mode.add_argument("--stochastic", dest="deterministic", action="store_const", const=False,
                      help="sample (default: the algorithm's default in the framework it came from)")
    predict.add_argument("--seed", type=int, help="seed for sampling")
    predict.add_argument("--backend", choices=("numpy", "numba", "auto"),
                         help="the runtime's executor (default numpy: one call does not repay numba's start-up; "
                              "with --out auto, numba when installed)")
    predict.add_argument("-o", "--output", help="write the actions to this .npy file instead of printing them")
    predict.add_argument("--json", action="store_true",
                         help="print JSON: the actions (or the -o file) and the state a recurrent policy ends in; "
                              "with --out, a summary of the run")
    dataset = predict.add_argument_group(
        "datasets (--out)", "run over a dataset batch by batch, in bounded memory, and write OUT whole or not at all "
                            "(spec/batch-inference.md)")
    dataset.add_argument("--out", help="write the dataset with the output columns added: a .parquet file, a .npy "
                                       "file (one output alone), or a directory (Parquet shards, one per input shard)")
    dataset.add_argument("--outputs", help="the output columns, comma-separated: action, action_sample (sampled: "
                                           "needs --seed, else one is drawn and reported), value, q_values, "
                                           "probabilities, or any output of the file (default: action)")
    dataset.add_argument("--engine", choices=("local", "ray"), default="local",
                         help="local: this process (default); ray: Ray Data on the cluster at --address")
    dataset.add_argument("--address", help="the Ray cluster's address (default: Ray's own choice, RAY_ADDRESS or a "
                                           "local cluster)")
    dataset.add_argument("--actors", type=int,
                         help="with --engine ray: the actors predicting at once, each loading the policy once "
                              "(default: one per CPU of the cluster, at most one per read task of the dataset)")
    dataset.add_argument("--batch-size", type=int, help="rows per batch (default 16384)")
    dataset.add_argument("--obs-column", action="append", metavar="COLUMN or KEY=COLUMN",
                         help="the observations' column (default obs); for dict observations KEY=COLUMN, once per "
                              "key (default obs/KEY)")
    dataset.add_argument("--id-column", help="row ids, which seed the sampled actions and name rows in errors "
                                             "(default: the column id if present, else the row's index)")
    dataset.add_argument("--episode-column", help="a recurrent policy's episode ids (default episode)")
    dataset.add_argument("--step-column", help="the order of an episode's rows (default step)")
    dataset.add_argument("--output-prefix",
                         help="put before each output column's name (teacher_ gives teacher_action)")
    dataset.add_argument("--outputs-only", action="store_true",
                         help="write the output columns alone, not the dataset's columns beside them")
    return predict


#: options of a single request that a dataset run (--out) does not take, and those only a dataset run takes
REQUEST_OPTIONS = ("state", "mask", "steps", "output")
DATASET_OPTIONS = ("outputs", "address", "actors", "batch_size", "obs_column", "id_column", "episode_column",
                   "step_column", "output_prefix", "outputs_only")


def run_predict(args: argparse.Namespace) -> int:
    from ..runtime import load

    if args.seed is not None and args.seed < 0:
        raise InputError("--seed must be a non-negative integer, got {}".format(preview(args.seed)))
    if args.out is not None:
        return run_dataset_predict(args)
    given = [option for option in DATASET_OPTIONS if getattr(args, option)]
    given += ["engine"] if args.engine != "local" else []
    if given:
        raise InputError("--{} is for datasets: add --out".format(given[0].replace("_", "-")))
    policy = load(args.file, backend=args.backend or "numpy")
    observations = read_observations(args.obs, policy.document.get("observation_dict", {}).get("keys"))
    state = None if args.state is None else read_array(args.state, "--state")
    mask = None if args.mask is None else read_array(args.mask, "--mask")
    if (state is not None or mask is not None) and not policy.recurrent:
        raise InputError("--state and --mask are for recurrent policies; this {} {} is feed-forward".format(
            policy.algorithm, policy.document["provenance"]["policy_class"]))
    rng = None if args.seed is None else np.random.default_rng(args.seed)
    if args.steps:
        actions, state = predict_steps(policy, observations, state, mask, args.deterministic, rng)
    else:
        actions, state = policy.predict(observations, state, mask, deterministic=args.deterministic, rng=rng)
        actions = np.asarray(actions)
    result: Dict[str, Any] = {}
    if args.output:
        try:
            np.save(args.output, actions)
        except OSError as exc:
            raise SbifError("cannot write {}: {}".format(args.output, exc.strerror or exc)) from None
        result.update(actions_file=args.output, dtype=actions.dtype.name, shape=list(actions.shape))
    else:
        result["actions"] = actions.tolist()
    result["state"] = None if state is None else np.asarray(state).tolist()
    if args.json:
        print(json.dumps(result))
        return 0
    if args.output:
        print("wrote {} actions of shape {} to {}".format(actions.dtype, actions.shape, args.output))
    else:
        print("\n".join(render_actions(actions, len(policy.action_space.shape), args.steps)))
    if state is not None:
        print("state after the last step: shape {} (--json prints it; --state takes it back)".format(
            np.shape(state)))
    if args.deterministic is None and not policy.document["predict"]["deterministic_default"]:
        print("sampled, as {}'s predict does for {} by default (--deterministic takes the mode)".format(
            policy.contract.upper(), policy.algorithm))
    return 0


def run_dataset_predict(args: argparse.Namespace) -> int:
    """`sbif predict FILE --obs DATA --out OUT`: the dataset through `sbif.batch`'s local engine or Ray's."""
    import secrets

    from ..batch import DEFAULT_BATCH_SIZE, BatchSpec, run_local

    given = [option for option in REQUEST_OPTIONS if getattr(args, option)]
    if given:
        raise InputError("--{} is for a single request: a dataset run (--out) takes its observations, ids and "
                         "episodes from columns".format(given[0]))
    if args.address is not None and args.engine != "ray":
        raise InputError("--address is the Ray cluster's: add --engine ray")
    if args.actors is not None and args.engine != "ray":
        raise InputError("--actors sizes Ray's actor pool: add --engine ray")
    if args.actors is not None and args.actors < 1:
        raise InputError("--actors must be at least 1, got {}".format(args.actors))
    if args.batch_size is not None and args.batch_size < 1:
        raise InputError("--batch-size must be at least 1, got {}".format(args.batch_size))
    if args.outputs is not None and args.deterministic is not None:
        raise InputError("with --outputs, name the actions you want: action (the mode) or action_sample (sampled)")
    outputs = ["action_sample" if args.deterministic is False else "action"] if args.outputs is None else \
        [name.strip() for name in args.outputs.split(",")]
    if not all(outputs):
        raise InputError("--outputs is a comma-separated list of names, got {}".format(preview(args.outputs)))
    observation_column, key_columns = observation_columns(args.obs_column or [])
    columns = {name: value for name, value in (("observation_column", observation_column),
                                               ("episode_column", args.episode_column),
                                               ("step_column", args.step_column)) if value is not None}
    # without --seed, one is drawn; a sampling run reports it (BatchSummary.seed), so it can be repeated
    seed = secrets.randbits(63) if args.seed is None else args.seed
    spec = BatchSpec(outputs=tuple(outputs), seed=seed, key_columns=key_columns, id_column=args.id_column,
                     output_prefix=args.output_prefix or "", backend=args.backend or "auto", **columns)
    batch_size = args.batch_size or DEFAULT_BATCH_SIZE
    if args.engine == "ray":
        summary = ray_engine().run_dataset(args.file, args.obs, args.out, spec, batch_size=batch_size,
                                           address=args.address, passthrough=not args.outputs_only,
                                           actors=args.actors)
    else:
        summary = run_local(args.file, args.obs, args.out, spec, batch_size=batch_size,
                            passthrough=not args.outputs_only)
    if args.json:
        print(json.dumps(summary.as_json()))
        return 0
    print("wrote {:,} rows ({}) to {} in {:.1f} s ({:,.0f} rows/s, {} engine){}".format(
        summary.rows, ", ".join(summary.outputs), summary.out, summary.seconds, summary.rows_per_second,
        summary.engine, "" if summary.seed is None else "; seed {}".format(summary.seed)))
    return 0


def observation_columns(options: Sequence[str]) -> Tuple[Optional[str], Dict[str, str]]:
    """--obs-column values: the observations' column (one plain name, None if none) and dict keys' columns
    (KEY=COLUMN each)."""
    plain = [option for option in options if "=" not in option]
    if len(plain) > 1:
        raise InputError("--obs-column names one observation column; for dict observations give KEY=COLUMN")
    pairs = [option.split("=", 1) for option in options if "=" in option]
    if any(not key or not column for key, column in pairs):
        raise InputError("--obs-column takes COLUMN or KEY=COLUMN")
    return (plain[0] if plain else None), dict(pairs)


def ray_engine() -> Any:
    """sbif.integrations.ray, or an SbifError saying what to install."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise SbifError("--engine ray needs Ray: pip install 'sbif[ray]' (or use --engine local)")
    try:
        from ..integrations import ray as ray_integration
    except ImportError as exc:
        raise SbifError("--engine ray is not available: {} (pip install 'sbif[ray]')".format(exc)) from None
    return ray_integration


def predict_steps(policy: Any, observations: Observations, state: Optional[np.ndarray], mask: Optional[np.ndarray],
                  deterministic: Optional[bool], rng: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Run `observations` step by step along their first axis (time), each step from the state the previous one
    returned; `mask` has one row per step. The actions of every step, stacked, and the last state."""
    lengths = {key: np.shape(value)[:1] for key, value in observations.items()} if isinstance(observations, dict) \
        else {"observations": np.shape(observations)[:1]}
    if any(length in ((), (0,)) for length in lengths.values()) or len(set(lengths.values())) != 1:
        raise InputError("with --steps the observations' first axis is time, of one length of at least 1 for every "
                         "entry; got {}".format(", ".join("{} {}".format(key, length[0] if length else "none")
                                                          for key, length in sorted(lengths.items()))))
    [(steps,)] = set(lengths.values())
    if mask is not None and (mask.ndim == 0 or len(mask) != steps):
        raise InputError("with --steps, --mask has one row per step ({}), got shape {}".format(steps, mask.shape))
    actions: List[np.ndarray] = []
    with Progress("predicting steps", total=steps) as progress:  # a long sequence can take a while
        for step in range(steps):
            step_observations = ({key: value[step] for key, value in observations.items()}
                                 if isinstance(observations, dict) else observations[step])
            action, state = policy.predict(step_observations, state, None if mask is None else mask[step],
                                           deterministic=deterministic, rng=rng)
            actions.append(np.asarray(action))
            progress.advance()
    return np.stack(actions), state


def render_actions(actions: np.ndarray, action_rank: int, steps: bool) -> List[str]:
    """The actions for a reader: one line for one observation, else a table with a row per observation (per step
    and env with --steps). `action_rank` is the rank of one action (0 for a Discrete action space)."""
    index_names = (["step", "env"] if steps else ["obs"])[:actions.ndim - action_rank]
    if not index_names:
        return ["action: " + action_text(actions)]
    rows = [index_names + ["action"]]
    for index in np.ndindex(*actions.shape[:len(index_names)]):
        rows.append([str(i) for i in index] + [action_text(actions[index])])
    return table(rows)


def action_text(action: np.ndarray) -> str:
    """One action as its shortest exact digits (float32 as float32, not as the longer float64 repr)."""
    values = [str(value) for value in np.asarray(action).reshape(-1)]
    return values[0] if np.ndim(action) == 0 else "[" + ", ".join(values) + "]"


def read_observations(spec: str, dict_keys: Optional[Sequence[str]] = None) -> Observations:
    """--obs: a numeric array (`read_array`), or, for a goal-conditioned (HER) file whose dict observation has
    `dict_keys`, a JSON object mapping those keys to numeric arrays (InputError otherwise)."""
    return _read(spec, "observations", dict_keys)


def read_array(spec: str, what: str) -> np.ndarray:
    """Numbers from a .npy file, a .json file, or inline JSON, as a numeric array (InputError otherwise).

    A .npy header is read first and the file refused before anything is allocated when its declared size is not
    what the file holds (a 192-byte file declaring shape (4e9, 4) would make np.load try 60 GiB) or its dtype is
    not a number (complex, datetime, structured, object, strings: NumPy would convert some silently later).
    JSON is read strictly (loads_json_input) and must make a numeric array. `what` names the input in errors."""
    return cast(np.ndarray, _read(spec, what, None))  # without dict keys, a JSON object is refused


def _read(spec: str, what: str, dict_keys: Optional[Sequence[str]]) -> Observations:
    try:
        if spec.endswith(".npy"):
            return _numeric(read_npy(spec))
        if spec.endswith(".json"):
            with open(spec, "rb") as handle:
                raw = handle.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError("not UTF-8 text (byte {} is {})".format(
                    exc.start, preview(raw[exc.start:exc.start + 1]))) from None
        else:
            text = spec
        value = loads_json_input(text)
        if isinstance(value, dict):
            return _dict_observation(value, dict_keys)
        return _numeric(_json_array(value))
    except OSError as exc:
        raise InputError("cannot read {} from {}: {}".format(what, preview(spec), exc.strerror or exc)) from None
    except ValueError as exc:
        raise InputError("cannot read {} from {}: {}".format(what, preview(spec), exc)) from None


def _dict_observation(value: Dict[str, Any], keys: Optional[Sequence[str]]) -> Dict[str, np.ndarray]:
    """A HER file's dict observation from a JSON object: each known key's numeric array (ValueError otherwise)."""
    if keys is None:
        raise ValueError("a JSON object is a dict observation, which only goal-conditioned (HER) files take; this "
                         "one takes a number or nested lists of numbers")
    unknown = [key for key in value if key not in keys]
    if unknown:
        raise ValueError("the dict observation has no key {} (this file's keys: {})".format(
            preview(unknown[0]), ", ".join(keys)))
    return {key: _numeric(_json_array(entry)) for key, entry in value.items()}


def read_npy(path: str) -> np.ndarray:
    """The array in a .npy file, its header checked before its data is read (`sbif.batch.io.read_npy_header`:
    ValueError for a format version, dtype or size it refuses)."""
    from ..batch.io import read_npy_header

    with open(path, "rb") as handle:
        header = read_npy_header(handle)
        data = handle.read(header.data_bytes)
    if len(data) != header.data_bytes:
        raise ValueError("the .npy file changed while it was read")
    return np.frombuffer(data, dtype=header.dtype).reshape(header.shape, order="F" if header.fortran_order else "C")


def _json_array(value: Any) -> np.ndarray:
    """The numeric array a JSON value denotes: a number, or nested lists of numbers of one shape. Integers beyond
    int64 are read as doubles (JSON numbers); null, strings, objects and ragged lists are refused."""
    if not isinstance(value, (list, int, float)):  # bool is an int: a single flag of a MultiBinary observation
        raise ValueError("expected a number or nested lists of numbers, not a JSON {}".format(
            "object" if isinstance(value, dict) else "string" if isinstance(value, str) else "null"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy 1.x warns before making an object array of ragged lists
        array = np.array(value)
    if array.dtype.kind == "O":  # huge integers, ragged lists, or a null among numbers
        odd = [item for item in array.ravel() if type(item) not in (int, float, bool)][:1]
        if odd:
            raise ValueError("expected nested lists of numbers of one shape, not {}".format(preview(odd[0])))
        array = np.array(value, dtype=np.float64)
    return array


def _numeric(array: np.ndarray) -> np.ndarray:
    """`array` if it holds numbers (JSON strings make a str array; a .npy may hold anything)."""
    from ..batch.tables import check_numeric_dtype

    check_numeric_dtype(array.dtype)
    return array
