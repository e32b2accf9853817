"""Convolutions without padding in the numba interpreter (`kernels.conv2d_panels`): the same sums as the panel
tiles on the patch columns, bit for bit, within linear's bound of float64 NumPy, each image the same alone as in any
batch, nothing written outside y; and the lowering that picks them (kernels in panels only where no patch reaches
into padding), which the batch path then leaves to the interpreter instead of im2col and BLAS."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from sbif.ops import get_op, resolve_attrs  # noqa: E402
from sbif.ops.layers import conv_axis  # noqa: E402
from sbif.runtime.numba import encoding, kernels, program  # noqa: E402
from sbif.runtime.numba.intrinsics import TILE_ROWS  # noqa: E402

PANEL = encoding.PANEL
UNIT_ROUNDOFF = 2.0 ** -24
#: (images, height, width, channels, kernel_h, kernel_w, filters, stride_h, stride_w): the nature CNN's three layers,
#: pixels that leave a tail after the last whole tile, filters below, at and around whole panels, one-pixel images
GEOMETRIES = [
    (2, 84, 84, 4, 8, 8, 32, 4, 4), (2, 20, 20, 32, 4, 4, 64, 2, 2), (3, 9, 9, 64, 3, 3, 64, 1, 1),
    (2, 7, 5, 3, 2, 3, 13, 1, 2), (1, 6, 6, 2, 1, 1, PANEL + 5, 1, 1), (3, 5, 4, 7, 5, 4, 2 * PANEL - 1, 1, 1),
    (2, 11, 10, 5, 3, 2, PANEL, 2, 3),
]


def geometry_id(geometry):
    return "{}x{}x{}x{}-k{}x{}-o{}-s{}x{}".format(*geometry)


def random_case(rng, geometry):
    images, height, width, channels, kernel_h, kernel_w, filters, _, _ = geometry
    x = (rng.standard_normal((images, height, width, channels))
         * np.exp2(rng.integers(-6, 6, (images, height, width, channels)))).astype(np.float32)
    w = rng.standard_normal((kernel_h, kernel_w, channels, filters)).astype(np.float32)
    b = rng.standard_normal((1, filters)).astype(np.float32)
    return x, w, b


def output_shape(geometry):
    images, height, width, _, kernel_h, kernel_w, filters, stride_h, stride_w = geometry
    return (images, (height - kernel_h) // stride_h + 1, (width - kernel_w) // stride_w + 1, filters)


def patches(x, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w):
    """The patch columns [B, Ho * Wo, kh * kw * C] in (kh, kw, C) order, by NumPy slicing."""
    return np.stack([x[:, i * stride_h:i * stride_h + kernel_h, j * stride_w:j * stride_w + kernel_w, :].reshape(
        len(x), -1) for i in range(out_h) for j in range(out_w)], axis=1)


def conv_panels(x, w, b, geometry):
    """conv2d_panels into the middle of a buffer of sevens: y and whether the sevens around it are untouched."""
    shape = output_shape(geometry)
    size = int(np.prod(shape))
    buffer = np.full(size + 2 * PANEL, 7.0, np.float32)
    y = buffer[PANEL:PANEL + size].reshape(shape)
    kernels.conv2d_panels(x, program.panels(w.reshape(-1, w.shape[-1])), b, y, w.shape[0], w.shape[1],
                          geometry[7], geometry[8])
    return y, bool((buffer[:PANEL] == 7.0).all() and (buffer[PANEL + size:] == 7.0).all())


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
def test_the_panel_tiles_on_the_patch_columns_bit_for_bit(geometry):
    """conv2d_panels computes what dense_panels computes on im2col's columns, to the bit (the same sums, the same
    order of k), within the bound of a sum of kh * kw * C rounded terms of float64 NumPy, and writes y alone."""
    rng = np.random.default_rng(8)
    x, w, b = random_case(rng, geometry)
    y, untouched = conv_panels(x, w, b, geometry)
    assert untouched
    images, out_h, out_w, filters = y.shape
    columns = np.ascontiguousarray(patches(x, w.shape[0], w.shape[1], geometry[7], geometry[8], out_h, out_w))
    depth = columns.shape[-1]
    through_columns = np.empty((images * out_h * out_w, filters), np.float32)
    kernels.dense_panels(columns.reshape(-1, depth), program.panels(w.reshape(depth, filters)), b, through_columns)
    assert (y.reshape(-1, filters).view(np.uint32) == through_columns.view(np.uint32)).all()
    exact = columns.astype(np.float64) @ w.reshape(depth, filters).astype(np.float64) + b
    magnitude = np.abs(columns).astype(np.float64) @ np.abs(w.reshape(depth, filters)) + np.abs(b)
    bound = (depth + 8) * UNIT_ROUNDOFF / (1 - (depth + 8) * UNIT_ROUNDOFF) * magnitude
    assert (np.abs(y.reshape(images, -1, filters) - exact) <= bound).all()


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
def test_an_image_gives_the_same_bits_alone(geometry):
    """Each image of a batch, convolved alone, gives the same bits: no result depends on its batch."""
    rng = np.random.default_rng(9)
    x, w, b = random_case(rng, geometry)
    y, _ = conv_panels(x, w, b, geometry)
    for image in range(len(x)):
        alone, _ = conv_panels(np.ascontiguousarray(x[image:image + 1]), w, b, (1,) + tuple(geometry[1:]))
        assert (alone[0].view(np.uint32) == y[image].view(np.uint32)).all(), image


def test_the_tiles_cover_a_tail_of_pixels():
    """The geometries include images whose pixels are not a whole number of tiles (the one-pixel tiles run) and
    filters that end in a partial panel (the partial tiles run)."""
    pixels = [output_shape(g)[1] * output_shape(g)[2] for g in GEOMETRIES]
    assert any(count % TILE_ROWS for count in pixels) and any(count < TILE_ROWS for count in pixels)
    assert any(g[6] % PANEL for g in GEOMETRIES) and any(g[6] > PANEL for g in GEOMETRIES)


def test_nan_and_inf_follow_ieee():
    """A NaN or an infinity in a patch reaches exactly the outputs whose patches hold it, as IEEE sums give."""
    geometry = (1, 6, 6, 3, 3, 3, PANEL + 1, 1, 1)
    rng = np.random.default_rng(10)
    x, w, b = random_case(rng, geometry)
    x[0, 0, 0, 0], x[0, 5, 5, 2] = np.nan, np.inf
    w[2, 2, 2, :] = np.abs(w[2, 2, 2, :])
    with np.errstate(all="ignore"):
        y, _ = conv_panels(x, w, b, geometry)
    assert np.isnan(y[0, 0, 0]).all() and (y[0, 3, 3] == np.inf).all()
    finite = np.ones(y.shape[1:3], bool)
    finite[0, 0] = finite[3, 3] = False
    assert np.isfinite(y[0][finite]).all()




@pytest.mark.parametrize("shape, kernel_shape, strides, padding, expected", [
    ((84, 84, 4), (8, 8, 4, 32), [4, 4], "VALID", True),
    ((9, 9, 3), (3, 3, 3, 5), [2, 2], "SAME", False),  # a row and a column of padding after
    ((8, 8, 3), (3, 3, 3, 5), [1, 1], "SAME", False),
    ((8, 8, 3), (1, 1, 3, 5), [1, 1], "SAME", True),  # SAME without padding: no patch leaves the image
])
def test_only_convolutions_without_padding_read_their_patches_in_place(shape, kernel_shape, strides, padding,
                                                                       expected):
    x = program.Value("float32", (None,) + tuple(shape), "input")
    attrs = resolve_attrs(get_op("conv2d"), {"strides": strides, "padding": padding}, "conv2d")
    axes = [conv_axis(size, kernel, stride, padding) for size, kernel, stride in zip(shape, kernel_shape, strides)]
    assert program.unpadded(x, kernel_shape, attrs) is expected
    assert expected == all(axis.padding == (0, 0) for axis in axes)


def test_the_lowering_stores_a_kernel_in_panels_exactly_when_no_patch_is_padded():
    """On TensorFlow's conv2d vectors: a convolution without padding gets its kernel in panels (the CONV2D
    instruction's `sub`), which the batch path leaves to the interpreter; one with padding keeps its HWIO kernel for
    im2col and BLAS (and the interpreter's direct loop)."""
    from tests.test_numba_encoding import one_node_model, vector_cases

    seen = set()
    for op, case in vector_cases():
        built = one_node_model(op, case) if op == "conv2d" else None
        if built is None or isinstance(built, str):
            continue
        model = built[0]
        lowered = program.Lowered(model)
        step = lowered.steps[0]
        x, kernel = lowered.values["x0"], model.tensors["x1"]
        attrs = resolve_attrs(get_op("conv2d"), case.get("attrs", {}), "conv2d")
        in_place = program.unpadded(x, kernel.shape, attrs)
        assert step.gemm.w.layout == ("panels" if in_place else "plain"), case["name"]
        assert step.instructions[0].sub == encoding.LAYOUTS.index(step.gemm.w.layout)
        seen.add(in_place)
    assert seen == {True, False}
