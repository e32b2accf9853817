"""One cold start in a fresh process: import the runtime, load the model, take one action, report.

    cold_start.py numpy|numba|onnxruntime|torch MODEL

It runs what a user's script would run, nothing more: `import sbif`, `sbif.load`, `predict` (numba: the same
with `backend="numba"`, its compiled kernels coming from the on-disk cache that the worker warmed,
SBIF_CACHE_DIR); onnxruntime: an InferenceSession on the converted `model.onnx` and one `run`; torch:
`import torch`, `sbif.convert.torch.to_module` and one `run` of the action. The coordinator times the process
from spawn to the first action reported here, and reads its peak memory (VmHWM).
"""
import sys


def first_action_sbif(path: str, obs, backend: str) -> None:
    import sbif

    policy = sbif.load(path, backend=backend)
    if policy.recurrent:
        policy.predict(obs, policy.initial_state, [False], deterministic=True)
    else:
        policy.predict(obs[0], deterministic=True)


def first_action_numpy(path: str, obs) -> None:
    first_action_sbif(path, obs, "numpy")


def first_action_numba(path: str, obs) -> None:
    first_action_sbif(path, obs, "numba")


def first_action_onnxruntime(path: str, obs) -> None:
    import json

    import onnxruntime
    from runtimes import Graph

    session = onnxruntime.InferenceSession(path[:-len(".sbif")] + ".onnx", providers=["CPUExecutionProvider"])
    graph = Graph(json.loads(session.get_modelmeta().custom_metadata_map["sbif"]))  # the converter keeps it
    wanted = {entry.name for entry in session.get_inputs()}
    session.run(graph.fetch, {name: value for name, value in graph.feeds(obs).items() if name in wanted})


def first_action_torch(path: str, obs) -> None:
    import json

    import torch
    from runtimes import Graph
    from sbif.convert.torch import to_module

    module = to_module(path)
    graph = Graph(json.loads(module.document))  # the module keeps the document as JSON text
    inputs = {name: torch.from_numpy(value) for name, value in graph.feeds(obs).items()}
    with torch.inference_mode():
        module.run(inputs, graph.fetch)[graph.action].numpy()


def main() -> int:
    runtime, model = sys.argv[1:3]
    from catalog import model_file
    from harness import observations, report_first_action

    obs = observations(model, 1)
    globals()["first_action_" + runtime](model_file(model, "model.sbif"), obs)
    report_first_action()
    return 0


if __name__ == "__main__":
    sys.exit(main())
