"""`onepunch serve` against faults: a model that cannot serve stops the start (named, one
line); bad limits are refused by option; bad hints are a 400 with a message; an expired
result is gone, on access and on a timer; a page on another site cannot drive the server
through DNS rebinding (the Host header is checked)."""

import io
import json
import os
import pickle
import time

import numpy as np
import pytest
import torch
from helpers import publish_tiny_colorizer
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app as cli
from pipeline.colorist import serve
from pipeline.colorist.serve import ServeSettings, create_app

starlette = pytest.importorskip("starlette.testclient", reason="starlette is a main dependency; install the project")

A = "a" * 32
LOCAL = "http://127.0.0.1:8765"
runner = CliRunner()


@pytest.fixture(scope="module")
def colorizer(tmp_path_factory):
    return publish_tiny_colorizer(tmp_path_factory.mktemp("serve-model") / "color.pt")


def page_png() -> bytes:
    arr = np.full((48, 64), 255, np.uint8)
    arr[8:40, [8, 56]] = 0
    arr[[8, 39], 8:57] = 0
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def post(client, hints: str = "[]", session: str = A, headers=None):
    return client.post("/api/colorize", headers={"X-Session": session, **(headers or {})},
                       files={"page": ("p.png", page_png(), "image/png")}, data={"hints": hints})


class Clock:
    """A clock the test moves by hand: expiry without sleeping."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _RemovesCanary:
    """Unpickling this would delete the canary file: a model file that runs code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.remove, (self.path,)


