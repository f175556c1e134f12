"""A loopback HTTP server with fault injection, for testing downloads and the API source.

Why: the network failure modes `pipeline.data.http` must survive (5xx, 429, connections
dropped mid-body, stalls, servers that ignore Range) cannot be produced reliably by a
real host, and the tests must never leave the machine. This server binds 127.0.0.1 on an
ephemeral port, serves files from a folder with HTTP/1.1 keep-alive and byte ranges,
and misbehaves on request, per path:

    srv.faults["/a.bin"] = Fault(fail_500=2, drop_mid_body=1, slow_s=0.5, ignore_range=True)

It also fakes Danbooru's `/posts.json` from an in-memory list (`srv.api_posts`),
honouring `limit`, `page=b<id>` and plain tag filters. Every request is recorded
(path, query, headers) and the peak number of concurrent requests is tracked.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Fault:
    """Misbehaviour for one path. Counters apply to the first N requests of that path."""

    fail_500: int = 0  # answer 500 to the first N requests
    fail_429: int = 0  # answer 429 (with Retry-After) to the first N requests
    retry_after: str | None = "0"  # Retry-After header of the 429s (None: no header)
    drop_mid_body: int = 0  # first N: full Content-Length, half the body, then close
    slow_s: float = 0.0  # sleep before each body chunk
    slow_requests: int | None = None  # how many requests are slow (None: all)
    ignore_range: bool = False  # answer 200 with the whole file even when asked for a range
    status: int | None = None  # always answer with this status (e.g. 404, 403)
    chunk: int = 8192  # body chunk size (granularity of slow/drop)


@dataclass
class Request:
    """What the server saw of one request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw_query: str = ""


@dataclass
class LoopbackServer:
    """Start with `start()` (or use the `loopback_server` fixture); stop with `stop()`."""

    root: Path
    faults: dict[str, Fault] = field(default_factory=dict)
    api_posts: list[dict] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    max_concurrent: int = 0
    _active: int = 0
    _counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "LoopbackServer":
        server = self

        class Handler(_Handler):
            srv = server

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # a stalled "slow" handler must not hang stop()
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, path: str, userinfo: str = "") -> str:
        """Absolute URL of `path` (e.g. '/a.bin'), optionally with 'user:pass@'."""
        return f"http://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}/{path.lstrip('/')}"

    # ------------------------------------------------------------------ helpers

    def add_file(self, rel: str, data: bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def count(self, path: str) -> int:
        """Requests seen for `path` so far."""
        with self._lock:
            return self._counts.get(path, 0)

    def requests_for(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _begin(self, req: Request) -> int:
        with self._lock:
            self.requests.append(req)
            n = self._counts.get(req.path, 0)
            self._counts[req.path] = n + 1
            self._active += 1
            self.max_concurrent = max(self.max_concurrent, self._active)
            return n  # index of this request for its path (0 = first)

    def _end(self) -> None:
        with self._lock:
            self._active -= 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool matters
    srv: LoopbackServer

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        req = Request("GET", path, parse_qs(parts.query, keep_blank_values=True),
                      {k: v for k, v in self.headers.items()}, parts.query)
        index = self.srv._begin(req)
        try:
            self._serve(path, req, index)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        finally:
            self.srv._end()

    # ------------------------------------------------------------------ dispatch

    def _serve(self, path: str, req: Request, index: int) -> None:
        fault = self.srv.faults.get(path, Fault())
        if fault.status is not None:
            return self._simple(fault.status, f"forced status {fault.status}\n")
        if index < fault.fail_500:
            return self._simple(500, "injected failure\n")
        if index < fault.fail_500 + fault.fail_429:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return self._simple(429, "slow down\n", extra)
        if path == "/posts.json":
            return self._api(req, fault, index)
        return self._file(path, fault, index)

    def _simple(self, status: int, text: str, headers: dict | None = None) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _file(self, path: str, fault: Fault, index: int) -> None:
        root = self.srv.root.resolve()
        full = (root / path.lstrip("/")).resolve()
        if root not in full.parents or not full.is_file():
            return self._simple(404, "not found\n")
        data = full.read_bytes()
        size = len(data)
        start, end = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and not fault.ignore_range:
            spec = rng.strip().removeprefix("bytes=")
            first, _, last = spec.partition("-")
            start = int(first) if first else 0
            end = min(int(last), size - 1) if last else size - 1
            if start >= size:
                return self._simple(416, "range not satisfiable\n", {"Content-Range": f"bytes */{size}"})
            status = 206
        body = data[start:end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        self._body(body, fault, index)

    def _body(self, body: bytes, fault: Fault, index: int) -> None:
        drop = index < fault.fail_500 + fault.fail_429 + fault.drop_mid_body
        slow = fault.slow_s > 0 and (fault.slow_requests is None
                                     or index < fault.fail_500 + fault.fail_429 + fault.slow_requests)
        if drop:
            body = body[: len(body) // 2]
        for i in range(0, len(body), fault.chunk):
            if slow:
                time.sleep(fault.slow_s)
            self.wfile.write(body[i:i + fault.chunk])
        if drop:
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _api(self, req: Request, fault: Fault, index: int) -> None:
        q = {k: v[-1] for k, v in req.query.items()}
        try:
            limit = max(1, min(200, int(q.get("limit", "20"))))
        except ValueError:
            return self._json(422, {"success": False, "message": "bad limit"})
        posts = sorted(self.srv.api_posts, key=lambda p: -int(p.get("id") or 0))
        wanted = [t for t in q.get("tags", "").split() if ":" not in t]
        if wanted:
            posts = [p for p in posts
                     if set(wanted) <= set(" ".join(str(p.get(k, "")) for k in p
                                                    if k.startswith("tag_string")).split())]
        page = q.get("page", "")
        if page.startswith("b"):
            below = int(page[1:])
            posts = [p for p in posts if 0 < int(p.get("id") or 0) < below]  # id-less: page 1 only
        elif page.startswith("a"):
            above = int(page[1:])
            posts = sorted((p for p in posts if int(p.get("id") or 0) > above), key=lambda p: int(p["id"]))
        elif page:
            posts = posts[(int(page) - 1) * limit:]
        self._json(200, posts[:limit], fault, index)

    def _json(self, status: int, obj, fault: Fault | None = None, index: int = 0) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._body(body, fault or Fault(), index)
