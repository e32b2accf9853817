"""Exporters: SB2 models to SBIF files. The live loader needs Stable-Baselines (Python 3.7); the rest does not."""
from .build import build_sbif
from .description import ModelDescription, Space
from .exporter import LOADERS, ExportResult, ExportWarning, export

__all__ = ["LOADERS", "ExportResult", "ExportWarning", "ModelDescription", "Space", "build_sbif", "export"]
