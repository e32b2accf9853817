"""The NumPy reference runtime: executes an SBIF graph and offers SB2's predict interface."""
from .executor import GraphExecutor
from .policy import Policy, load

__all__ = ["GraphExecutor", "Policy", "load"]
