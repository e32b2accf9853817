"""The modern environment's runtimes as benchmark workers: SBIF on NumPy, SBIF on numba, onnxruntime and torch;
and SBIF's C runtime, whose worker drives the benchmark's C program (c_runtime.py).

    runtimes.py serve RUNTIME     a worker (harness protocol) for numpy | numba | onnxruntime | torch | c
    runtimes.py peak              this machine's single-core float32 GEMM rate (run with OPENBLAS_NUM_THREADS=1)

Each runtime is timed through its own public call on a NumPy observation: SBIF `policy.predict(obs,
deterministic=True)`; onnxruntime `session.run` on the model `sbif.convert.onnx.to_onnx` makes (one intra-op
thread for single observations, the defaults for batches); torch `module.run(inputs, outputs)` on the module
`sbif.convert.torch.to_module` makes, under `torch.inference_mode()` (one thread for single observations, the
default for batches), tensors in and out included. Recurrent models carry their state from call to call. A
runtime that cannot run a model here (an extra not installed, an op it lacks) answers "n/a" with the reason.
"""
from __future__ import annotations

import abc
import functools
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from c_runtime import CRuntime
from catalog import model_file
from harness import Unavailable, agreement, observations, serve, time_batch, time_single

#: values fed to noise inputs: only sampled outputs read them, and the benchmark asks for deterministic ones
NOISE_FILL = {"uniform": 0.5, "normal": 0.0}


def reference(model: str) -> Dict[str, np.ndarray]:
    return dict(np.load(model_file(model, "reference.npz")))


def read_document(model: str) -> dict:
    from sbif.format import SbifFile

    return SbifFile.read(model_file(model, "model.sbif")).document


class Graph:
    """What a peer needs to know of a model's graph: which outputs a deterministic predict reads, and every
    graph input it must be fed (onnxruntime wants them all, noise included)."""

    def __init__(self, document: dict):
        predict = document["predict"]
        self.inputs = document["inputs"]
        self.action = predict["deterministic_action"]
        recurrent = predict.get("recurrent")
        self.state_input = recurrent["state_input"] if recurrent else None
        self.mask_input = recurrent["mask_input"] if recurrent else None
        self.state_output = recurrent["state_output"] if recurrent else None
        self.fetch = [self.action] + ([self.state_output] if recurrent else [])

    def feeds(self, obs: np.ndarray) -> Dict[str, np.ndarray]:
        """Every graph input for this batch: obs, a zero state and no reset, constant noise."""
        batch = len(obs)
        feeds = {}
        for entry in self.inputs:
            shape = [batch if dim is None else dim for dim in entry["shape"]]
            if entry["kind"] == "observation":
                feeds[entry["name"]] = np.ascontiguousarray(obs, dtype=entry["dtype"])
            elif entry["kind"] == "noise":
                feeds[entry["name"]] = np.full(shape, NOISE_FILL[entry["distribution"]], entry["dtype"])
            else:
                feeds[entry["name"]] = np.zeros(shape, entry["dtype"])
        return feeds


class Loaded:
    """A model as one runtime holds it: its engine (policy, sessions, module) and its graph's interface."""

    def __init__(self, engine: Any, graph: Graph):
        self.engine, self.graph = engine, graph