def bad_models(colorizer, tmp_path) -> dict:
    good = colorizer.read_bytes()
    blob = torch.load(colorizer, weights_only=True)
    canary = tmp_path / "canary"
    canary.write_text("still here")
    paths = {"junk": b"not a model at all", "truncated": good[:len(good) // 2]}
    out = {}
    for name, data in paths.items():
        out[name] = tmp_path / f"{name}.pt"
        out[name].write_bytes(data)
    out["code"] = tmp_path / "code.pt"
    out["code"].write_bytes(pickle.dumps({"format": blob["format"], "x": _RemovesCanary(canary)}))
    out["missing-weight"] = tmp_path / "missing-weight.pt"
    torch.save({**blob, "state_dict": dict(list(blob["state_dict"].items())[1:])}, out["missing-weight"])
    out["too-wide"] = tmp_path / "too-wide.pt"  # a network too large to build: a RuntimeError from torch
    torch.save({**blob, "config": {**blob["config"], "width": 10**7}}, out["too-wide"])
    return out


KINDS = ("junk", "truncated", "code", "missing-weight", "too-wide")


@pytest.mark.parametrize("kind", KINDS)
def test_a_model_that_cannot_serve_stops_the_start(colorizer, tmp_path, monkeypatch, kind):
    import uvicorn

    model = bad_models(colorizer, tmp_path)[kind]
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started with a bad model"))
    res = runner.invoke(cli, ["serve", "--model", str(model), "--device", "cpu"])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(model) in lines[0], res.stderr
    assert (tmp_path / "canary").exists()  # the file's code never ran
    assert not list(tmp_path.glob("onepunch-serve-*"))


def test_create_app_loads_the_model_once_up_front(colorizer, tmp_path):
    with pytest.raises(ValueError, match="junk.pt"):
        create_app(ServeSettings(bad_models(colorizer, tmp_path)["junk"], None, "cpu", root=tmp_path / "s"))
    assert not (tmp_path / "s").exists()
    app = create_app(ServeSettings(colorizer, None, "cpu", root=tmp_path / "s"))
    assert app.state.serve.networks is not None


@pytest.mark.parametrize("option, value", [
    ("--max-mb", "nan"), ("--max-mb", "inf"), ("--max-mb", "-inf"), ("--max-mb", "1e-9"), ("--max-mb", "0"),
    ("--max-mb", "1e9"), ("--max-megapixels", "nan"), ("--max-megapixels", "inf"), ("--max-megapixels", "1e-9"),
])
def test_limits_out_of_range_are_refused_by_name(colorizer, monkeypatch, option, value):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started with a bad limit"))
    res = runner.invoke(cli, ["serve", "--model", str(colorizer), "--device", "cpu", option, value])
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith(f"error: {option} ") and "must be between" in res.stderr, res.stderr


@pytest.fixture()
def served(colorizer, tmp_path):
    app = create_app(ServeSettings(colorizer, None, "cpu", max_bytes=400_000, root=tmp_path / "serve"))
    with starlette.TestClient(app, base_url=LOCAL) as client:
        yield client, tmp_path / "serve"
    assert not (tmp_path / "serve").exists()


@pytest.fixture()
def clocked(colorizer, tmp_path):
    """A server whose sessions idle out after 60 s of a clock the test moves."""
    clock = Clock()
    app = create_app(ServeSettings(colorizer, None, "cpu", session_ttl_s=60.0, root=tmp_path / "serve",
                                   clock=clock))
    with starlette.TestClient(app, base_url=LOCAL) as client:
        yield client, tmp_path / "serve", clock
    assert not (tmp_path / "serve").exists()


@pytest.mark.parametrize("hints, said", [
    ("[" * 100_000, "nested too deeply"),  # RecursionError in json
    ("1" * 5000, "a number of 5000 digits"),  # past int's digit limit: a ValueError, not a JSONDecodeError
])
def test_bad_hints_are_a_400_with_a_message(served, hints, said):
    client, _ = served
    res = post(client, hints)
    assert res.status_code == 400 and said in res.json()["error"] and "the hints" in res.json()["error"], res.text
    assert post(client).status_code == 200  # and the server keeps serving


@pytest.mark.parametrize("error", [ValueError("the hints, point 0: x is too large"),
                                   RecursionError("maximum recursion depth exceeded")])
def test_any_value_or_recursion_error_from_hint_parsing_is_a_400(served, monkeypatch, error):
    from pipeline.colorist import hint_files

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(hint_files, "hints_from_points", fail)
    client, _ = served
    res = post(client, json.dumps([{"x": 1, "y": 1, "color": "#ff0000"}]))
    assert res.status_code == 400 and "the hints" in res.json()["error"], res.text


def test_an_idle_session_expires_on_access_and_on_a_timer(clocked):
    client, root, clock = clocked
    out = post(client).json()
    clock.now += 59
    assert client.get(out["page_png"]).status_code == 200  # a download is a use: 60 s more
    clock.now += 61
    res = client.get(out["page_png"])
    assert res.status_code in (404, 410) and "expired" in res.json()["error"]
    assert not (root / A).exists()  # and its files are gone

    out = post(client).json()
    clock.now += 61  # no request at all: the timer removes it
    deadline = time.monotonic() + 10
    while (root / A).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (root / A).exists() and client.get(out["page_png"]).status_code in (404, 410)


def test_an_expired_result_is_gone_without_another_upload(colorizer, tmp_path):
    app = create_app(ServeSettings(colorizer, None, "cpu", session_ttl_s=0.0, root=tmp_path / "s"))
    with starlette.TestClient(app, base_url=LOCAL) as client:
        out = post(client).json()
        time.sleep(0.01)
        assert client.get(out["page_png"]).status_code in (404, 410)
        assert not (tmp_path / "s" / A).exists()


@pytest.mark.parametrize("host", ["evil.example", "localhost.evil.example", "127.0.0.1.nip.io:8765",
                                  "evil.example:8765", "[::2]:8765"])
def test_a_foreign_host_header_is_refused(served, host):
    client, root = served
    res = client.get("/", headers={"Host": host})
    assert res.status_code in (400, 421) and "Host" in res.json()["error"], res.text
    res = post(client, headers={"Host": host})
    assert res.status_code in (400, 421)
    assert not (root / A).exists()  # nothing was colorized for it
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:1234", "LOCALHOST", "[::1]:8765", "127.0.0.1"])
def test_localhost_names_are_served(served, host):
    client, _ = served
    assert client.get("/", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("header, bound, ok", [
    ("127.0.0.1:8765", "127.0.0.1", True),
    ("localhost", "127.0.0.1", True),
    ("[::1]", "::1", True),
    ("192.168.1.5:8765", "127.0.0.1", False),  # not bound there
    ("192.168.1.5:8765", "192.168.1.5", True),  # bound there (--host)
    ("box.lan:8765", "box.lan", True),
    ("BOX.lan", "box.lan", True),
    ("evil.example", "192.168.1.5", False),
    ("10.0.0.7:8765", "0.0.0.0", True),  # a wildcard bind: any address of this machine
    ("[fe80::1]:8765", "::", True),
    ("evil.example:8765", "0.0.0.0", False),  # but no other site's name (DNS rebinding)
    ("", "127.0.0.1", False),
    (None, "127.0.0.1", False),
    ("localhost:", "127.0.0.1", False),
    ("localhost:80x", "127.0.0.1", False),
    ("[::1", "127.0.0.1", False),
    ("::1", "127.0.0.1", False),  # IPv6 only in brackets
    ("user@localhost", "127.0.0.1", False),
])
def test_host_allowed(header, bound, ok):
    assert serve.host_allowed(header, bound) is ok
