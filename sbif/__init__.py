"""SBIF: Stable-Baselines policies as one framework-neutral file, with a NumPy reference runtime.

    >>> import sbif
    >>> policy = sbif.load("ppo2_cartpole.sbif")
    >>> action, state = policy.predict(obs, deterministic=True)
"""
__version__ = "0.1.0"

from .errors import DocumentError, ExportError, FileFormatError, InputError, SbifError, UnsupportedError  # noqa: E402
from .runtime import Policy, load  # noqa: E402

__all__ = ["DocumentError", "ExportError", "FileFormatError", "InputError", "Policy", "SbifError",
           "UnsupportedError", "load", "__version__"]
