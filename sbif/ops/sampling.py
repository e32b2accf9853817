"""Sampling ops that SB2 runs in NumPy rather than TensorFlow (specified in `spec/ops-sampling.md`)."""
from __future__ import annotations

import numpy as np

from .base import FLOAT_DTYPES, ExactOutputs, ValueSpec, fail, register, require_dtype


@register
class InverseCdfSample(ExactOutputs):
    """Draw an index from each row of probabilities `p` [..., n] with a uniform `u` [..., 1], as NumPy's
    `RandomState.choice(n, p=row)` does (SB2's stochastic DQN predict).

    In float64: c = cumsum(p) left to right, d = c / c[n-1], y = #{j : d[j] <= u}, clamped to n - 1
    (`searchsorted(d, u, side='right')` for u in [0, 1)). The result is int64 with the shape of p without its
    last axis. Zero-probability entries are never drawn; a row with NaN (in p or u) gives 0.
    """

    name = "inverse_cdf_sample"
    reads_axis = -1
    arity = 2

    @classmethod
    def infer(cls, inputs, attrs, n_outputs):
        p, u = inputs
        require_dtype(p, FLOAT_DTYPES, "p")
        require_dtype(u, FLOAT_DTYPES, "u")
        if len(p.shape) < 1 or p.shape[-1] is None or p.shape[-1] < 1:
            fail("inverse_cdf_sample needs p with a last axis of at least one entry, got {}".format(p))
        if u.shape != p.shape[:-1] + (1,):
            fail("inverse_cdf_sample needs u of shape p.shape[:-1] + (1,), got p {} and u {}".format(p, u))
        return [ValueSpec("int64", p.shape[:-1])]

    @classmethod
    def compute(cls, p, u):
        p = np.asarray(p, dtype=np.float64)
        u = np.asarray(u, dtype=np.float64)
        cdf = np.cumsum(p, axis=-1)  # NumPy accumulates left to right, one rounding per addition
        with np.errstate(invalid="ignore", divide="ignore"):
            cdf = cdf / cdf[..., -1:]
            count = np.sum(cdf <= u, axis=-1)  # comparisons with NaN are false
        return np.minimum(count, p.shape[-1] - 1).astype(np.int64)
