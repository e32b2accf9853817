"""The C runtime's float32 product kernels (runtimes/c/sbif_kernels.c) and its workspaces, through the test drivers
`make -C runtimes/c tests` builds (runtimes/c/tests/): the kernels against a plain double-accumulation reference, as
every build compiles them (host, baseline ISA, AVX2 where the compiler targets it, the forced portable C99 fallback,
under the sanitizers), and workspace runs with every allocation of the library counted."""
from __future__ import annotations

import copy
import fcntl
import os
import platform
import subprocess
import tempfile

import pytest

from conformance.models import EXAMPLES, write_model
from tests.runtimes.conftest import BUILD, C_DIR

#: each kernel build and what its first line must say it was compiled for
KERNEL_BUILDS = {
    "native": None,  # whatever the host is
    "baseline": None,  # the compiler's baseline: 128-bit vectors on x86-64 and ARM64
    "avx2": "avx vector extensions: 8 lanes",
    "fallback": "portable C99",
    "asan": None,
}


@pytest.fixture(scope="module")
def drivers(c_build):
    with open(os.path.join(tempfile.gettempdir(), "sbif-runtimes-c-make.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(["make", "-C", C_DIR, "tests"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True)
    assert result.returncode == 0, "make -C runtimes/c tests failed:\n" + result.stdout
    return BUILD


@pytest.mark.parametrize("build", sorted(KERNEL_BUILDS))
def test_the_kernels_agree_with_the_reference_on_awkward_sizes(drivers, build):
    """gemm on 1..13 rows, K in 0..100 and N in 1..100 around the vector width and the panel, row blocks past the L2
    block, conv2d SAME and VALID with strides and overhanging windows: signed data within spec/ops.md's bound,
    dyadic data exactly, NaN and infinities where the reference has them, nothing written past the output."""
    path = os.path.join(drivers, "kernels-test-" + build)
    if build == "avx2" and not os.path.exists(path):
        pytest.skip("the compiler does not target AVX2 with FMA")
    result = subprocess.run([path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and lines[-1].endswith(" 0 failures"), result.stdout[-3000:]
    if KERNEL_BUILDS[build] is not None:
        assert KERNEL_BUILDS[build] in lines[0], lines[0]


def test_the_fallback_is_not_the_vector_build(drivers):
    """SBIF_KERNELS_PORTABLE really forces the plain C99 kernels (else the fallback would go untested)."""
    targets = {build: subprocess.run([os.path.join(drivers, "kernels-test-" + build)], stdout=subprocess.PIPE,
                                     universal_newlines=True).stdout.splitlines()[0]
               for build in ("native", "fallback")}
    assert "vector extensions" in targets["native"] and "portable C99" in targets["fallback"], targets


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    """SAC with 256 x 256 hidden layers: values wide enough that a batch of 2500 runs in chunks of rows."""
    spec = copy.deepcopy(EXAMPLES["sac"])
    spec["layers"] = [256, 256]
    return write_model(spec, str(tmp_path_factory.mktemp("wide")))


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    """A CNN policy on Atari's 84 x 84 x 4 frames: its preprocessing (cast, subtract, divide) takes more than half
    the L2 per frame, so a chunk of frames runs it one frame at a time (a streamed segment), the nodes after it all
    the chunk's rows at once."""
    spec = copy.deepcopy(EXAMPLES["cnn"])
    spec["observation"]["shape"] = [84, 84, 4]
    return write_model(spec, str(tmp_path_factory.mktemp("image")))


def workspace_steps(output: str):
    """The driver's report as the allocation counts of its single-thread steps, whether the rows-alone check ran,
    and per thread count the counts of its threaded steps."""
    single, threaded, rows_alone = [], {}, False
    current = single
    for line in output.splitlines():
        if line.startswith("threads "):
            current = threaded.setdefault(int(line.split()[1].rstrip(":")), [])
        elif line.endswith(" allocations"):
            current.append(int(line.split(": ")[1].split()[0]))
        elif line == "batch 2500: rows alone checked":
            rows_alone = True
    return single, rows_alone, threaded


def test_a_sized_workspace_allocates_nothing_and_grows_for_a_larger_batch(drivers, example_models, wide_model,
                                                                         image_model):
    """Every family's file, a wide one and one whose chunks stream a segment a row at a time: after a batch of 8, batches of 8, 3 and 1 allocate nothing; 20 grows the
    workspace; then 5 and 20 allocate nothing; each run's views equal sbif_model_run's copies bit for bit; and rows
    of a batch of 2500 (in chunks where the values are wide), each run alone, are exactly the batch's rows. Split
    between 2 and 3 threads (where the library has them), a batch of many chunks gives sbif_model_run's results bit
    for bit, sizing the threads' buffers once and allocating nothing after."""
    assert example_models
    for family, path in sorted(example_models.items()) + [("sac 256 x 256", wide_model),
                                                          ("cnn 84 x 84 x 4", image_model)]:
        result = subprocess.run([os.path.join(drivers, "workspace-test"), path], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, universal_newlines=True)
        counts, rows_alone, threaded = workspace_steps(result.stdout)
        assert result.returncode == 0 and len(counts) == 8 and rows_alone, "{}:\n{}".format(family, result.stdout)
        assert counts[0] > 0 and counts[5] > 0 and counts[1:5] + counts[6:] == [0] * 6, (family, counts)
        threads = "library threads: yes" in result.stdout
        assert threads or platform.system() != "Linux", "the Linux build has no threads: " + result.stdout[-500:]
        if threads:
            assert sorted(threaded) == [2, 3], "{}:\n{}".format(family, result.stdout)
            for runs in threaded.values():
                assert len(runs) == 3 and runs[0] > 0 and runs[1:] == [0, 0], (family, threaded)


def test_a_build_without_threads_runs_in_one_thread_and_refuses_more(drivers, wide_model):
    """The library as `make THREADS=0` builds it: every single-thread step as before, "library threads: no", and
    workspace_test's own check that asking for 2 threads is SBIF_ERR_UNSUPPORTED (a FAIL line otherwise)."""
    result = subprocess.run([os.path.join(drivers, "workspace-test-unthreaded"), wide_model], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    counts, rows_alone, threaded = workspace_steps(result.stdout)
    assert result.returncode == 0 and len(counts) == 8 and rows_alone and threaded == {}, result.stdout
    assert "library threads: no" in result.stdout, result.stdout


def test_threaded_workspaces_race_nowhere(drivers, wide_model):
    """The wide model's threaded runs under ThreadSanitizer: no data race between the pool's threads, the caller and
    the workspaces' buffers (where the compiler has ThreadSanitizer and the library has threads). The pool and the
    chunking are the same code for every model, so one model whose batches run in many chunks covers them."""
    path = os.path.join(drivers, "workspace-test-tsan")
    if not os.path.exists(path):
        pytest.skip("no ThreadSanitizer build (the compiler lacks -fsanitize=thread or the library has no threads)")
    result = subprocess.run([path, wide_model], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    assert result.returncode == 0 and "ThreadSanitizer" not in result.stdout, result.stdout[-3000:]
    assert sorted(workspace_steps(result.stdout)[2]) == [2, 3], result.stdout
