"""Compare an exported policy with SB2's own predictions on recorded observations (run in the SB2 env).

    python demo/compare_with_sb2.py demo/ppo2_cartpole.zip out/ppo2_cartpole.sbif out/cartpole_obs.npy

Bit equality with TensorFlow is impossible (its float32 tanh, exp and sums round differently from NumPy's), so
agreement is SPEC section 6's rule: each float output may differ from SB2's by at most 8 error scales, the scale
being how far float32 rounding can move a correct program's value on that very observation (computed with the
file's graph, `sbif.runtime.error_scales`); a discrete action must be SB2's unless its two best logits are that
close. Exit status 0 when every output agrees, 1 otherwise.
"""
import argparse
import sys

import numpy as np

import sbif
from sbif.export.live import compare_with_sb2, load_sb2_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="the SB2 save file")
    parser.add_argument("policy", help="the .sbif file exported from it")
    parser.add_argument("observations", help=".npy file of observations")
    args = parser.parse_args()

    model, _ = load_sb2_model(args.model)
    observations = np.load(args.observations)
    report = compare_with_sb2(model, sbif.load(args.policy), observations)
    mismatches = int(report.pop("action_mismatches", 0))
    print("SB2 vs SBIF on those {} observations:".format(len(observations)))
    print("  deterministic actions: {} differ from SB2's (near-ties of the logits, which float32 rounding may "
          "order either way, excepted)".format(mismatches))
    for output, ratio in report.items():
        print("  {}: the largest difference from SB2 is {:.2g} of what float32 rounding allows there (8 error "
              "scales; at most 1 agrees)".format(output, ratio))
    agreed = mismatches == 0 and all(ratio <= 1.0 for ratio in report.values())
    print("the exported file {} SB2 (spec/SPEC.md section 6)".format("agrees with" if agreed else "DISAGREES with"))
    return 0 if agreed else 1


if __name__ == "__main__":
    sys.exit(main())
