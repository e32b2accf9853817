"""Compare an exported policy with SB2's own predictions on recorded observations (run in the SB2 env).

    python demo/compare_with_sb2.py demo/ppo2_cartpole.zip out/ppo2_cartpole.sbif out/cartpole_obs.npy
"""
import argparse
import sys

import numpy as np

import sbif
from sbif.compare import ATOL
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
    print("SB2 vs SBIF on those {} observations: {} action mismatches, largest probability difference {:.2e}, "
          "largest value difference {:.2e}".format(len(observations), int(report["action_mismatches"]),
                                                  report["probabilities"], report["value"]))
    failed = report["action_mismatches"] > 0 or report["probabilities"] > ATOL or report["value"] > ATOL
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
