"""The error scales of expected answers, computed by the NumPy reference on each request's inputs.

Whatever the oracle — SB2 itself, the reference, a recorded pack — the error scale of an expected output is a
property of the computation on those inputs (SPEC section 6): `sbif.runtime.error_scales` evaluates it. Golden
packs and case files store the scales computed when they were written, so they are judged the same way wherever
they are replayed.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

from sbif.errors import SbifError


class ReferenceScales:
    """Scales for `run` and `predict` requests (None for others), with each model loaded once."""

    #: models kept loaded at once (a run goes model by model; each holds its weights' scales in float64)
    CACHED_MODELS = 8

    def __init__(self) -> None:
        self._models: Dict[str, Tuple[Any, Any]] = {}

    def _model(self, path: str) -> Tuple[Any, Any]:
        if path not in self._models:
            if len(self._models) >= self.CACHED_MODELS:
                self._models.clear()
            import sbif
            from sbif.runtime.error_scales import ErrorScales

            policy = sbif.load(path, backend="numpy")
            self._models[path] = (policy, ErrorScales(policy.model))
        return self._models[path]

    def for_request(self, request: Mapping[str, Any]) -> Tuple[Optional[Dict[str, Any]], Dict[str, str]]:
        """(scales, undetermined): the scales of every output the request can return — None when it has none (op,
        load requests) or the reference cannot evaluate it (a float comparison then fails, saying the scales are
        missing) — and, for values not determined by float evaluation, the node and the reason."""
        from sbif.runtime.error_scales import predict_scales

        undetermined: Dict[str, str] = {}
        kind = request.get("type")
        if kind not in ("run", "predict"):
            return None, undetermined
        try:
            policy, scales = self._model(request["model"])
            if kind == "run":
                return scales.run(request["inputs"], list(request["outputs"]), undetermined)[1], undetermined
            return predict_scales(policy, scales, request["method"], request["observation"], request.get("state"),
                                  request.get("mask"), request.get("deterministic"), request.get("noise"),
                                  request.get("actions"), bool(request.get("logp", False)), undetermined
                                  ), undetermined
        except (SbifError, KeyError, ValueError, TypeError):
            return None, undetermined
