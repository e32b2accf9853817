"""The NumPy reference runtime: executes an SBIF graph and offers SB2's predict interface."""
from .executor import GraphExecutor
from .policy import Policy, load
from .spaces import Box, Discrete, MultiBinary, MultiDiscrete, Space

__all__ = ["Box", "Discrete", "GraphExecutor", "MultiBinary", "MultiDiscrete", "Policy", "Space", "load"]
