"""Exporters: SB2 models to SBIF files. `live` needs Stable-Baselines (Python 3.7); the builder does not."""
from .build import build_sbif
from .description import ModelDescription, Space

__all__ = ["ModelDescription", "Space", "build_sbif"]
