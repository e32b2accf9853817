"""The protocol: exact tensor round trips, message checks, and a process runtime that crashes, hangs or lies."""
import io
import json
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conformance.protocol import (
    DTYPES, Answer, ProcessRuntime, ProtocolError, PythonRuntime, check_hello, decode_array, decode_request,
    encode_array, encode_request, serve)

from .conftest import NUMPY_RUNTIME, ROOT


def roundtrip(array):
    return decode_array(json.loads(json.dumps(encode_array(array), allow_nan=False)))


def same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.dtype.kind == "f":
        assert np.array_equal(np.isnan(a), np.isnan(b))
        keep = ~np.isnan(np.atleast_1d(a))
        # bit for bit where not NaN (zeros keep their sign through JSON)
        bits = "u%d" % a.itemsize
        assert np.array_equal(np.atleast_1d(a)[keep].view(bits), np.atleast_1d(b)[keep].view(bits))
    else:
        assert np.array_equal(a, b)


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)))
def test_tensors_round_trip_exactly(array):
    same_bits(array, roundtrip(array))


def test_special_and_extreme_values():
    floats = np.array([np.nan, np.inf, -np.inf, -0.0, np.finfo(np.float32).max, np.finfo(np.float32).tiny,
                       1e-45, 0.1], np.float32)
    encoded = encode_array(floats)
    assert encoded["data"][:3] == ["nan", "inf", "-inf"]
    assert encoded["data"][7] == float(np.float32(0.1))  # the double the float32 converts to
    same_bits(floats, roundtrip(floats))
    ints = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, 2 ** 53 + 1], np.int64)
    same_bits(ints, roundtrip(ints))
    same_bits(np.array(3.5, np.float64), roundtrip(np.array(3.5, np.float64)))


@pytest.mark.parametrize("bad, message", [
    ({"dtype": "float16", "shape": [1], "data": [1.0]}, "unknown dtype"),
    ({"dtype": "float32", "shape": [2], "data": [1.0]}, "needs 2 elements"),
    ({"dtype": "float32", "shape": [-1], "data": []}, "non-negative"),
    ({"dtype": "float32", "shape": [1], "data": ["NaN"]}, "not a float"),
    ({"dtype": "int32", "shape": [1], "data": [1.5]}, "not a int32"),
    ({"dtype": "uint8", "shape": [1], "data": [256]}, "not a uint8"),
    ({"dtype": "bool", "shape": [1], "data": [1]}, "true/false"),
    ({"dtype": "float32", "shape": [1], "data": [1.0], "extra": 1}, "exactly dtype"),
])
def test_malformed_tensors_are_refused(bad, message):
    with pytest.raises(ProtocolError, match=message):
        decode_array(bad)


def test_requests_round_trip():
    request = {"type": "predict", "model": "/m.sbif", "method": "action_probability",
               "observation": np.zeros((2, 3), np.float32), "state": None, "mask": None,
               "actions": np.array([1, 2]), "logp": True, "noise": {"noise_uniform": np.ones((2, 3), np.float32)}}
    decoded = decode_request(json.loads(json.dumps(encode_request(request))))
    assert decoded["method"] == "action_probability" and decoded["logp"] is True
    assert decoded["observation"].dtype == np.float32 and decoded["actions"].dtype == np.int64
    assert decoded["noise"]["noise_uniform"].shape == (2, 3)
    with pytest.raises(ProtocolError, match="unknown request type"):
        decode_request({"type": "train"})
    with pytest.raises(ProtocolError, match="method"):
        decode_request({"type": "predict", "model": "/m", "observation": encode_array(np.zeros(1))})


def test_answers_round_trip():
    answer = Answer("result", {"action": np.array([1, 0]), "state": None,
                               "probability": [np.zeros((1, 2), np.float32), np.ones((1, 2), np.float32)]},
                    missing={"q_values": "no such tensor"})
    back = Answer.from_wire(json.loads(json.dumps(answer.to_wire(4))))
    assert back.ok and back.outputs["state"] is None and len(back.outputs["probability"]) == 2
    assert back.missing == {"q_values": "no such tensor"}
    skipped = Answer.from_wire(Answer("skipped", message="op conv2d").to_wire(5))
    assert skipped.status == "skipped" and skipped.message == "op conv2d"


def test_hello_is_checked():
    good = {"type": "hello", "protocol": 1, "runtime": {"name": "x"}, "features": ["run"], "ops": None}
    assert check_hello(good)["runtime"]["name"] == "x"
    for change in ({"protocol": 2}, {"features": ["op"]}, {"runtime": "x"}, {"ops": "all"}):
        with pytest.raises(ProtocolError):
            check_hello(dict(good, **change))