class Runtime(abc.ABC):
    """A worker's runtime: loads models once, checks them against SB2, times them."""

    def __init__(self):
        self.loaded: Dict[str, Loaded] = {}

    @abc.abstractmethod
    def load(self, model: str) -> dict:
        """Prepare `model` (or raise Unavailable); returns what to record about the runtime."""

    @abc.abstractmethod
    def step(self, model: str, obs: np.ndarray, threads: str) -> Callable[[], Any]:
        """A zero-argument call running one public prediction on `obs` (a recurrent model carries its state);
        `threads` is "single" (one thread where the runtime lets us choose) or "batch" (its defaults)."""

    @abc.abstractmethod
    def outputs(self, model: str, feeds: Dict[str, np.ndarray], names: List[str]) -> Dict[str, np.ndarray]:
        """Named graph outputs for raw graph inputs (the agreement check's view of the runtime)."""

    def check(self, model: str) -> dict:
        """Agreement with SB2's recorded outputs: the reference batch at once, or the recurrent rollout step by
        step with SB2's resets, the state carried by the runtime itself."""
        expected = reference(model)
        graph = self.loaded[model].graph
        scores = [name for name in ("logits", "q_values") if name in expected]
        if graph.state_input is None:
            found = self.outputs(model, graph.feeds(expected["obs"]), graph.fetch + scores)
            return agreement(model, expected, dict(found, action=self.actions(model, expected["obs"])))
        names = dict({"action": graph.action, "state": graph.state_output}, **{score: score for score in scores})
        steps: Dict[str, list] = {key: [] for key in names}
        state = None
        for obs, mask in zip(expected["obs"], expected["mask"]):
            feeds = graph.feeds(obs[None])
            if state is not None:
                feeds[graph.state_input] = state
            feeds[graph.mask_input] = np.array([mask], np.float32)
            found = self.outputs(model, feeds, graph.fetch + scores)
            state = found[graph.state_output]
            for key, name in names.items():
                steps[key].append(found[name][0])
        return agreement(model, expected, {key: np.stack(values) for key, values in steps.items()})

    def actions(self, model: str, obs: np.ndarray) -> np.ndarray:
        """Deterministic actions for a batch through the runtime's public call."""
        graph = self.loaded[model].graph
        return self.outputs(model, graph.feeds(obs), [graph.action])[graph.action]

    def single(self, model: str, calls: int, warmup: int) -> list:
        return time_single(self.step(model, observations(model, 1), "single"), calls, warmup)

    def batch(self, model: str, size: int, budget: float, min_calls: int) -> list:
        return time_batch(self.step(model, observations(model, size), "batch"), budget, min_calls)


