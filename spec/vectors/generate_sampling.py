"""Generate the vectors of the sampling ops (`spec/ops-sampling.md`) from NumPy 1.18.5, SB2's sampler.

SB2's DQN samples its stochastic actions in NumPy, not TensorFlow (`deepq/policies.py`, `step`:
`np.random.choice(n_actions, p=actions_proba[i])`), so the oracle is NumPy 1.18.5's `RandomState.choice`, whose
weighted branch is (numpy/random/mtrand.pyx):

    cdf = p.cumsum(); cdf /= cdf[-1]
    uniform_samples = self.random_sample(shape)
    idx = cdf.searchsorted(uniform_samples, side='right')

Run in the SB2 environment (Python 3.7, NumPy 1.18.5):

    .venv-sb2/bin/python spec/vectors/generate_sampling.py [--check]

(it writes the file only under NumPy 1.18; with another NumPy it only checks)

The generator first confirms, on thousands of random rows, that `choice(n, p=row)` returns exactly
`searchsorted` of the `random_sample()` the same generator state gives; then it writes each case's expected
output with that formula (and, for inputs outside NumPy's domain, with the spec's rule, recorded in the case's
`note`). `--check` also runs the `sbif.ops` reference on every case. Deterministic: seeded by the op's name.
"""
from __future__ import absolute_import, division, print_function

import json
import os
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

OP = "inverse_cdf_sample"
EXACT = {"exact": True}
ULP24 = 2.0 ** -24  # spacing of the float32 uniforms noise inputs hold


def numpy_choice_index(p_row, u):
    """NumPy 1.18.5 RandomState.choice's weighted branch, for one row and a given uniform double."""
    cdf = np.asarray(p_row, dtype=np.float64).cumsum()
    cdf /= cdf[-1]
    return int(cdf.searchsorted(u, side="right"))


def spec_index(p_row, u):
    """The op's definition (spec/ops-sampling.md): count of d[j] <= u, clamped to n - 1."""
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf = np.cumsum(np.asarray(p_row, dtype=np.float64))
        d = cdf / cdf[-1]
        return min(int(np.sum(d <= np.float64(u))), len(p_row) - 1)


def confirm_choice_is_inverse_cdf(rng):
    """choice(n, p) == searchsorted(cdf, random_sample()) from the same state, on random float32 softmax rows."""
    for trial in range(4000):
        n = int(rng.randint(1, 20))
        p = softmax32(rng.standard_normal(n) * rng.uniform(0.1, 6.0))
        state = np.random.RandomState(trial)
        drawn = state.choice(n, p=p)
        u = np.random.RandomState(trial).random_sample()
        assert drawn == numpy_choice_index(p, u) == spec_index(p, u), (trial, p, u)


def softmax32(logits):
    """A float32 softmax as TF computes it (exp(x - max) * (1 / sum)): realistic DQN action probabilities."""
    x = np.asarray(logits, dtype=np.float32)
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e * (np.float32(1) / np.sum(e, axis=-1, keepdims=True))


def grid_uniforms(rng, shape):
    """float32 uniforms on the 2^-24 grid, as a runtime's U[0,1) float32 generator makes them."""
    return (np.floor(rng.uniform(0.0, 1.0, shape) / ULP24) * ULP24).astype(np.float32)


def encode(array):
    array = np.asarray(array)
    if array.dtype.kind == "f":
        data = [("nan" if np.isnan(v) else "inf" if v > 0 else "-inf") if not np.isfinite(v) else float(v)
                for v in array.astype(np.float64).ravel()]
    else:
        data = [int(v) for v in array.ravel()]
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": data}


def case(name, p, u, note=None, oracle=numpy_choice_index):
    p, u = np.asarray(p), np.asarray(u)
    rows_p, rows_u = p.reshape(-1, p.shape[-1]), u.reshape(-1)
    expected = np.array([oracle(row, value) for row, value in zip(rows_p, rows_u)], dtype=np.int64)
    spec = np.array([spec_index(row, value) for row, value in zip(rows_p, rows_u)], dtype=np.int64)
    if oracle is numpy_choice_index:
        assert np.array_equal(expected, spec), (name, expected, spec)
    item = {"name": name, "attrs": {}, "inputs": [encode(p), encode(u)],
            "outputs": [encode(spec.reshape(p.shape[:-1]))], "tolerance": EXACT}
    if note:
        item["note"] = note
    return item


