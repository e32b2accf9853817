"""The PyTorch converter (`sbif.convert.torch`) as a conformance-protocol runtime.

    python -m conformance.adapters.torch_module              # eager modules (to_module)
    python -m conformance.adapters.torch_module --scripted   # their TorchScript build, saved and loaded back

Each requested .sbif file is read by SBIF's reader (so a `load` refuses exactly the files it refuses) and converted
once (cached by path, size and modification time); `run` requests run the module, `op` requests the converter's op
functions. Torch runs on one thread, so that several runtimes can share a machine. Requires PyTorch
(pip install torch==2.13.0).
"""
from __future__ import annotations

import argparse
import io
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..protocol import PythonRuntime, hello_message, serve


class TorchPolicy:
    """A converted file with the `run` interface `PythonRuntime` expects: NumPy arrays in and out."""

    def __init__(self, path: str, scripted: bool):
        import torch

        from sbif.convert.torch import to_module

        module = to_module(path)
        if scripted:
            buffer = io.BytesIO()
            torch.jit.save(torch.jit.script(module), buffer)
            buffer.seek(0)
            module = torch.jit.load(buffer)
        self.module = module

    def run(self, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> Dict[str, np.ndarray]:
        import torch

        feeds = {name: torch.from_numpy(np.array(value, order="C")) for name, value in inputs.items()}
        with torch.no_grad():
            results = self.module.run(feeds, list(outputs))
        return {name: value.numpy() for name, value in results.items()}


class TorchOp:
    """One op through the converter's functions, with the `attributes`/`compute` interface of `sbif.ops`."""

    def __init__(self, name: str, scripted: bool):
        from sbif.convert.torch import OPS
        from sbif.errors import UnsupportedError
        from sbif.ops import get_op

        if name not in OPS:
            raise UnsupportedError("op {!r} is not implemented by the PyTorch converter".format(name))
        self.name = name
        self.attributes = get_op(name).attributes
        self.scripted = scripted

    def compute(self, *inputs: np.ndarray, **attrs: Any) -> List[np.ndarray]:
        import torch

        from sbif.convert.torch import run_op

        tensors = [torch.from_numpy(np.array(value, order="C")) for value in inputs]
        with torch.no_grad():
            return [value.numpy() for value in run_op(self.name, tensors, attrs, scripted=self.scripted)]


class TorchRuntime(PythonRuntime):
    """The protocol over `sbif.convert.torch`: features run, op, recurrent, sampling and load (no `predict`: the
    converted module is the graph, SB2's predict conventions stay with the caller)."""

    def __init__(self, scripted: bool = False):
        import sbif
        from sbif.convert.torch import OPS  # first: UnsupportedError naming the pip package if torch is missing

        import torch

        torch.set_num_threads(1)
        features = ("run", "op", "recurrent", "sampling", "load")
        super().__init__(load=lambda path: TorchPolicy(path, scripted), get_op=lambda name: TorchOp(name, scripted),
                         features=features, ops=OPS)
        name = "sbif-torchscript" if scripted else "sbif-torch"
        self.hello = hello_message(name, sbif.__version__, "python {}.{} + torch {}".format(
            sys.version_info[0], sys.version_info[1], torch.__version__), features, OPS)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.adapters.torch_module", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scripted", action="store_true",
                        help="run the TorchScript build of each module (scripted, saved and loaded back)")
    args = parser.parse_args(argv)
    from sbif.errors import SbifError

    try:
        runtime = TorchRuntime(scripted=args.scripted)
    except SbifError as exc:  # PyTorch missing: say so on stderr, where the harness reports it
        print("torch_module: {}".format(exc), file=sys.stderr)
        return 1
    return serve(runtime, sys.stdin, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