# -- SBIF --------------------------------------------------------------------------------------------------------------
class SbifRuntime(Runtime):
    """SBIF's own runtime on one backend, through `sbif.load(path, backend=...)` and `Policy.predict`."""

    def __init__(self, backend: str):
        super().__init__()
        self.backend = backend

    def load(self, model: str) -> dict:
        import sbif

        path = model_file(model, "model.sbif")
        try:
            policy = sbif.load(path, backend=self.backend)
        except sbif.UnsupportedError as exc:
            raise Unavailable(str(exc)) from None
        self.loaded[model] = Loaded(policy, Graph(policy.document))
        return {"backend": policy.backend, "versions": self.versions()}

    def versions(self) -> str:
        import sbif

        text = "sbif {}, numpy {}".format(sbif.__version__, np.__version__)
        if self.backend == "numba":
            import numba

            text += ", numba {}".format(numba.__version__)
        return text

    def outputs(self, model, feeds, names):
        return self.loaded[model].engine.run(feeds, names)

    def actions(self, model, obs):
        return self.loaded[model].engine.predict(obs, deterministic=True)[0]

    def step(self, model, obs, threads):
        policy = self.loaded[model].engine
        if policy.recurrent is None:
            single = obs[0]
            if threads == "single":
                return lambda: policy.predict(single, deterministic=True)
            return lambda: policy.predict(obs, deterministic=True)
        carried = {"state": policy.initial_state_for(len(obs)), "mask": np.zeros(len(obs), bool)}

        def recurrent_step():
            actions, carried["state"] = policy.predict(obs, carried["state"], carried["mask"], deterministic=True)
            return actions

        return recurrent_step

    def kernel(self, model: str, calls: int, warmup: int) -> list:
        """The compiled code alone on one observation (asked of the numba backend): for feed-forward policies the
        single-observation path's one call (`NumbaExecutor.single_row(...).kernel`), else `executor.run(feeds,
        [action])` with the graph inputs prepared once, i.e. `predict` without its input handling."""
        loaded = self.loaded[model]
        executor, graph = loaded.engine.executor, loaded.graph
        single = executor.single_row(graph.action) if loaded.engine.recurrent is None else None
        if single is not None:
            return time_single(single.kernel(observations(model, 1)[0]), calls, warmup)
        feeds, fetch = graph.feeds(observations(model, 1)), [graph.action]
        return time_single(lambda: executor.run(feeds, fetch), calls, warmup)


    def weight_read(self, model: str, calls: int, warmup: int) -> dict:
        """The memory floor of the single-observation kernel: the time to read, once, as many bytes as the
        weights its program reads (one contiguous float32 array summed by a vectorised numba loop), timed as the
        kernel is. A one-observation pass over weights that no longer fit the L2 cache is bound by this, not by
        FLOPs."""
        loaded = self.loaded[model]
        executor, graph = loaded.engine.executor, loaded.graph
        if loaded.engine.recurrent is not None or executor.single_row(graph.action) is None:
            raise Unavailable("no single-observation kernel")
        size = program_weight_bytes(executor, graph.action)
        weights = np.ones(size // 4, np.float32)
        total = vectorised_sum()
        total(weights)
        return {"bytes": size, "us": time_single(lambda: total(weights), calls, warmup)}


@functools.lru_cache(maxsize=None)
def vectorised_sum() -> Callable[[np.ndarray], float]:
    """sum(array) for float32 arrays, compiled by numba (once per process) with partial sums in vector lanes."""
    from numba import njit

    @njit(fastmath={"reassoc"})
    def total(array: np.ndarray) -> float:
        result = np.float32(0)
        for i in range(array.size):
            result += array[i]
        return result

    return total


def program_weight_bytes(executor: Any, output: str) -> int:
    """Bytes of the weights the program computing `output` reads (each weight once)."""
    lowered = executor.lowered
    runner = executor._runner((output,))
    seen = {}
    for index in runner.needed:
        for instruction in lowered.steps[index].instructions:
            for view in instruction.operands:
                storage = view.value.storage()
                if storage.kind == "weight":
                    seen[id(storage)] = storage.row_size * storage.itemsize
    return sum(seen.values())


# -- onnxruntime -------------------------------------------------------------------------------------------------------
class OnnxRuntime(Runtime):
    """The ONNX model SBIF's converter writes, in two onnxruntime sessions: one intra-op thread, and defaults."""

    def load(self, model: str) -> dict:
        try:
            import onnxruntime
            from sbif.convert.onnx import to_onnx
        except ImportError as exc:
            raise Unavailable("{} (the ONNX converter or onnxruntime is not installed)".format(exc)) from None
        import sbif

        try:
            proto = to_onnx(model_file(model, "model.sbif"))
        except sbif.UnsupportedError as exc:
            raise Unavailable(str(exc)) from None
        graph = Graph(read_document(model))
        timed = pruned_to(proto, graph.fetch).SerializeToString()
        with open(model_file(model, "model.onnx"), "wb") as handle:  # what the cold start loads
            handle.write(timed)
        one_thread = onnxruntime.SessionOptions()
        one_thread.intra_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        sessions = {"whole": onnxruntime.InferenceSession(proto.SerializeToString(), one_thread, providers=providers),
                    "single": onnxruntime.InferenceSession(timed, one_thread, providers=providers),
                    "batch": onnxruntime.InferenceSession(timed, providers=providers)}
        self.loaded[model] = Loaded(sessions, graph)
        return {"versions": "onnxruntime {}, opset {}".format(
            onnxruntime.__version__, max(op.version for op in proto.opset_import))}

    def outputs(self, model, feeds, names):
        return dict(zip(names, self.loaded[model].engine["whole"].run(names, feeds)))

    def batch_one_thread(self, model: str, size: int, budget: float, min_calls: int) -> list:
        """As `batch`, in the one-thread session: one core's worth, beside the C runtime's one thread."""
        return time_batch(self.step(model, observations(model, size), "single"), budget, min_calls)

    def step(self, model, obs, threads):
        loaded = self.loaded[model]
        session, graph = loaded.engine[threads], loaded.graph
        wanted = {entry.name for entry in session.get_inputs()}
        feeds = {name: value for name, value in graph.feeds(obs).items() if name in wanted}
        fetch = graph.fetch
        if graph.state_input is None:
            return lambda: session.run(fetch, feeds)

        def recurrent_step():
            actions, feeds[graph.state_input] = session.run(fetch, feeds)
            return actions

        return recurrent_step


def pruned_to(proto: Any, outputs: List[str]) -> Any:
    """The converter's model cut down to `outputs` and the graph inputs they read, as a user who wants only actions
    would run it: onnxruntime runs every node of a graph, whatever is fetched (the full PPO2 graph costs 2.3x the
    action's alone here). The document stays in the metadata, where the cold start reads it."""
    from onnx.utils import Extractor

    producers = {name: node for node in proto.graph.node for name in node.output}
    graph_inputs = [entry.name for entry in proto.graph.input]
    pending, seen = list(outputs), set()
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(source for source in getattr(producers.get(name), "input", ()) if source)
    pruned = Extractor(proto).extract_model([name for name in graph_inputs if name in seen], list(outputs))
    pruned.metadata_props.extend(proto.metadata_props)
    return pruned


# -- torch -------------------------------------------------------------------------------------------------------------
class TorchRuntime(Runtime):
    """The torch module SBIF's converter builds, asked (like the other runtimes) for what a deterministic predict
    needs: `module.run(inputs, outputs)`, since `forward` also computes the value head and the samples. Inputs are
    NumPy arrays wrapped with `torch.from_numpy`."""

    def __init__(self):
        super().__init__()
        self.default_threads: Optional[int] = None

    def load(self, model: str) -> dict:
        try:
            import torch
            from sbif.convert.torch import to_module
        except ImportError as exc:
            raise Unavailable("{} (the torch converter or torch is not installed)".format(exc)) from None
        import sbif

        if self.default_threads is None:
            self.default_threads = torch.get_num_threads()
        try:
            module = to_module(model_file(model, "model.sbif"))
        except sbif.UnsupportedError as exc:
            raise Unavailable(str(exc)) from None
        self.loaded[model] = Loaded(module.eval(), Graph(read_document(model)))
        return {"versions": "torch {}, {} threads by default".format(torch.__version__, self.default_threads)}

    def outputs(self, model, feeds, names):
        import torch

        with torch.inference_mode():
            found = self.loaded[model].engine.run({name: torch.from_numpy(value) for name, value in feeds.items()},
                                                  names)
        return {name: found[name].numpy() for name in names}

    def step(self, model, obs, threads):
        import torch

        torch.set_num_threads(1 if threads == "single" else self.default_threads)
        loaded = self.loaded[model]
        module, graph = loaded.engine, loaded.graph
        feeds, fetch = graph.feeds(obs), graph.fetch
        action, state_input, state_output = graph.action, graph.state_input, graph.state_output

        def call():
            with torch.inference_mode():
                found = module.run({name: torch.from_numpy(value) for name, value in feeds.items()}, fetch)
                if state_input is not None:
                    feeds[state_input] = found[state_output].numpy()
                return found[action].numpy()

        return call


RUNTIMES: Dict[str, Callable[[], Any]] = {
    "numpy": lambda: SbifRuntime("numpy"),
    "numba": lambda: SbifRuntime("numba"),
    "onnxruntime": OnnxRuntime,
    "torch": TorchRuntime,
    "c": CRuntime,
}


def peak_gflops(size: int = 2048, repeats: int = 9) -> float:
    """The float32 GEMM rate of `np.matmul` on size×size matrices (median of `repeats`): with one BLAS thread,
    the FLOP-bound limit a single-threaded kernel is held against."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, size, size), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - started)
    return 2.0 * size ** 3 / float(np.median(times)) / 1e9


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "serve" and sys.argv[2] in RUNTIMES:
        serve(RUNTIMES[sys.argv[2]]())
    elif sys.argv[1:] == ["peak"]:
        print(peak_gflops())
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