def test_serve_speaks_the_protocol(example_models):
    model = example_models["mlp"]
    lines = [json.dumps({"type": "hello", "protocol": 1}),
             json.dumps(dict(encode_request({"type": "run", "model": model,
                                             "inputs": {"obs": np.zeros((2, 4), np.float32)},
                                             "outputs": ["action", "value"]}), id=1)),
             json.dumps({"id": 2, "type": "run", "model": model, "inputs": {}, "outputs": ["action"]}),
             json.dumps({"id": 3, "type": "op", "op": "conv3d", "attrs": {}, "inputs": []}),
             "not json",
             json.dumps({"type": "shutdown"})]
    out = io.StringIO()
    assert serve(PythonRuntime(), io.StringIO("\n".join(lines) + "\n"), out) == 0
    replies = [json.loads(line) for line in out.getvalue().splitlines()]
    assert replies[0]["type"] == "hello" and "run" in replies[0]["features"]
    assert replies[1]["type"] == "result" and replies[1]["outputs"]["action"]["dtype"] == "int64"
    assert replies[2]["type"] == "errored" and "missing input" in replies[2]["message"]
    assert replies[3]["type"] == "skipped" and "conv3d" in replies[3]["reason"]
    assert replies[4]["type"] == "errored" and "malformed" in replies[4]["message"]
    assert replies[5] == {"type": "bye"}


def test_process_runtime_answers_like_the_reference(numpy_process, reference, example_models):
    inputs = {"obs": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)}
    remote = numpy_process.run(example_models["mlp"], inputs, ["probabilities", "value"])
    local = reference.run(example_models["mlp"], inputs, ["probabilities", "value"])
    assert remote.ok and remote.seconds > 0
    for name in ("probabilities", "value"):
        same_bits(local.outputs[name], remote.outputs[name])


FAKE = textwrap.dedent("""
    import json, sys, time
    mode = sys.argv[1]
    hello = {"type": "hello", "protocol": 1, "runtime": {"name": "fake"}, "features": ["run"], "ops": None}
    for line in sys.stdin:
        message = json.loads(line)
        if message["type"] == "hello":
            print(json.dumps(hello), flush=True)
            continue
        if mode == "crash":
            sys.stderr.write("segmentation fault (pretend)\\n"); sys.exit(139)
        if mode == "hang":
            time.sleep(60)
        if mode == "garbage":
            print("Traceback: oops", flush=True)
        if mode == "wrong-id":
            print(json.dumps({"id": -1, "type": "result", "outputs": {}}), flush=True)
        if mode == "deep":
            print("[" * 100000 + "]" * 100000, flush=True)
        if mode == "huge-line":
            sys.stdout.write("[" * (65 * 1024 * 1024) + "\\n"); sys.stdout.flush()
""")


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "fake_runtime.py"
    script.write_text(FAKE)
    return lambda mode, **kw: ProcessRuntime([sys.executable, str(script), mode], **kw)


@pytest.mark.parametrize("mode, status, words", [("crash", "crashed", "exit code 139"),
                                                 ("garbage", "crashed", "not a protocol answer"),
                                                 ("wrong-id", "crashed", "does not match"),
                                                 ("deep", "crashed", "512 deep"),
                                                 ("huge-line", "crashed", "longer than 67108864 bytes")])
def test_a_crash_is_not_a_wrong_answer(fake, mode, status, words):
    runtime = fake(mode)
    answer = runtime.run("/m.sbif", {"obs": np.zeros((1, 2), np.float32)}, ["action"])
    assert answer.status == status and words in answer.message, answer.message
    if mode == "crash":
        assert "segmentation fault" in answer.message  # the end of stderr comes with the report
    again = runtime.run("/m.sbif", {"obs": np.zeros((1, 2), np.float32)}, ["action"])
    assert again.status == status and runtime.restarts >= 1  # a fresh process answers the next request
    runtime.close()


def test_a_hanging_runtime_times_out(fake):
    runtime = fake("hang", timeout=0.5)
    answer = runtime.run("/m.sbif", {"obs": np.zeros((1, 2), np.float32)}, ["action"])
    assert answer.status == "timeout"
    runtime.close()


def test_a_runtime_that_cannot_start_is_reported():
    with pytest.raises(ProtocolError, match="cannot start"):
        ProcessRuntime(["/nonexistent/runtime"])
    with pytest.raises(ProtocolError, match="hello"):
        ProcessRuntime([sys.executable, "-c", "print('hi')"], startup_timeout=10)


def test_adapter_with_a_mutant_flag(example_models):
    runtime = ProcessRuntime(NUMPY_RUNTIME + ["--mutant", "no_action_clip"], cwd=ROOT)
    assert runtime.name.startswith("sbif-numpy+mutant:no_action_clip")
    runtime.close()


# -- hostile request lines (issue #18): one errored answer each, and the server keeps serving ------------------------
HOSTILE_LINES = {
    "not UTF-8": (b'{"type":"load","id":5,"model":"\xff\xfe"}', "utf-8"),
    "nested 100k deep": (b"[" * 100000 + b"]" * 100000, "512 deep"),
    "nested in a request": (b'{"type":"op","id":2,"op":"add","inputs":' + b"[" * 600 + b"]" * 600 + b"}", "512 deep"),
    "NaN": (b'{"type":"load","id":NaN,"model":"x"}', "NaN"),
    "number beyond a double": (b'{"type":"load","id":1e400,"model":"x"}', "1e400"),
    "5000-digit integer": (b'{"type":"load","id":' + b"7" * 5000 + b',"model":"x"}', "longer than 100"),
    "5001-digit float element": (b'{"type":"op","id":4,"op":"neg","inputs":[{"dtype":"float32","shape":[1],'
                                 b'"data":[1' + b"0" * 5000 + b']}]}', "longer than 100"),
    "duplicate keys": (b'{"type":"load","type":"run","id":6,"model":"x"}', "type"),
    "not an object": (b"[1, 2, 3]", "JSON object"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_LINES))
