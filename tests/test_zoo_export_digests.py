"""What the safe loader exports from every model of ../shared/zoo is byte for byte what was pinned
(`tests/zoo_digests.py` says when and how to record new digests); `tests/live/test_zoo_export_digests.py` does the
same for the live loader in the SB2 environment."""
import pytest

from tests.zoo import require_zoo, zoo_models
from tests.zoo_digests import export_digest, pinned

MODELS = zoo_models()


def test_every_zoo_model_has_a_pinned_digest():
    require_zoo(MODELS)
    assert sorted(pinned()["safe"]) == sorted(MODELS), "run: .venv/bin/python -m tests.zoo_digests --write safe"


@pytest.mark.parametrize("model", MODELS)
def test_zoo_exports_are_unchanged(model):
    assert export_digest(model, "safe") == pinned()["safe"].get(model), (
        "the safe loader's export of {} changed; if on purpose, record it: "
        ".venv/bin/python -m tests.zoo_digests --write safe".format(model))