def build_cases():
    rng = np.random.RandomState(zlib.crc32(OP.encode()))
    confirm_choice_is_inverse_cdf(rng)
    f32 = np.float32
    cases = []
    for batch, n in ((1, 2), (4, 3), (16, 5), (8, 18)):
        logits = rng.standard_normal((batch, n)) * 2.0
        cases.append(case("random_b{}_n{}".format(batch, n), softmax32(logits), grid_uniforms(rng, (batch, 1))))
    quarter = f32([0.25, 0.25, 0.5])
    u = f32([0.0, 0.25 - ULP24, 0.25, 0.5 - ULP24, 0.5, 1.0 - ULP24])[:, None]
    cases.append(case("cdf_steps_go_right", np.tile(quarter, (6, 1)), u,
                      "u equal to a CDF value selects the next action (searchsorted side='right')"))
    zeros = f32([[0.0, 0.5, 0.0, 0.5]] * 5)
    cases.append(case("zero_probabilities_never_drawn", zeros, f32([0.0, 0.25, 0.5, 0.75, 1.0 - ULP24])[:, None],
                      "zero-probability actions (first, third) are never drawn, even at u = 0 or u = a step"))
    cases.append(case("last_action_zero", np.tile(f32([0.5, 0.5, 0.0]), (3, 1)),
                      f32([0.5 - ULP24, 0.5, 1.0 - ULP24])[:, None]))
    cases.append(case("unnormalized_float64_division", np.tile(f32([1.0, 2.0, 3.0, 4.0]), (4, 1)),
                      f32([0.1, 0.3, 0.6, 0.29999998])[:, None],
                      "cdf / cdf[-1] in float64 gives 0.1, 0.3, 0.6, 1.0 (doubles); float32 0.1 is above 0.1, "
                      "float32 0.3 and 0.6 are above their doubles, 0.29999998 below 0.3"))
    softmax_rows = softmax32(rng.standard_normal((6, 7)) * 3.0)
    cases.append(case("softmax_sum_not_one", softmax_rows, grid_uniforms(rng, (6, 1)),
                      "float32 softmax rows sum to 1 within a few ULP; the division by the last CDF value "
                      "normalises them"))
    cases.append(case("single_action", f32([[1.0], [1.0], [0.3]]), f32([0.0, 0.5, 1.0 - ULP24])[:, None]))
    tiny = f32([[1e-30, 1.0, 1e-30], [1e-30, 1.0, 1e-30]])
    cases.append(case("tiny_probabilities", tiny, f32([0.0, 1.0 - ULP24])[:, None],
                      "a first action of probability 1e-30 is drawn exactly when u = 0 (with float32 uniforms "
                      "that has probability 2^-24), the last one never"))
    cases.append(case("float64_inputs", softmax_rows.astype(np.float64),
                      rng.uniform(0.0, 1.0, (6, 1)), "float64 p and u, as numpy's choice computes"))
    p3 = softmax32(rng.standard_normal((2, 3, 4)))
    cases.append(case("rank3", p3, grid_uniforms(rng, (2, 3, 1))))
    cases.append(case("rank1", f32([0.2, 0.3, 0.5]), f32([0.6])))
    cases.append(case("outside_domain_u", np.tile(quarter, (5, 1)), f32([1.0, 1.5, -0.5, np.inf, -np.inf])[:, None],
                      "u outside [0, 1): u >= 1 gives n - 1 (clamped; numpy would return n), u < 0 gives 0",
                      oracle=spec_index))
    cases.append(case("nan_and_degenerate_rows",
                      f32([[0.5, np.nan, 0.5], [0.25, 0.25, 0.5], [0.0, 0.0, 0.0], [1.0, np.inf, 1.0],
                           [np.inf, 1.0, 1.0]]),
                      f32([0.5, np.nan, 0.5, 0.5, 0.5])[:, None],
                      "NaN in p or u, or p summing to 0, gives 0 (SB2's numpy raises ValueError); +inf in p "
                      "gives the first infinite entry", oracle=spec_index))
    return cases


def main(argv):
    cases = build_cases()
    document = {
        "op": OP,
        "generated_by": "NumPy {} (RandomState.choice's weighted branch), Python {}".format(
            np.__version__, ".".join(map(str, sys.version_info[:3]))),
        "oracle": "numpy.random.RandomState.choice(n, p=row) given its uniform u: cdf = p.cumsum(); "
                  "cdf /= cdf[-1]; cdf.searchsorted(u, side='right') (float64)",
        "cases": cases,
    }
    lines = ["{", ' "op": {},'.format(json.dumps(OP)),
             ' "generated_by": {},'.format(json.dumps(document["generated_by"])),
             ' "oracle": {},'.format(json.dumps(document["oracle"])), ' "cases": [']
    lines += ["  " + json.dumps(item) + ("," if i < len(cases) - 1 else "") for i, item in enumerate(cases)]
    lines += [" ]", "}"]
    path = os.path.join(HERE, OP + ".json")
    if np.__version__.startswith("1.18."):
        with open(path, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        print("wrote {} ({} cases)".format(path, len(cases)))
    else:
        print("NumPy {} is not SB2's NumPy 1.18: not writing {}".format(np.__version__, path))
    if "--check" in argv:
        from sbif.ops import REGISTRY

        op = REGISTRY[OP]
        for item in cases:
            inputs = [np.array([float(v) for v in t["data"]], dtype=t["dtype"]).reshape(t["shape"])
                      for t in item["inputs"]]
            got = op.compute(*inputs)
            want = np.array(item["outputs"][0]["data"], dtype=np.int64).reshape(item["outputs"][0]["shape"])
            assert got.dtype == np.int64 and np.array_equal(got, want), (item["name"], got, want)
        print("sbif.ops reference agrees on every case")


if __name__ == "__main__":
    main(sys.argv[1:])
