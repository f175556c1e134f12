"""`onepunch serve`: a local web page to colorize a page with hints and take the layers home.

A Starlette app (`create_app`) served by uvicorn on 127.0.0.1 unless told otherwise. The
page (`serve_page.html`) loads nothing from outside the machine: its script and styles are
inline. What it does with the server:

    POST /api/regions    multipart: `page`, header X-Session -> the URL of regions.png, the
                         page's regions (`pipeline.colorist.regions`) as label ids in RGB,
                         which the page uses to show what a dot will fill before colorizing
    POST /api/colorize   multipart: `page` (an image file), `hints` (JSON points
                         [{"x", "y", "color"}] in page pixels), `auto` (network | none),
                         `tone` (descreen | keep), header X-Session (the tab's random token)
                         -> the result's URLs and size, or {"error": ...}
    GET  /api/result/{session}/{result}/{name}   name: page.png, color.png, ink.png, page.psd,
                         regions.png
    POST /api/end        header X-Session: the tab is gone, its files are removed

Safe by default: an upload is refused past `max_bytes` (read in chunks, never whole) or
`max_pixels` (the CLI's decompression-bomb guard); an uploaded name never becomes a path
(results are stored under random names in the session's own folder); a session token is
32 random hex digits made by each tab, so two tabs never see each other's pages; a session
idle for `session_ttl_s` is removed (by a timer, and on access: an expired result is a 404
even before the timer runs), and the whole temporary folder when the server stops. Requests
whose Host header is not this machine's are refused (`host_allowed`), so a page on another
site cannot reach the server by rebinding its own name to 127.0.0.1.
The model is loaded once, when the app is made, so a file that cannot serve stops the start
by name; pages are colorized one at a time (a lock), off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PAGE = Path(__file__).with_name("serve_page.html")
SESSION = re.compile(r"^[0-9a-f]{32}$")
RESULT_NAMES = {"page.png": "image/png", "color.png": "image/png", "ink.png": "image/png",
                "page.psd": "image/vnd.adobe.photoshop", "regions.png": "image/png"}
COLORIZED = ("page.png", "color.png", "ink.png", "page.psd")  # what /api/colorize writes
CHOICES = {"auto": ("network", "none"), "tone": ("descreen", "keep")}
UPLOAD_MB = (0.1, 1000.0)  # `--max-mb`: below, no page fits; above, one upload could fill the memory
PAGE_MEGAPIXELS = (0.01, 1000.0)  # `--max-megapixels` (the CLI's `colorize` takes up to 200 by default)
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")  # binds that listen on every address of the machine


@dataclass
class ServeSettings:
    colorizer: Path
    scan_model: Path | None = None
    device: str = "auto"
    max_bytes: int = 40_000_000
    max_pixels: int = 40_000_000
    session_ttl_s: float = 3600.0
    root: Path | None = None  # the temporary folder (made when None)
    host: str = "127.0.0.1"  # the address bound: the Host headers answered (`host_allowed`)
    clock: Callable[[], float] = time.monotonic  # for the idle expiry (tests move their own)


@dataclass
class _State:
    settings: ServeSettings
    root: Path
    networks: object  # pipeline.colorist.page.Networks
    seen: dict[str, float] = field(default_factory=dict)  # session -> last use (settings.clock)
    busy: dict[str, int] = field(default_factory=dict)  # session -> requests in flight (never expired)
    lock: threading.Lock = field(default_factory=threading.Lock)


class UploadError(ValueError):
    """A bad upload: the message is shown on the page."""


def _one_line(message: str, limit: int = 300) -> str:
    """The first line of `message`, cut at its first sentence when long (torch's load errors
    run to paragraphs, and advise loading the file with `weights_only=False`)."""
    line = (message.strip().splitlines() or [""])[0]
    if len(line) > limit:
        end = line.find(". ")
        line = line[:end + 1] if 0 < end < limit else line[:limit] + "..."
        line += ")" * (line.count("(") - line.count(")"))
    return line


def load_served_networks(settings: ServeSettings):
    """The networks, loaded once before serving: a model file that cannot serve (unreadable,
    foreign, code instead of weights, weights that do not fit) raises ValueError, one line
    naming the file, instead of making every request a 500."""
    from pipeline.colorist.page import Networks, load_networks
    from pipeline.runtime import setup_runtime

    rt = setup_runtime(settings.device, autotune=False)  # a missing CUDA device is not the model's fault

    def checked(path: Path, colorizer: Path | None, scan_model: Path | None):
        try:
            return load_networks(colorizer, scan_model, settings.device)
        except (FileNotFoundError, ValueError) as exc:  # the loader's messages name the file
            raise ValueError(_one_line(str(exc))) from None
        except (RuntimeError, MemoryError) as exc:  # e.g. an architecture too large to build
            raise ValueError(_one_line(f"{path}: cannot build the network it declares "
                                       f"({type(exc).__name__}: {exc})")) from None

    colorizer = checked(settings.colorizer, settings.colorizer, None).colorizer
    scan_generator = (checked(settings.scan_model, None, settings.scan_model).scan_generator
                      if settings.scan_model is not None else None)
    return Networks(colorizer, scan_generator, rt.device)


def host_allowed(header: str | None, bound: str) -> bool:
    """Whether a request's Host header names this server: a localhost name (any port), the
    address it was bound to, or, bound to every address (0.0.0.0, ::), any IP address or
    this machine's name. Another name is a page on another site that rebound its name to
    this machine (DNS rebinding): browsers send that site's name."""
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(?::[0-9]{1,5})?", header or "")
    if match is None:
        return False
    name = match.group(1).strip("[]").lower()
    bound = bound.strip("[]").lower()
    if name in LOCAL_NAMES or name == bound:
        return True
    if bound not in WILDCARDS:
        return False
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(name)
        return True
    return name in _machine_names()


