"""The `live` marker (pyproject.toml) covers the whole directory, so `pytest -m "not live"` leaves SB2 out."""
import pathlib

HERE = pathlib.Path(__file__).resolve().parent


def test_every_test_of_this_directory_is_marked_live(request):
    collected = [item for item in request.session.items if HERE in item.path.resolve().parents]
    assert request.node in collected
    assert [item.nodeid for item in collected if item.get_closest_marker("live") is None] == []


def test_tests_elsewhere_are_not_marked_live(request):
    """The hook sees every collected test; only this directory's get the marker."""
    elsewhere = [item.nodeid for item in request.session.items
                 if HERE not in item.path.resolve().parents and item.get_closest_marker("live") is not None]
    assert elsewhere == []
