"""What the live loader exports from every model of ../shared/zoo is byte for byte what was pinned
(`tests/zoo_digests.py` says when and how to record new digests)."""
import pytest

from tests.zoo import require_zoo, zoo_models
from tests.zoo_digests import export_digest, pinned

MODELS = zoo_models()


def test_every_zoo_model_has_a_pinned_digest():
    require_zoo(MODELS)
    assert sorted(pinned()["live"]) == sorted(MODELS), "run: .venv-sb2/bin/python -m tests.zoo_digests --write live"


@pytest.mark.parametrize("model", MODELS)
def test_zoo_exports_are_unchanged(model):
    assert export_digest(model, "live") == pinned()["live"].get(model), (
        "the live loader's export of {} changed; if on purpose, record it: "
        ".venv-sb2/bin/python -m tests.zoo_digests --write live".format(model))
