"""pipeline.data.http against a misbehaving loopback server: resume, retries, atomicity, secrecy."""

from __future__ import annotations

import logging
import os
import time
import traceback

import pytest
from http_server import Fault

from pipeline.config import HttpConfig
from pipeline.data.http import (
    FetchError,
    NotFoundError,
    backoff_delay,
    download,
    download_many,
    join_url,
    make_session,
    parse_retry_after,
    part_path,
    safe_url,
)

FAST = HttpConfig(timeout_s=2.0, retries=3, backoff_s=0.01, max_backoff_s=0.05, concurrency=2,
                  user_agent="onepunchgan-tests/1.0")


def payload(n: int = 40_000, seed: int = 1) -> bytes:
    return bytes((i * 31 + seed * 7 + (i >> 8)) % 251 for i in range(n))


@pytest.fixture
def session():
    s = make_session(FAST)
    yield s
    s.close()


def test_plain_download_is_atomic_and_sends_user_agent(loopback_server, session, tmp_path):
    data = payload()
    loopback_server.add_file("a.bin", data)
    dest = tmp_path / "out" / "a.bin"
    assert download(session, loopback_server.url_for("a.bin"), dest, FAST) == dest
    assert dest.read_bytes() == data
    assert not part_path(dest).exists()
    (req,) = loopback_server.requests_for("/a.bin")
    assert req.headers["User-Agent"] == "onepunchgan-tests/1.0"
    assert "Range" not in req.headers


def test_resumes_partial_file_with_range(loopback_server, session, tmp_path):
    data = payload()
    loopback_server.add_file("a.bin", data)
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(data[:12_345])
    download(session, loopback_server.url_for("a.bin"), dest, FAST)
    assert dest.read_bytes() == data
    (req,) = loopback_server.requests_for("/a.bin")
    assert req.headers["Range"] == "bytes=12345-"


def test_dropped_connection_mid_body_is_resumed(loopback_server, session, tmp_path):
    data = payload(50_000)
    loopback_server.add_file("a.bin", data)
    loopback_server.faults["/a.bin"] = Fault(drop_mid_body=2)
    dest = tmp_path / "a.bin"
    download(session, loopback_server.url_for("a.bin"), dest, FAST)
    assert dest.read_bytes() == data
    reqs = loopback_server.requests_for("/a.bin")
    assert len(reqs) == 3
    assert "Range" not in reqs[0].headers
    # each retry asks only for what is missing
    assert reqs[1].headers["Range"] == f"bytes={len(data) // 2}-"
    assert reqs[2].headers["Range"].startswith("bytes=")


def test_server_errors_then_success(loopback_server, session, tmp_path):
    data = payload()
    loopback_server.add_file("a.bin", data)
    loopback_server.faults["/a.bin"] = Fault(fail_500=2)
    dest = tmp_path / "a.bin"
    download(session, loopback_server.url_for("a.bin"), dest, FAST)
    assert dest.read_bytes() == data
    assert loopback_server.count("/a.bin") == 3


def test_429_honours_retry_after(loopback_server, session, tmp_path):
    data = payload()
    loopback_server.add_file("a.bin", data)
    loopback_server.faults["/a.bin"] = Fault(fail_429=1, retry_after="7")
    waits: list[float] = []
    cfg = HttpConfig(timeout_s=2.0, retries=2, backoff_s=0.01, max_backoff_s=30.0, concurrency=1)
    download(session, loopback_server.url_for("a.bin"), tmp_path / "a.bin", cfg, sleep=waits.append)
    assert (tmp_path / "a.bin").read_bytes() == data
    assert waits == [7.0]  # the server's wait, not the 0.01 s backoff


def test_retry_after_is_capped_by_max_backoff(loopback_server, session, tmp_path):
    loopback_server.add_file("a.bin", payload())
    loopback_server.faults["/a.bin"] = Fault(fail_429=1, retry_after="3600")
    waits: list[float] = []
    download(session, loopback_server.url_for("a.bin"), tmp_path / "a.bin", FAST, sleep=waits.append)
    assert waits == [FAST.max_backoff_s]


