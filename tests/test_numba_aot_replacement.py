"""The pycc-free build of the numba backend's entry points (sbif/runtime/numba/aot_cfunc.py, PYCC.md) against the
pycc module (aot.py): the same programs give the same bytes through all three entry points, wrong arrays are refused
alike, and the C support code's reshape agrees with NumPy's."""
from __future__ import annotations

import ctypes
import warnings
from typing import Any, Callable, Dict, List

import numpy as np
import pytest

pytest.importorskip("numba")

import sbif  # noqa: E402
from conformance.models import EXAMPLES, family_status, write_model  # noqa: E402
from sbif.runtime.numba import aot, aot_cfunc, backend, program  # noqa: E402

# Building the cfunc module takes one to two minutes the first time (it is kept in the kernel cache afterwards).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def both_builds() -> Dict[str, backend.Kernels]:
    """The entry points from the pycc module and from the cfunc module, both built for this machine."""
    pycc = aot.load() or (aot.build() and aot.load())
    cfunc = aot_cfunc.load() or (aot_cfunc.build() and aot_cfunc.load())
    kernels = {"pycc": backend.Kernels(*(getattr(pycc, name) for name in backend.Kernels._fields[:-1]),
                                       pycc.__file__), "cfunc": cfunc}
    return kernels


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Dict[str, str]:
    directory = str(tmp_path_factory.mktemp("cfunc-models"))
    status = family_status()
    return {family: write_model(spec, directory) for family, spec in EXAMPLES.items() if status[family] is None}


class CountedKernels:
    """Kernels whose entry points count their calls (so that the test knows all three ran)."""

    def __init__(self, kernels: backend.Kernels):
        self.calls: Dict[str, int] = {"execute": 0, "execute_one": 0, "im2col": 0}
        self.kernels = kernels._replace(**{name: self._counted(name, getattr(kernels, name)) for name in self.calls})

    def _counted(self, name: str, function: Callable[..., None]) -> Callable[..., None]:
        def call(*arguments: Any) -> None:
            self.calls[name] += 1
            function(*arguments)
        return call


def _answers(models: Dict[str, str], monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    """Every family's predict (deterministic), value and action_probability: on one observation (the single-
    observation path: `execute_one`), and on 40 with the default thresholds (the CNNs' convolutions, without
    padding, in the interpreter) and again with the batch path's BLAS stages forced and the convolutions lowered as a
    padded one is (so that the CNNs' patches go through `im2col`)."""
    rng = np.random.default_rng(3)
    answers = []
    for forced in (False, True):
        with monkeypatch.context() as patch:
            if forced:
                patch.setattr(backend, "BLAS_MIN_MACS", 0)
                patch.setattr(backend, "BLAS_MIN_WEIGHTS", 0)
                patch.setattr(program, "unpadded", lambda *arguments: False)
            for family in sorted(models):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    policy = sbif.load(models[family], backend="numba")
                one = policy.observation_space.sample(rng)
                many = np.stack([policy.observation_space.sample(rng) for _ in range(40)])
                for observation in ([many] if forced else [one, many]):
                    answers.append((family, forced, np.shape(observation),
                                    policy.predict(observation, deterministic=True)[0],
                                    _answer(policy.value, observation),
                                    _answer(policy.action_probability, observation)))
    return answers


def _answer(method: Callable[[np.ndarray], Any], observation: np.ndarray) -> Any:
    """`method(observation)`, or the refusal of a file without its output (DDPG has no value): the same message
    from either build."""
    try:
        return method(observation)
    except sbif.InputError as refusal:
        return str(refusal)


def test_the_cfunc_module_computes_the_pycc_modules_bytes(both_builds, models, monkeypatch):
    """All families through both builds: every result identical, bit for bit (NaN where NaN), and each of the
    three entry points called."""
    results = {}
    for build, kernels in both_builds.items():
        counted = CountedKernels(kernels)
        monkeypatch.setattr(backend, "_kernels", [counted.kernels])
        results[build] = _answers(models, monkeypatch)
        assert all(counted.calls.values()), (build, counted.calls)
    for pycc, cfunc in zip(results["pycc"], results["cfunc"]):
        assert pycc[:3] == cfunc[:3]
        for expected, found in zip(pycc[3:], cfunc[3:]):
            if isinstance(expected, str):
                assert expected == found, pycc[:3]
                continue
            expected, found = np.asarray(expected), np.asarray(found)
            assert expected.dtype == found.dtype and expected.shape == found.shape, pycc[:3]
            assert expected.tobytes() == found.tobytes(), pycc[:3]


@pytest.mark.parametrize("call", [
    lambda kernels, arena: kernels.execute_one(np.zeros(0, np.float64), arena, arena),
    lambda kernels, arena: kernels.execute_one(np.zeros(0, np.int64), arena[::2], arena),
    lambda kernels, arena: kernels.execute_one(np.zeros(0, np.int64), np.frombuffer(bytes(8), np.uint8), arena),
    lambda kernels, arena: kernels.im2col(np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 2, 1), np.float32), 1, 1, 1, 1, 0, 0),
    lambda kernels, arena: kernels.im2col(np.zeros((2, 2, 1), np.float32), np.zeros((1, 2, 2, 1), np.float32),
                                          1, 1, 1, 1, 0, 0),
    lambda kernels, arena: kernels.execute(np.zeros(0, np.int64), 0, 0, 0, 0, 0, *[arena] * 6),
    lambda kernels, arena: kernels.wait_change(np.zeros(2, np.float64), 0, 1, 1),
    lambda kernels, arena: kernels.wait_change(np.zeros(2, np.int64), 0, 1.5, 1),
], ids=["float64 program", "strided buffer", "read-only buffer", "float64 image", "3-d image", "missing buffer",
        "float64 flags", "float waited for"])