@functools.lru_cache(maxsize=1)
def _machine_names() -> frozenset[str]:
    return frozenset({socket.gethostname().lower(), socket.getfqdn().lower()})  # getfqdn may ask DNS: once


def _decode(state: _State, data: bytes):
    from pipeline.imaging import DecodeError, decode_image

    try:
        return decode_image(data, max_pixels=state.settings.max_pixels, name="the upload", max_aspect=1000)
    except DecodeError as exc:
        raise UploadError(f"not a page this can read: {exc.reason.replace('_', ' ')} ({exc.detail})") from None


def _result_folder(state: _State, session: str, write) -> dict:
    """A fresh result folder for `write(folder) -> dict`; removed whole if writing fails."""
    folder = state.root / session / uuid.uuid4().hex
    folder.mkdir(parents=True)
    try:
        return write(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing half-written is left behind
        raise


def colorize_upload(state: _State, session: str, data: bytes, hints_text: str, auto: str = "network",
                    tone: str = "descreen") -> dict:
    """Decode, colorize (with hints), write the four results; returns their URLs."""
    img = _decode(state, data)
    return _result_folder(state, session, lambda folder: _colorize_into(state, folder, session, img, hints_text,
                                                                        state.networks, auto, tone))


def regions_upload(state: _State, session: str, data: bytes) -> dict:
    """The page's regions as a label image: what each dot will fill (`pipeline.colorist.regions`)."""
    import numpy as np
    from PIL import Image

    from pipeline.colorist.regions import regions

    img = _decode(state, data)

    def write(folder: Path) -> dict:
        with state.lock:
            labels, n = regions(np.asarray(img.convert("L")))
        rgb = np.stack([labels & 255, (labels >> 8) & 255, (labels >> 16) & 255], -1).astype(np.uint8)
        Image.fromarray(rgb, "RGB").save(folder / "regions.png")
        return {"width": img.width, "height": img.height, "regions": n,
                "regions_png": f"/api/result/{session}/{folder.name}/regions.png"}

    return _result_folder(state, session, write)


def _colorize_into(state: _State, folder: Path, session: str, img, hints_text: str, nets, auto: str,
                   tone: str) -> dict:
    import numpy as np
    from PIL import Image

    from pipeline.colorist.hint_files import hints_from_points, parse_points
    from pipeline.colorist.ink import compose
    from pipeline.colorist.page import colorize_layers
    from pipeline.colorist.psd import write_psd
    from pipeline.models.colorizer import require_hints
    from pipeline.runtime import resolve_precision

    hints = None
    try:
        points = parse_points(hints_text, "the hints") if hints_text.strip() else []
    except ValueError as exc:  # HintFileError: not JSON, a 5000-digit number, nested too deeply
        raise UploadError(str(exc)) from None
    if points:
        try:
            if auto == "network":
                require_hints(nets.colorizer)
            hints = hints_from_points(points, img.size, "the hints")
        except ValueError as exc:  # HintFileError too
            raise UploadError(str(exc)) from None
        except RecursionError:
            raise UploadError("the hints: nested too deeply (expected a flat list of points)") from None
    with state.lock:
        try:
            colors, line_art = colorize_layers(nets.colorizer, nets.scan_generator, img, None, nets.device, "auto",
                                               resolve_precision("auto", nets.device), hints, auto)
        except ValueError as exc:  # a colored page without a scan generator
            raise UploadError(str(exc)) from None
    page = compose(colors, line_art, "multiply", tone)
    page.save(folder / "page.png")
    colors.save(folder / "color.png")
    ink = np.array(line_art.convert("L"))
    Image.fromarray(np.dstack([np.zeros_like(ink)] * 3 + [255 - ink]), "RGBA").save(folder / "ink.png")
    write_psd(folder / "page.psd", colors, line_art, tone=tone)
    base = f"/api/result/{session}/{folder.name}"
    return {"width": img.width, "height": img.height, **{n.replace(".", "_"): f"{base}/{n}" for n in COLORIZED}}


def _expire(state: _State) -> None:
    """Remove every session idle past the TTL (one with a request in flight is not idle)."""
    now = state.settings.clock()
    for session, last in list(state.seen.items()):
        if now - last > state.settings.session_ttl_s and not state.busy.get(session):
            shutil.rmtree(state.root / session, ignore_errors=True)
            del state.seen[session]


@contextlib.contextmanager
def _in_flight(state: _State, session: str):
    """Mark `session` busy while a request works on it; its idle time starts when it is done."""
    state.busy[session] = state.busy.get(session, 0) + 1
    try:
        yield
    finally:
        state.busy[session] -= 1
        if not state.busy[session]:
            del state.busy[session]
        state.seen[session] = state.settings.clock()


async def _expire_every(state: _State, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        _expire(state)


def create_app(settings: ServeSettings):
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    networks = load_served_networks(settings)  # before the folder: a refused start leaves nothing
    root = Path(settings.root) if settings.root else Path(tempfile.mkdtemp(prefix="onepunch-serve-"))
    state = _State(settings, root, networks)

    def session_of(request: Request) -> str | None:
        token = request.headers.get("x-session", "")
        return token if SESSION.match(token) else None

    async def index(request: Request) -> Response:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"),
                            headers={"Content-Security-Policy": "default-src 'self' 'unsafe-inline' blob: data:"})

    async def read_upload(request: Request, fields: tuple[str, ...]):
        """(session, page bytes, {field: text}) of a multipart upload, or an error response."""
        session = session_of(request)
        if session is None:
            return JSONResponse({"error": "no session: reload the page"}, status_code=400)
        if not (request.headers.get("content-length") or "").isdigit():  # chunked: no size to check up front
            return JSONResponse({"error": "uploads need a Content-Length (every browser sends one)"}, status_code=411)
        declared = int(request.headers["content-length"])
        if declared > settings.max_bytes + 100_000:
            return JSONResponse({"error": f"the upload is {declared:,} bytes; the limit is {settings.max_bytes:,}"},
                                status_code=413)
        try:
            async with request.form(max_files=1, max_fields=4, max_part_size=settings.max_bytes) as form:
                upload = form.get("page")
                if upload is None or isinstance(upload, str):
                    return JSONResponse({"error": "no page in the upload: pick an image file"}, status_code=400)
                data = await upload.read(settings.max_bytes + 1)
                values = {name: str(form.get(name) or "") for name in fields}
        except (HTTPException, MultiPartException) as exc:  # multipart limits: a part too large, too many files
            return JSONResponse({"error": f"the upload was refused: {getattr(exc, 'detail', exc)}"},
                                status_code=413)
        if len(data) > settings.max_bytes:
            return JSONResponse({"error": f"the upload is over the limit of {settings.max_bytes:,} bytes"},
                                status_code=413)
        for name, allowed in CHOICES.items():
            if name in values and values[name] and values[name] not in allowed:
                return JSONResponse({"error": f"{name} {values[name]!r}: allowed values are {', '.join(allowed)}"},
                                    status_code=400)
        _expire(state)
        state.seen[session] = settings.clock()
        return session, data, values

    async def colorize(request: Request) -> Response:
        upload = await read_upload(request, ("hints", "auto", "tone"))
        if isinstance(upload, Response):
            return upload
        session, data, values = upload
        try:
            with _in_flight(state, session):
                result = await run_in_threadpool(colorize_upload, state, session, data, values["hints"],
                                                 values["auto"] or "network", values["tone"] or "descreen")
        except UploadError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(result)

    async def regions(request: Request) -> Response:
        upload = await read_upload(request, ())
        if isinstance(upload, Response):
            return upload
        session, data, _ = upload
        try:
            with _in_flight(state, session):
                return JSONResponse(await run_in_threadpool(regions_upload, state, session, data))
        except UploadError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    async def result(request: Request) -> Response:
        session, rid, name = (request.path_params[k] for k in ("session", "result", "name"))
        if not SESSION.match(session) or not re.match(r"^[0-9a-f]{32}$", rid) or name not in RESULT_NAMES:
            return JSONResponse({"error": "no such result"}, status_code=404)
        _expire(state)  # on access too: the timer may not have run since the session went idle
        path = state.root / session / rid / name
        if session not in state.seen or not path.is_file():
            return JSONResponse({"error": "no such result (the session ended or expired: colorize the page again)"},
                                status_code=404)
        state.seen[session] = settings.clock()
        return FileResponse(path, media_type=RESULT_NAMES[name],
                            headers={"Content-Disposition": f'attachment; filename="colorized-{name}"'}
                            if request.query_params.get("download") else None)

    async def end(request: Request) -> Response:
        session = session_of(request) or request.query_params.get("session", "")
        if SESSION.match(session):
            shutil.rmtree(state.root / session, ignore_errors=True)
            state.seen.pop(session, None)
        return JSONResponse({"ended": True})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        sweeper = asyncio.ensure_future(_expire_every(state, min(60.0, max(1.0, settings.session_ttl_s / 10))))
        try:
            yield
        finally:  # the server stops: every session's files go
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            shutil.rmtree(root, ignore_errors=True)

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    app = Starlette(routes=[Route("/", index), Route("/favicon.ico", favicon),
                            Route("/api/colorize", colorize, methods=["POST"]),
                            Route("/api/regions", regions, methods=["POST"]),
                            Route("/api/result/{session}/{result}/{name}", result),
                            Route("/api/end", end, methods=["POST"])], lifespan=lifespan,
                    middleware=[Middleware(_HostCheck, bound=settings.host)])
    app.state.serve = state
    return app


class _HostCheck:
    """ASGI middleware: a request whose Host header is not this server's gets a 400 (`host_allowed`)."""

    def __init__(self, app, bound: str):
        self.app, self.bound = app, bound

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if not host_allowed(host, self.bound):
                from starlette.responses import JSONResponse

                bound = self.bound.strip("[]")
                allowed = ("localhost, 127.0.0.1, [::1]"
                           + (" or an address or name of this machine" if bound in WILDCARDS
                              else "" if bound in LOCAL_NAMES else f" or {self.bound}"))
                response = JSONResponse({"error": f"Host {host!r} refused: this server answers to {allowed} "
                                                  "(a page on another site cannot use it)"}, status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