def test_retries_exhausted_raises_without_credentials(loopback_server, tmp_path, caplog):
    loopback_server.add_file("a.bin", payload())
    loopback_server.faults["/a.bin"] = Fault(fail_500=100)
    url = loopback_server.url_for("a.bin", userinfo="alice:s3cretpw")
    dest = tmp_path / "a.bin"
    s = make_session(FAST, auth=("bob", "apikey-xyz-123"))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FetchError) as info:
        download(s, url, dest, FAST)
    s.close()
    exc = info.value
    assert loopback_server.count("/a.bin") == FAST.retries + 1
    assert not dest.exists()
    text = str(exc) + "".join(traceback.format_exception(exc)) + caplog.text
    for secret in ("s3cretpw", "apikey-xyz-123"):
        assert secret not in text
    assert "HTTP 500" in str(exc) and "4 attempts" in str(exc)
    assert "127.0.0.1" in str(exc) and "a.bin" in str(exc)


@pytest.mark.parametrize("status,cls", [(404, NotFoundError), (410, NotFoundError), (403, FetchError)])
def test_permanent_errors_fail_at_once(loopback_server, session, tmp_path, status, cls):
    loopback_server.faults["/gone.bin"] = Fault(status=status)
    with pytest.raises(cls) as info:
        download(session, loopback_server.url_for("gone.bin"), tmp_path / "gone.bin", FAST)
    assert info.value.status == status
    assert loopback_server.count("/gone.bin") == 1
    assert not (tmp_path / "gone.bin").exists()


def test_missing_file_is_not_found(loopback_server, session, tmp_path):
    with pytest.raises(NotFoundError, match="404"):
        download(session, loopback_server.url_for("nope.bin"), tmp_path / "nope.bin", FAST)


def test_slow_server_times_out_then_resumes(loopback_server, session, tmp_path):
    data = payload(30_000)
    loopback_server.add_file("a.bin", data)
    loopback_server.faults["/a.bin"] = Fault(slow_s=0.5, slow_requests=1, chunk=10_000)
    cfg = HttpConfig(timeout_s=0.2, retries=2, backoff_s=0.01, max_backoff_s=0.05, concurrency=1)
    t0 = time.monotonic()
    download(session, loopback_server.url_for("a.bin"), tmp_path / "a.bin", cfg)
    assert (tmp_path / "a.bin").read_bytes() == data
    assert loopback_server.count("/a.bin") == 2
    assert time.monotonic() - t0 < 3


def test_always_slow_server_fails_cleanly(loopback_server, session, tmp_path):
    loopback_server.add_file("a.bin", payload(30_000))
    loopback_server.faults["/a.bin"] = Fault(slow_s=0.5, chunk=10_000)
    cfg = HttpConfig(timeout_s=0.15, retries=1, backoff_s=0.01, max_backoff_s=0.05, concurrency=1)
    with pytest.raises(FetchError, match="timeout|timed out"):
        download(session, loopback_server.url_for("a.bin"), tmp_path / "a.bin", cfg)
    assert not (tmp_path / "a.bin").exists()
    assert loopback_server.count("/a.bin") == 2


def test_server_ignoring_range_restarts_from_zero(loopback_server, session, tmp_path):
    data = payload()
    loopback_server.add_file("a.bin", data)
    loopback_server.faults["/a.bin"] = Fault(ignore_range=True)
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(b"garbage-that-must-not-survive" * 100)
    download(session, loopback_server.url_for("a.bin"), dest, FAST)
    assert dest.read_bytes() == data
    assert loopback_server.requests_for("/a.bin")[0].headers["Range"].startswith("bytes=")


def test_416_with_complete_part_finishes(loopback_server, session, tmp_path):
    data = payload()
    loopback_server.add_file("a.bin", data)
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(data)  # killed after the last byte, before the rename
    download(session, loopback_server.url_for("a.bin"), dest, FAST)
    assert dest.read_bytes() == data
    assert loopback_server.count("/a.bin") == 1


def test_416_with_oversized_part_restarts(loopback_server, session, tmp_path):
    data = payload()
    loopback_server.add_file("a.bin", data)
    dest = tmp_path / "a.bin"
    part_path(dest).write_bytes(data + b"extra")
    download(session, loopback_server.url_for("a.bin"), dest, FAST)
    assert dest.read_bytes() == data
    reqs = loopback_server.requests_for("/a.bin")
    assert [("Range" in r.headers) for r in reqs] == [True, False]


