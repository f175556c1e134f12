"""`onepunch serve` through its HTTP API (Starlette's test client): a page with hints comes
back colored where the hints are and with its ink; bad uploads get a message and the
server keeps serving; tabs are isolated; files go when a session ends or the server stops."""

import io
import json
import struct
import zlib

import numpy as np
import pytest
from helpers import publish_tiny_colorizer
from PIL import Image

from pipeline.colorist.serve import ServeSettings, create_app

starlette = pytest.importorskip("starlette.testclient", reason="starlette is a main dependency; install the project")

A, B = "a" * 32, "b" * 32
LOCAL = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def colorizer(tmp_path_factory):
    return publish_tiny_colorizer(tmp_path_factory.mktemp("serve-model") / "color.pt")


def boxes_page() -> bytes:
    """A white page with two closed boxes drawn in black ink."""
    arr = np.full((96, 128), 255, np.uint8)
    for x0, x1 in ((8, 56), (72, 120)):
        arr[16:80, x0:x1][[0, -1], :] = 0
        arr[16:80, x0:x1][:, [0, -1]] = 0
        arr[16:18, x0:x1] = 0
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def post(client, session, data: bytes, hints=(), name="page.png"):
    return client.post("/api/colorize", headers={"X-Session": session},
                       files={"page": (name, data, "application/octet-stream")},
                       data={"hints": json.dumps(list(hints))})


@pytest.fixture()
def served(colorizer, tmp_path):
    app = create_app(ServeSettings(colorizer, None, "cpu", max_bytes=200_000, max_pixels=2_000_000,
                                   root=tmp_path / "serve"))
    with starlette.TestClient(app, base_url=LOCAL) as client:  # a localhost Host header: see test_serve_faults
        yield client, tmp_path / "serve"
    assert not (tmp_path / "serve").exists()  # the server stopped: every upload is gone


def test_the_page_loads_nothing_from_elsewhere(served):
    client, _ = served
    html = client.get("/").text
    assert "<canvas" in html and "/api/colorize" in html
    for marker in ("http://", "https://", "//cdn", "@import", "<link"):
        assert marker not in html, marker


def test_hints_color_their_box_and_the_ink_stays(served):
    client, root = served
    res = post(client, A, boxes_page(), [{"x": 30, "y": 50, "color": "#e02020"}])
    assert res.status_code == 200, res.text
    out = res.json()
    assert (out["width"], out["height"]) == (128, 96)
    page = np.array(Image.open(io.BytesIO(client.get(out["page_png"]).content)).convert("RGB")).astype(int)
    inside, other = page[30:70, 16:48], page[30:70, 80:112]
    assert (inside[..., 0] - inside[..., 1]).mean() > 60  # red where the hint is
    assert abs(other[..., 0] - other[..., 1]).mean() < 20  # no red in the other box
    scan = np.array(Image.open(io.BytesIO(boxes_page())))
    assert (page.max(-1)[scan == 0] <= 0).all()  # the ink comes through black
    psd = client.get(out["page_psd"] + "?download=1")
    assert psd.status_code == 200 and psd.content[:4] == b"8BPS"
    assert "attachment" in psd.headers["content-disposition"]
    assert len(list(root.joinpath(A).iterdir())) == 1


def test_regions_show_what_a_dot_fills_and_auto_none_colors_only_that(served):
    client, _ = served
    res = client.post("/api/regions", headers={"X-Session": A}, files={"page": ("p.png", boxes_page(), "image/png")})
    assert res.status_code == 200, res.text
    out = res.json()
    rgb = np.array(Image.open(io.BytesIO(client.get(out["regions_png"]).content)).convert("RGB")).astype(int)
    labels = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    box1, box2, outside = labels[40, 30], labels[40, 95], labels[5, 5]
    assert len({box1, box2, outside}) == 3 and 0 not in (box1, box2, outside) and out["regions"] >= 3
    assert (labels[20:78, 10:54] == box1).all() and labels[16, 30] == 0  # the whole box, not its ink

    res = client.post("/api/colorize", headers={"X-Session": A}, files={"page": ("p.png", boxes_page(), "image/png")},
                      data={"hints": json.dumps([{"x": 30, "y": 50, "color": "#2040e0"}]), "auto": "none"})
    assert res.status_code == 200, res.text
    page = np.array(Image.open(io.BytesIO(client.get(res.json()["page_png"]).content)).convert("RGB")).astype(int)
    assert (page[20:78, 10:54] == (32, 64, 224)).all()  # the dotted box, flat in its dot's color
    assert (page[20:78, 74:118] == 255).all() and (page[2:10, :] == 255).all()  # the rest as drawn
    res = client.post("/api/colorize", headers={"X-Session": A}, files={"page": ("p.png", boxes_page(), "image/png")},
                      data={"auto": "sometimes"})
    assert res.status_code == 400 and "auto 'sometimes': allowed values are network, none" in res.json()["error"]


def bomb() -> bytes:
    """A PNG header declaring 30000 x 30000 pixels (the data is a few bytes)."""
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    idat = chunk(b"IDAT", zlib.compress(b"\0" * 100))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


@pytest.mark.parametrize("data, status, message", [
    (b"just some text, not an image", 400, "not a page this can read"),
    (bomb(), 400, "not a page this can read"),
    (b"\0" * 300_000, 413, "limit"),
])
def test_bad_uploads_get_a_message_and_the_server_keeps_serving(served, data, status, message):
    client, root = served
    res = post(client, A, data, name="../../etc/passwd")
    assert res.status_code == status and message in res.json()["error"]
    assert not any(p.name == "passwd" for p in root.rglob("*"))  # an uploaded name never becomes a path
    assert post(client, A, boxes_page()).status_code == 200


def test_bad_hints_and_sessions_are_refused(served):
    client, root = served
    res = post(client, A, boxes_page(), [{"x": 500, "y": 5, "color": "#ff0000"}])
    assert res.status_code == 400 and "the hints" in res.json()["error"] and "/" not in res.json()["error"][:12]
    assert post(client, "not-a-token", boxes_page()).status_code == 400
    chunked = client.post("/api/colorize", headers={"X-Session": A}, content=iter([b"x" * 10]))
    assert chunked.status_code == 411 and "Content-Length" in chunked.json()["error"]
    assert not (root / A).exists() or not any((root / A).iterdir())  # refused pages leave nothing


def test_tabs_are_isolated_and_ending_a_session_removes_its_files(served):
    client, root = served
    a = post(client, A, boxes_page()).json()
    b = post(client, B, boxes_page()).json()
    assert a["page_png"] != b["page_png"]
    foreign = a["page_png"].replace(A, B)  # B's token with A's result: nothing
    assert client.get(foreign).status_code == 404
    assert client.get("/api/result/../../x/page.png").status_code == 404
    client.post("/api/end", headers={"X-Session": A})
    assert not (root / A).exists() and client.get(a["page_png"]).status_code == 404
    assert client.get(b["page_png"]).status_code == 200


def test_idle_sessions_expire(colorizer, tmp_path):
    now = [0.0]
    app = create_app(ServeSettings(colorizer, None, "cpu", session_ttl_s=60.0, root=tmp_path / "s",
                                   clock=lambda: now[0]))
    with starlette.TestClient(app, base_url=LOCAL) as client:
        post(client, A, boxes_page())
        now[0] += 61
        post(client, B, boxes_page())  # A has been idle longer than the TTL
        assert not (tmp_path / "s" / A).exists() and (tmp_path / "s" / B).exists()