def test_the_cfunc_module_refuses_arrays_its_kernels_cannot_read(both_builds, call):
    """An array of another item type or dimension, not contiguous or not writable, or a missing argument, is a
    TypeError or ValueError from the cfunc module's glue, before any kernel reads it. (The pycc module does not
    check item types: it runs a float64 program as int64, and a float64 image crashes it; the backend never passes
    either.)"""
    with pytest.raises((TypeError, ValueError)):
        call(both_builds["cfunc"], np.zeros(64, np.uint8))


@pytest.mark.parametrize("shape, transform, new_shape", [
    ((4, 6), lambda a: a, (24,)),
    ((4, 6), lambda a: a, (2, 2, 3, 2)),
    ((1, 4, 1, 6), lambda a: a, (4, 1, 6, 1)),
    ((4, 6), lambda a: a[:, ::2], (12,)),          # not contiguous: a copy is needed
    ((4, 6), lambda a: a[::2], (2, 3, 2)),         # every other row: each row still contiguous
    ((4, 6), lambda a: a.T, (24,)),                # transposed: a copy is needed
    ((4, 6), lambda a: a.T, (3, 2, 4)),            # transposed, split along its own order
    ((0, 6), lambda a: a, (6, 0)),
])
def test_the_support_codes_reshape_is_numpys(both_builds, shape, transform, new_shape):
    """`numba_attempt_nocopy_reshape` in `aot_cfunc._SUPPORT` gives NumPy's strides for a reshape without a copy
    (NumPy's own: assigning `.shape` to a view), and 0 where NumPy needs a copy."""
    library = ctypes.CDLL(both_builds["cfunc"].origin)
    reshape = library.numba_attempt_nocopy_reshape
    reshape.restype = ctypes.c_int
    array = transform(np.zeros(shape, np.float32))
    view = array.view()
    try:
        view.shape = new_shape
        expected = view.strides
    except AttributeError:
        expected = None
    extents = ctypes.c_ssize_t * max(1, array.ndim)
    new_extents = ctypes.c_ssize_t * len(new_shape)
    strides = new_extents()
    done = reshape(ctypes.c_ssize_t(array.ndim), extents(*array.shape), extents(*array.strides),
                   ctypes.c_ssize_t(len(new_shape)), new_extents(*new_shape), strides,
                   ctypes.c_ssize_t(array.itemsize), ctypes.c_int(0))
    if expected is None:
        assert done == 0
    else:
        assert done == 1
        if array.size:  # (with no elements, NumPy and numba choose different strides; any are right)
            assert tuple(strides) == expected