def test_serve_answers_a_hostile_line_and_keeps_serving(name):
    """Each line is answered `errored` (malformed request, with a bounded message), then a hello still works."""
    line, words = HOSTILE_LINES[name]
    stream = io.BytesIO(line + b'\n{"type":"hello"}\n{"type":"shutdown"}\n')
    out = io.StringIO()
    assert serve(PythonRuntime(), stream, out) == 0
    replies = [json.loads(reply) for reply in out.getvalue().splitlines()]
    assert [reply["type"] for reply in replies] == ["errored", "hello", "bye"], replies
    assert "malformed request" in replies[0]["message"] and words in replies[0]["message"], replies[0]
    assert len(replies[0]["message"]) < 400


def test_serve_reads_past_a_line_longer_than_the_limit(monkeypatch):
    """A line longer than MAX_LINE_BYTES is read past in chunks, never kept whole, and answered `errored`; so is
    one that never ends."""
    import conformance.protocol as protocol

    monkeypatch.setattr(protocol, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(protocol, "LINE_CHUNK_BYTES", 64)
    exactly = b'{"type":"hello","pad":"' + b"x" * (999 - 25) + b'"}'
    assert len(exactly) == 999  # with its newline, exactly the limit
    too_long = b'{"type":"load","model":"' + b"a" * 5000
    for text, expected in ((too_long + b'"}\n' + exactly + b'\n{"type":"hello"}\n{"type":"shutdown"}\n',
                            ["errored", "hello", "hello", "bye"]), (too_long, ["errored"])):
        out = io.StringIO()
        assert serve(PythonRuntime(), io.BytesIO(text), out) == 0
        replies = [json.loads(reply) for reply in out.getvalue().splitlines()]
        assert [reply["type"] for reply in replies] == expected, replies
        assert "longer than 1000 bytes" in replies[0]["message"]


def test_serve_reads_text_streams_too():
    """serve over a text stream without a binary buffer (io.StringIO), as before: same answers."""
    out = io.StringIO()
    assert serve(PythonRuntime(), io.StringIO('[NaN]\n{"type":"hello"}\n'), out) == 0
    assert [json.loads(reply)["type"] for reply in out.getvalue().splitlines()] == ["errored", "hello"]


@pytest.mark.parametrize("name", sorted(HOSTILE_LINES))
def test_the_c_server_answers_hostile_lines_alike(name, c_build):  # noqa: F811
    """runtimes/c's sbif-protocol refuses the same lines (errored, id null) and keeps serving."""
    import os

    check_server_refuses_the_line([os.path.join(c_build, "sbif-protocol")], HOSTILE_LINES[name][0])


@pytest.mark.parametrize("name", sorted(HOSTILE_LINES) + ["a line over 64 MiB"])
def test_the_node_server_answers_hostile_lines_alike(name):
    """runtimes/js refuses the same lines as the reference's and the C server, and one longer than the limit."""
    import os
    import shutil

    node = shutil.which("node")
    if node is None and not os.environ.get("CI"):
        pytest.skip("node is not installed")
    line = b"[" * (64 * 1024 * 1024 + 1) if name == "a line over 64 MiB" else HOSTILE_LINES[name][0]
    check_server_refuses_the_line([node or "node", os.path.join(ROOT, "runtimes", "js", "bin", "sbif-protocol.js")], line)


def check_server_refuses_the_line(command, line):
    import subprocess

    result = subprocess.run(command, input=line + b'\n{"type":"hello"}\n',
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    replies = [json.loads(reply) for reply in result.stdout.decode("utf-8").splitlines()]
    assert result.returncode == 0 and [reply["type"] for reply in replies] == ["errored", "hello"], replies
    assert "malformed request" in replies[0]["message"] and replies[0]["id"] is None, replies[0]


from tests.runtimes.conftest import c_build  # noqa: E402,F401  (builds runtimes/c with make)


def test_an_op_request_beyond_the_value_limit_is_refused_before_computing():
    """one_hot of one index with depth 2^36 asks for 256 GiB: refused from the op's shape rule (an InputError, no
    traceback), while the same op with a small depth runs."""
    request = {"type": "op", "op": "one_hot", "inputs": [np.zeros(1, np.int64)], "n_outputs": 1}
    answer = PythonRuntime().request(dict(request, attrs={"depth": 2 ** 36}))
    assert answer.status == "errored" and not answer.details, answer
    assert "InputError" in answer.message and "274877906944 bytes" in answer.message, answer.message
    assert PythonRuntime().request(dict(request, attrs={"depth": 3})).outputs["0"].shape == (1, 3)
