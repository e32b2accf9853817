"""SBIF: Stable-Baselines policies as one framework-neutral file, with a NumPy reference runtime.

    >>> import sbif
    >>> policy = sbif.load("ppo2_cartpole.sbif")
    >>> action, state = policy.predict(obs, deterministic=True)
"""
from .errors import DocumentError, ExportError, FileFormatError, InputError, SbifError, UnsupportedError
from .runtime import Policy, load
from .version import __version__

__all__ = ["DocumentError", "ExportError", "FileFormatError", "InputError", "Policy", "SbifError",
           "UnsupportedError", "load", "__version__"]
