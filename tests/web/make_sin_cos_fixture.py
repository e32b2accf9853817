"""Correctly rounded sin and cos for the play page's elementary functions' test (envs.test.mjs), from mpmath.

    .venv/bin/python tests/web/make_sin_cos_fixture.py      # writes tests/web/fixtures/sin_cos.json

The arguments: every one gym's recorded trajectories passed to sin or cos (fixtures/gym_trajectories.json, which must
exist), uniform samples over the ranges the environments reach, the doubles nearest multiples of π/2 (where argument
reduction cancels most), and tiny arguments. mpmath evaluates at 300 bits and rounds once to the nearest double.
"""
import json
import math
import os
import random

import mpmath
from mpmath.libmp import round_nearest, to_float

HERE = os.path.dirname(os.path.abspath(__file__))
TRAJECTORIES = os.path.join(HERE, "fixtures", "gym_trajectories.json")
OUT = os.path.join(HERE, "fixtures", "sin_cos.json")


def nearest_double(value):
    return to_float(value._mpf_, rnd=round_nearest)


def arguments():
    with open(TRAJECTORIES) as stream:
        libm = json.load(stream)["libm"]
    chosen = {x for name in ("sin", "cos") for x, _ in libm[name]}
    rng = random.Random(2026)
    for low, high in ((-0.3, 0.3), (-4.0, 4.0), (-100.0, 100.0)):
        chosen.update(rng.uniform(low, high) for _ in range(1000))
    for k in range(1, 64):
        nearest = float(k * mpmath.pi / 2)
        step = math.ulp(nearest)
        chosen.update(sign * (nearest + i * step) for sign in (1, -1) for i in range(-2, 3))
    chosen.update(sign * 2.0 ** -e * rng.uniform(1, 2) for e in range(10, 60, 5) for sign in (1, -1))
    return sorted(chosen)


def main():
    mpmath.mp.prec = 300
    samples = [[x, nearest_double(mpmath.sin(mpmath.mpf(x))), nearest_double(mpmath.cos(mpmath.mpf(x)))]
               for x in arguments()]
    with open(OUT, "w") as stream:
        json.dump({"generator": "tests/web/make_sin_cos_fixture.py", "mpmath": mpmath.__version__,
                   "samples": samples}, stream, separators=(",", ":"))
    print("wrote {}: {} arguments".format(OUT, len(samples)))


if __name__ == "__main__":
    main()
