"""SBIF's version, in a module of its own so that any layer can name it (a file's provenance, an ONNX model's
producer, `sbif --version`) without importing the package's façade, and pyproject.toml reads it from here."""
__version__ = "0.1.0"
