"""What the safe loader exports from every model of ../shared/zoo is byte for byte what was pinned
(`tests/zoo_digests.py` says when and how to record new digests); `tests/live/test_zoo_export_digests.py` does the
same for the live loader in the SB2 environment."""
import pytest

from tests.zoo import zoo_models
from tests.zoo_digests import assert_every_model_pinned, assert_export_unchanged


def test_every_zoo_model_has_a_pinned_digest():
    assert_every_model_pinned("safe")


@pytest.mark.parametrize("model", zoo_models())
def test_zoo_exports_are_unchanged(model):
    assert_export_unchanged(model, "safe")