def test_download_many_bounded_concurrency_and_per_job_failures(loopback_server, session, tmp_path):
    files = {f"f{i}.bin": payload(16_000, seed=i) for i in range(6)}
    for name, data in files.items():
        loopback_server.add_file(name, data)
        loopback_server.faults["/" + name] = Fault(slow_s=0.03, chunk=4000)
    loopback_server.faults["/broken.bin"] = Fault(fail_500=100)
    out = tmp_path / "out"
    out.mkdir()
    (out / "done.bin").write_bytes(b"already here")
    jobs = [(loopback_server.url_for(n), out / n) for n in files]
    jobs += [(loopback_server.url_for("missing.bin"), out / "missing.bin"),
             (loopback_server.url_for("broken.bin"), out / "broken.bin"),
             (loopback_server.url_for("done.bin"), out / "done.bin")]
    cfg = HttpConfig(timeout_s=2.0, retries=1, backoff_s=0.01, max_backoff_s=0.02, concurrency=2)
    results = download_many(session, jobs, cfg)
    assert set(results) == {dest for _, dest in jobs}
    for name, data in files.items():
        assert results[out / name] is None
        assert (out / name).read_bytes() == data
    assert "404" in results[out / "missing.bin"]
    assert "HTTP 500" in results[out / "broken.bin"]
    assert results[out / "done.bin"] is None and loopback_server.count("/done.bin") == 0
    assert not (out / "missing.bin").exists() and not (out / "broken.bin").exists()
    assert loopback_server.max_concurrent <= cfg.concurrency
    assert loopback_server.max_concurrent == 2  # and it did run in parallel


def test_download_many_rejects_conflicting_destinations(session, tmp_path):
    with pytest.raises(ValueError, match="two different URLs"):
        download_many(session, [("http://127.0.0.1:9/a", tmp_path / "x"),
                                ("http://127.0.0.1:9/b", tmp_path / "x")], FAST)


def test_connection_refused_is_retried_then_fails(session, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    with pytest.raises(FetchError, match="connection error"):
        download(session, f"http://127.0.0.1:{port}/a.bin", tmp_path / "a.bin", FAST, sleep=waits.append)
    assert len(waits) == FAST.retries


# --------------------------------------------------------------------------- join_url


def test_join_url_quotes_segments():
    assert join_url("https://mirror.example/danbooru2020", "512px/0001/1001.jpg") == \
        "https://mirror.example/danbooru2020/512px/0001/1001.jpg"
    assert join_url("http://h.example/root/", "metadata/a b#c?.json") == \
        "http://h.example/root/metadata/a%20b%23c%3F.json"


@pytest.mark.parametrize("base", ["file:///etc", "ftp://mirror.example/x", "mirror.example/x", "http://"])
def test_join_url_rejects_bad_base(base):
    with pytest.raises(ValueError) as info:
        join_url(base, "a.jpg")
    if "://" in base and base != "http://":
        assert base.split(":")[0] in str(info.value)


@pytest.mark.parametrize("rel", ["../etc/passwd", "a/../../b", "/abs/path", "", "a//b", "http://evil/x",
                                 "a\\..\\b"])
def test_join_url_rejects_bad_relative(rel):
    with pytest.raises(ValueError):
        join_url("https://mirror.example/root", rel)


def test_join_url_error_hides_credentials():
    with pytest.raises(ValueError) as info:
        join_url("ftp://user:hunter22@mirror.example/", "a")
    assert "hunter22" not in str(info.value)


# --------------------------------------------------------------------------- helpers


def test_backoff_doubles_with_jitter_and_cap():
    cfg = HttpConfig(backoff_s=1.0, max_backoff_s=5.0)
    d = [backoff_delay(k, cfg) for k in range(5)]
    assert 1.0 <= d[0] <= 1.1 and 2.0 <= d[1] <= 2.2 and 4.0 <= d[2] <= 4.4
    assert d[3] == d[4] == 5.0
    assert backoff_delay(0, cfg, retry_after=3.0) == 3.0
    assert backoff_delay(0, cfg, retry_after=99.0) == 5.0


def test_parse_retry_after_forms():
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_safe_url_masks_userinfo_and_keys():
    shown = safe_url("https://me:pw1234@x.example/posts.json?api_key=abcd&tags=a")
    assert "pw1234" not in shown and "abcd" not in shown and "tags=a" in shown


def test_no_dest_while_downloading(loopback_server, session, tmp_path):
    """Atomicity: during a (dropped) transfer only the .part exists, never dest."""
    loopback_server.add_file("a.bin", payload())
    loopback_server.faults["/a.bin"] = Fault(drop_mid_body=100)
    dest = tmp_path / "a.bin"
    cfg = HttpConfig(timeout_s=2.0, retries=1, backoff_s=0.01, max_backoff_s=0.02, concurrency=1)
    with pytest.raises(FetchError, match="mid-body|short body"):
        download(session, loopback_server.url_for("a.bin"), dest, cfg)
    assert not dest.exists()
    assert 0 < os.path.getsize(part_path(dest)) < len(payload())  # kept for the next run
