"""Stable-Baselines3 and sb3-contrib save files, read as data: no torch, no SB3, no code from the file run.

`save_file` reads a model `.zip` (its `data` JSON, the pickled spaces, policy class and kwargs, and the torch
state dicts), `vecnormalize` rl-zoo3's `vecnormalize.pkl`; `torch_storage` reads torch's `.pth` serialization
and `dialect` says which globals SB3's pickles may name.
"""
