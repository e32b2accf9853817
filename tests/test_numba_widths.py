"""The numba kernels at both vector widths (`host`, $SBIF_NUMBA_VECTOR): the dense products on panels and as dot
products, a convolution's patches (im2col's vector copies) and its panel tiles, against NumPy on awkward sizes, in
a child process per width (the width is frozen into the kernels when they are imported). The width this host does
not pick is legalised by LLVM into the registers there are, so both run everywhere. Each child compiles its few
kernels with numba's JIT (its disk cache keyed on the width: `jit_cache`); the whole interpreter at the other width,
built ahead of time, is the slow test at the end."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("numba")

from sbif.runtime.numba import host  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: run in the child: every product on awkward shapes (rows around the tile's, outputs around the panel's and the dot
#: groups', depths around the vector's), each checked against float64 NumPy within the bound of a sum of `depth`
#: rounded terms, and each row against itself computed alone (a row's result does not depend on its batch)
CHILD = r"""
import json, sys
import numpy as np
from sbif.runtime.numba import host, kernels
from sbif.runtime.numba.program import panels
from sbif.ops.layers import conv_axis

parameters = host.PARAMETERS
rng = np.random.default_rng(22)
u = 2.0 ** -24
worst = 0.0
checked = 0


def bound(depth):
    return (depth + 8) * u / (1 - (depth + 8) * u)


def check(actual, exact, magnitude, depth):
    global worst, checked
    error = np.abs(actual.astype(np.float64) - exact)
    worst = max(worst, float((error / (bound(depth) * magnitude + 1e-300)).max()))
    checked += 1


lanes, panel, tile = parameters.vector, parameters.panel, parameters.tile_rows
for rows in (1, tile - 1, tile, tile + 1, 2 * tile + 3):
    for depth in (1, lanes - 1, lanes + 3, 67):
        for width in (1, 2, 3, panel - 1, panel, panel + 5, 3 * panel + 7, 9 * panel):
            x = (rng.standard_normal((rows, depth)) * np.exp2(rng.integers(-6, 6, (rows, depth)))).astype(np.float32)
            w = rng.standard_normal((depth, width)).astype(np.float32)
            b = rng.standard_normal((1, width)).astype(np.float32)
            exact = x.astype(np.float64) @ w
            magnitude = np.abs(x).astype(np.float64) @ np.abs(w)
            if width >= panel:
                y = np.empty((rows, width), np.float32)
                kernels.dense_panels(x, panels(w), b, y)
                check(y, exact + b, magnitude + np.abs(b), depth)
                alone = np.empty((1, width), np.float32)
                kernels.dense_panels(x[-1:], panels(w), b, alone)
            else:
                y = np.empty((rows, width), np.float32)
                kernels.dense_dots(x, np.ascontiguousarray(w.T), y)
                check(y, exact, magnitude, depth)
                alone = np.empty((1, width), np.float32)
                kernels.dense_dots(x[-1:], np.ascontiguousarray(w.T), alone)
            assert (alone.view(np.uint32) == y[-1:].view(np.uint32)).all(), (rows, depth, width)

for images, size, channels, kernel, stride, padding in (
        (3, 9, 3, 3, 2, "SAME"), (2, 11, 4, 4, 3, "VALID"), (1, 5, lanes + 3, 2, 1, "SAME"), (2, 8, 5, 3, 1, "SAME")):
    x = rng.standard_normal((images, size, size, channels)).astype(np.float32)
    axis = conv_axis(size, kernel, stride, padding)
    out = axis.size
    padded = np.pad(x.astype(np.float64), ((0, 0), axis.padding, axis.padding, (0, 0)))
    patches = np.stack([padded[:, i * stride:i * stride + kernel, j * stride:j * stride + kernel, :].reshape(images, -1)
                        for i in range(out) for j in range(out)], axis=1)
    columns = np.full((images, out, out, kernel * kernel * channels), np.nan, np.float32)
    kernels.im2col(x, columns, kernel, kernel, stride, stride, axis.padding[0], axis.padding[0])
    assert (columns.reshape(images, out * out, -1) == patches).all(), (size, kernel, stride, padding)
    checked += 1

for images, size, channels, kernel, stride, filters in (
        (2, 11, 3, 3, 2, panel + 3), (3, 7, lanes + 3, 2, 1, panel // 2)):
    x = rng.standard_normal((images, size, size, channels)).astype(np.float32)
    w = rng.standard_normal((kernel, kernel, channels, filters)).astype(np.float32)
    b = rng.standard_normal((1, filters)).astype(np.float32)
    out = (size - kernel) // stride + 1
    patches = np.stack([x[:, i * stride:i * stride + kernel, j * stride:j * stride + kernel, :].reshape(images, -1)
                        for i in range(out) for j in range(out)], axis=1).reshape(images * out * out, -1)
    matrix = w.reshape(-1, filters)
    y = np.empty((images, out, out, filters), np.float32)
    kernels.conv2d_panels(x, panels(matrix), b, y, kernel, kernel, stride, stride)
    check(y.reshape(-1, filters), patches.astype(np.float64) @ matrix + b,
          np.abs(patches).astype(np.float64) @ np.abs(matrix) + np.abs(b), patches.shape[1])
    alone = np.empty((1, out, out, filters), np.float32)
    kernels.conv2d_panels(x[-1:], panels(matrix), b, alone, kernel, kernel, stride, stride)
    assert (alone.view(np.uint32) == y[-1:].view(np.uint32)).all(), (size, kernel, stride, filters)
print(json.dumps({"vector": lanes, "panel": panel, "worst": worst, "checked": checked}))
"""


def run_child(lanes):
    """The child's report at `lanes` lanes."""
    env = dict(os.environ, **{host.VECTOR_ENV: str(lanes)})
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [part for part in env.get("PYTHONPATH", "").split(os.pathsep) if part])
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("lanes", [host.NARROW_LANES, host.WIDE_LANES])
def test_the_dense_products_and_the_patches_at_each_width(lanes):
    report = run_child(lanes)
    assert (report["vector"], report["panel"]) == (lanes, 2 * lanes)
    assert report["checked"] == 166 and report["worst"] <= 1.0, report


@pytest.mark.slow
def test_the_other_width_builds_and_runs_the_runtime_suite(tmp_path):
    """The whole interpreter built ahead of time at the width this host does not pick (about a minute and a half),
    through the numba runtime's tests against the reference and TensorFlow's op vectors."""
    other = host.NARROW_LANES if host.PARAMETERS.vector == host.WIDE_LANES else host.WIDE_LANES
    env = dict(os.environ, SBIF_CACHE_DIR=str(tmp_path / "kernels"), **{host.VECTOR_ENV: str(other)})
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           os.path.join(ROOT, "tests", "test_numba_runtime.py"), "-k",
                           "op_vectors or agrees or single or batch"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
