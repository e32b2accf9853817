"""Stable-Baselines3 and sb3-contrib policies to SBIF.

Their save files are read as data, with no torch, no SB3 and no code from the file run: `save_file` reads a model
`.zip` (the `data` JSON, the pickled policy class, kwargs and spaces, the torch state dicts), `torch_storage`
torch's `.pth` serialization, `vecnormalize` rl-zoo3's `vecnormalize.pkl`, and `dialect` says which globals SB3's
pickles may name.
"""
