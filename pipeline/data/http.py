"""Robust HTTP(S) downloads for the `http` mirror and `danbooru_api` sources.

Why this module exists: a Danbooru2020 mirror serves 16 metadata shards of ~370 MB and
hundreds of thousands of images. Over real networks, connections drop mid-file, servers
answer 5xx or 429 under load, and processes get killed. So every download here

- streams into `<dest>.part` next to `dest` and resumes it with `Range: bytes=N-` (a
  killed run or a dropped connection costs only the missing bytes);
- checks the byte counts the server promised (Content-Length / Content-Range totals),
  because a short body is otherwise indistinguishable from a complete small file;
- retries transient failures (5xx, 429, connection errors, timeouts, truncated bodies)
  with capped exponential backoff plus jitter, honouring Retry-After, and fails at once on
  permanent ones (404/410 -> `NotFoundError`, other 4xx -> `FetchError`);
- finishes with `pipeline.files.commit` (fsync + `os.replace`), so `dest` either does not exist or is complete:
  DVC and the image stage can treat "file exists" as "file is good".

Credentials (user:password@ in a URL, HTTP basic auth) never reach a message or a log:
URLs pass through `safe_url()` and error texts through `_scrub()`.

`call_with_retries()` is the one retry loop of the project; `pipeline.data.danbooru_api`
reuses it rather than growing a second one.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar
from urllib.parse import quote, unquote, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from pipeline.config import HttpConfig, redact_url
from pipeline.files import commit

log = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK_BYTES = 1 << 16
PART_SUFFIX = ".part"

# Statuses that mean "try again later"; every other 4xx is the caller's mistake.
RETRY_STATUSES = frozenset({408, 425, 429})
NOT_FOUND_STATUSES = frozenset({404, 410})

# Network-level failures worth another attempt. requests wraps most urllib3 errors, but a
# body read can still surface urllib3/http.client exceptions directly.
RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,  # includes read timeouts during a streamed body
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,  # dropped connection mid-body
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    http.client.IncompleteRead,
    http.client.RemoteDisconnected,
    ConnectionError,  # builtin: ConnectionResetError, BrokenPipeError, ...
    TimeoutError,
)

_SECRET_QUERY = re.compile(r"(?i)([?&;](?:api_?key|key|login|password|passwd|pass|token|access_token|"
                           r"secret|signature|sig|auth)=)[^&;#]*")


# --------------------------------------------------------------------------- errors


class FetchError(RuntimeError):
    """A download or API request failed for good (after retries, or permanently).

    `url` is already redacted; `status` is the last HTTP status (None for network errors).
    """

    def __init__(self, message: str, *, url: str = "", status: int | None = None,
                 reason: str = ""):
        super().__init__(message)
        self.url = url
        self.status = status
        self.reason = reason or message


class NotFoundError(FetchError):
    """The server says the resource does not exist (404/410): retrying cannot help."""


class RetryableError(FetchError):
    """A transient failure of one attempt; `call_with_retries()` sleeps and tries again.

    `retry_after` is the server's Retry-After in seconds, when it sent one.
    """

    def __init__(self, message: str, *, url: str = "", status: int | None = None,
                 reason: str = "", retry_after: float | None = None):
        super().__init__(message, url=url, status=status, reason=reason)
        self.retry_after = retry_after


# --------------------------------------------------------------------------- urls


def safe_url(url: str) -> str:
    """`url` fit for messages and logs: userinfo and secret-looking query values masked."""
    return _SECRET_QUERY.sub(r"\1***", redact_url(str(url)))


def url_secrets(url: str, auth: tuple[str, str] | None = None) -> tuple[str, ...]:
    """The credential strings that must never appear in a message about `url`."""
    found: list[str] = []
    try:
        parts = urlsplit(str(url))
        for value in (parts.username, parts.password):
            if value:
                found += [value, unquote(value)]
    except ValueError:
        pass
    if auth:
        found += [str(a) for a in auth if a]
    # Very short strings would mangle every message; they are not worth scrubbing.
    return tuple(sorted({s for s in found if len(s) >= 4}, key=len, reverse=True))


def _scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove credentials from an error text (URLs redacted, known secrets masked)."""
    text = safe_url(text)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def join_url(base: str, rel: str) -> str:
    """`base` + a relative file path of the Danbooru layout, each segment percent-quoted.

    Why so strict: `rel` comes from metadata (ids, file extensions), and `base` from
    params.yaml. Only http(s) is allowed (a `file://` or `ftp://` base would turn the
    downloader into a local-file reader or need another client), and `rel` may not climb
    out of the mirror with `..` or replace it with an absolute path or URL.
    """
    if not isinstance(base, str) or not isinstance(rel, str):
        raise TypeError(f"join_url needs two strings, got {type(base).__name__} and {type(rel).__name__}")
    parts = urlsplit(base)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"URL {safe_url(base)!r}: scheme {scheme or '(none)'!r} is not supported; "
                         "use an http:// or https:// base URL")
    if not parts.hostname:
        raise ValueError(f"URL {safe_url(base)!r} has no host name")
    if parts.query or parts.fragment:
        raise ValueError(f"URL {safe_url(base)!r}: a base URL with a query or fragment cannot "
                         "have paths appended; give the mirror's root folder URL")
    if not rel or rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", rel):
        raise ValueError(f"relative path {rel!r} must be a relative path inside the mirror "
                         "(no leading /, no scheme)")
    segments = rel.split("/")
    for seg in segments:
        if seg in ("", ".", "..") or "\\" in seg or any(ord(c) < 32 for c in seg):
            raise ValueError(f"relative path {rel!r}: segment {seg!r} is not allowed "
                             "(empty, '.', '..', backslashes and control characters would "
                             "leave or confuse the mirror layout)")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    quoted = "/".join(quote(seg, safe="") for seg in segments)
    return f"{parts.scheme}://{parts.netloc}{path}{quoted}"


# --------------------------------------------------------------------------- session


class _HostBoundAuth(requests.auth.HTTPBasicAuth):
    """Basic auth sent only to the listed hosts.

    Why: a session that talks to the API also downloads `file_url`s that the API hands
    out, which may point anywhere; the API key must not travel to those hosts.
    """

    def __init__(self, username: str, password: str, hosts: frozenset[str]):
        super().__init__(username, password)
        self.hosts = hosts

    def __call__(self, r):
        host = (urlsplit(r.url).hostname or "").lower()
        if host in self.hosts:
            return super().__call__(r)
        return r

    def __repr__(self) -> str:  # never show the key in a repr
        return f"_HostBoundAuth(hosts={sorted(self.hosts)})"


def make_session(cfg: HttpConfig, auth: tuple[str, str] | None = None, *,
                 auth_hosts: Iterable[str] | None = None) -> requests.Session:
    """A requests Session for `cfg`: pooled connections, an honest User-Agent, no hidden retries.

    The connection pool holds `cfg.concurrency` connections per host so that
    `download_many()`'s threads reuse connections instead of reconnecting. urllib3's own
    retries are off: `call_with_retries()` decides what is retried, so attempts are
    counted and backed off in one place. `auth` is HTTP basic auth; with `auth_hosts` it is
    only sent to those host names (recommended: requests would otherwise send it to
    every host the session talks to).
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=max(1, cfg.concurrency), pool_maxsize=max(1, cfg.concurrency),
                          max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = cfg.user_agent
    if auth is not None:
        if len(auth) != 2 or not all(isinstance(a, str) for a in auth):
            raise TypeError("auth must be a (login, api_key) pair of strings")
        if auth_hosts is not None:
            session.auth = _HostBoundAuth(auth[0], auth[1], frozenset(h.lower() for h in auth_hosts))
        else:
            session.auth = requests.auth.HTTPBasicAuth(auth[0], auth[1])
    return session


# --------------------------------------------------------------------------- retry loop


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date; None when absent/bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def backoff_delay(attempt: int, cfg: HttpConfig, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt + 1` (attempt counts from 0).

    cfg.backoff_s doubling per attempt, plus up to 10 % jitter (so parallel clients that
    failed together do not retry in lock-step), never more than cfg.max_backoff_s. A
    server's Retry-After raises the wait to what it asked for, still capped: a server
    saying "come back in an hour" should fail the run visibly, not hang it.
    """
    rng = rng or random
    base = cfg.backoff_s * (2.0 ** min(attempt, 60))
    delay = base * (1.0 + 0.1 * rng.random())
    if retry_after is not None:
        delay = max(delay, retry_after)
    return max(0.0, min(delay, cfg.max_backoff_s))


def check_response(resp: requests.Response, url: str, secrets: Iterable[str] = ()) -> None:
    """Raise the right error for a non-success status, nothing for 1xx-3xx.

    5xx, 408, 425 and 429 -> RetryableError (with Retry-After); 404/410 -> NotFoundError;
    every other 4xx -> FetchError (a bad request or missing permission won't fix itself).
    The server's short error text (e.g. Danbooru's JSON `message`) is kept for the reader.
    """
    status = resp.status_code
    if status < 400:
        return
    shown = safe_url(url)
    detail = _server_message(resp, secrets)
    reason = f"HTTP {status}{' ' + resp.reason if resp.reason else ''}{': ' + detail if detail else ''}"
    if status >= 500 or status in RETRY_STATUSES:
        raise RetryableError(f"{shown}: {reason}", url=shown, status=status, reason=reason,
                             retry_after=parse_retry_after(resp.headers.get("Retry-After")))
    cls = NotFoundError if status in NOT_FOUND_STATUSES else FetchError
    raise cls(f"{shown}: {reason}", url=shown, status=status, reason=reason)


def _server_message(resp: requests.Response, secrets: Iterable[str]) -> str:
    """A short, scrubbed excerpt of an error body (only read when the body is small)."""
    try:
        length = int(resp.headers.get("Content-Length", "0") or 0)
    except ValueError:
        length = 0
    if length <= 0 or length > 4096:
        return ""
    try:
        body = resp.content[:4096]
    except Exception:  # the body is only decoration of an error: never let it mask the status
        return ""
    text = ""
    if "json" in resp.headers.get("Content-Type", ""):
        try:
            data = resp.json()
            if isinstance(data, dict):
                text = str(data.get("message") or data.get("error") or "")
        except ValueError:
            pass
    if not text:
        text = body.decode("utf-8", "replace") if "text/plain" in resp.headers.get("Content-Type", "") else ""
    text = " ".join(text.split())[:200]
    return _scrub(text, secrets)


def describe_exception(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """A one-line, credential-free reason for a network exception."""
    name = type(exc).__name__
    if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)) or \
            "timed out" in str(exc).lower():
        kind = "timeout"
    elif isinstance(exc, (requests.exceptions.ChunkedEncodingError, http.client.IncompleteRead,
                          urllib3.exceptions.ProtocolError)):
        kind = "connection dropped mid-body"
    else:
        kind = "connection error"
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "..."
    return _scrub(f"{kind} ({name}: {text})", secrets)


def call_with_retries(attempt: Callable[[], T], cfg: HttpConfig, url: str, *,
                      secrets: Iterable[str] = (), sleep: Callable[[float], None] | None = None,
                      what: str = "request") -> T:
    """Run `attempt()` until it succeeds, retrying transient failures up to cfg.retries times.

    `attempt` raises RetryableError (or one of RETRYABLE_EXCEPTIONS) for transient
    failures and FetchError for permanent ones (re-raised at once). Waits follow
    `backoff_delay()`. After the last retry a FetchError names the redacted URL, the
    number of attempts and the last reason; the original exception is not chained, so a
    traceback cannot carry a credential-bearing URL either.
    """
    sleep = sleep or time.sleep
    secrets = tuple(secrets)
    shown = safe_url(url)
    failures = 0
    while True:
        retry_after: float | None = None
        status: int | None = None
        try:
            return attempt()
        except RetryableError as exc:
            reason, retry_after, status = _scrub(exc.reason, secrets), exc.retry_after, exc.status
        except FetchError:
            raise
        except RETRYABLE_EXCEPTIONS as exc:
            reason = describe_exception(exc, secrets)
        failures += 1
        if failures > cfg.retries:
            tries = f"{failures} attempt{'s' if failures != 1 else ''}"
            raise FetchError(f"{what} {shown} failed after {tries}: {reason}", url=shown,
                             status=status, reason=reason) from None
        delay = backoff_delay(failures - 1, cfg, retry_after)
        log.warning("%s %s: %s; retry %d/%d in %.2fs", what, shown, reason, failures, cfg.retries, delay)
        sleep(delay)


# --------------------------------------------------------------------------- download


def part_path(dest: Path) -> Path:
    """Where the in-progress bytes of `dest` live (same folder, so os.replace is atomic)."""
    return dest.with_name(dest.name + PART_SUFFIX)


def _parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """'bytes 100-199/1000' -> (100, 199, 1000); 'bytes */1000' -> (None, None, 1000)."""
    if not value:
        return None, None, None
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*", value)
    if not m:
        return None, None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    end = int(m.group(2)) if m.group(2) is not None else None
    total = int(m.group(3)) if m.group(3) != "*" else None
    return start, end, total


def _int_header(resp: requests.Response, name: str) -> int | None:
    try:
        value = resp.headers.get(name)
        return int(value) if value is not None and value.strip() else None
    except ValueError:
        return None


def _truncate(part: Path) -> None:
    with open(part, "wb"):
        pass


def download(session: requests.Session, url: str, dest: Path, cfg: HttpConfig, *,
             sleep: Callable[[float], None] | None = None) -> Path:
    """Download `url` to `dest` atomically and resumably; return `dest`.

    See the module docstring for the why. Resume rules for an existing `<dest>.part`
    of N bytes: ask `Range: bytes=N-`; 206 from N -> append; 200 -> the server ignored
    the range, start over from byte 0; 416 -> the .part is complete only if the server's
    size (Content-Range `*/total`) equals N, otherwise start over. Raises NotFoundError
    (404/410), FetchError (other 4xx, or retries exhausted); the .part is kept so a later
    run resumes it. `sleep` is injectable for tests.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    secrets = url_secrets(url, _session_auth(session))
    shown = safe_url(url)

    def attempt() -> Path:
        for _ in range(3):  # at most: ranged try -> restart from 0 -> give up this attempt
            outcome = _attempt_once(session, url, shown, part, cfg, secrets)
            if outcome == "done":
                commit(part, dest)
                return dest
            # outcome == "restart": the .part was discarded; ask again from byte 0 right away
        raise RetryableError(f"{shown}: server keeps rejecting the resume range", url=shown,
                             reason="server keeps rejecting the resume range")

    return call_with_retries(attempt, cfg, url, secrets=secrets, sleep=sleep, what="download")


def _session_auth(session: requests.Session) -> tuple[str, str] | None:
    auth = getattr(session, "auth", None)
    if isinstance(auth, requests.auth.HTTPBasicAuth):
        return (str(auth.username), str(auth.password))
    if isinstance(auth, tuple) and len(auth) == 2:
        return (str(auth[0]), str(auth[1]))
    return None


def _iter_body(resp: requests.Response) -> Iterator[bytes]:
    """The body as it arrives, so bytes received before a drop reach the .part file.

    `iter_content(n)` reads n bytes at a time and discards what it buffered when the
    connection drops mid-read; urllib3's `read1()` hands over whatever has arrived.
    decode_content only matters for a server that ignored `Accept-Encoding: identity`.
    """
    raw = resp.raw
    if hasattr(raw, "read1"):
        while True:
            chunk = raw.read1(CHUNK_BYTES, decode_content=True)
            if not chunk:
                return
            yield chunk
    else:  # urllib3 < 2: best effort with small reads
        for chunk in resp.iter_content(chunk_size=8192):
            if chunk:
                yield chunk


def _attempt_once(session: requests.Session, url: str, shown: str, part: Path, cfg: HttpConfig,
                  secrets: tuple[str, ...]) -> str:
    """One HTTP request; returns 'done' (the .part is complete) or 'restart' (.part emptied)."""
    offset = part.stat().st_size if part.exists() else 0
    # identity: byte ranges and Content-Length must refer to the file's own bytes.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    timeout = (cfg.timeout_s, cfg.timeout_s)
    with session.get(url, headers=headers, stream=True, timeout=timeout) as resp:
        status = resp.status_code
        if status == 416 and offset:
            _, _, total = _parse_content_range(resp.headers.get("Content-Range"))
            if total is not None and total == offset:
                return "done"
            log.info("%s: server refused range from %d (size %s); restarting from 0", shown, offset,
                     total if total is not None else "unknown")
            _truncate(part)
            return "restart"
        check_response(resp, url, secrets)
        encoded = resp.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity")
        total: int | None
        if status == 206:
            start, end, total = _parse_content_range(resp.headers.get("Content-Range"))
            if start != offset:
                log.info("%s: asked for bytes from %d, got range %s; restarting from 0", shown, offset,
                         resp.headers.get("Content-Range"))
                _truncate(part)
                return "restart"
            expected = _int_header(resp, "Content-Length")
            if expected is None and end is not None:
                expected = end - start + 1
            mode = "ab" if offset else "wb"
        elif 200 <= status < 300:
            if offset:
                log.info("%s: server ignored the Range request (HTTP %d); restarting from 0", shown, status)
            offset = 0
            expected = None if encoded else _int_header(resp, "Content-Length")
            total = expected
            mode = "wb"
        else:
            reason = f"unexpected HTTP {status} for a download"
            raise FetchError(f"{shown}: {reason}", url=shown, status=status, reason=reason)
        received = 0
        try:
            with open(part, mode) as fh:
                for chunk in _iter_body(resp):
                    fh.write(chunk)
                    received += len(chunk)
        except RETRYABLE_EXCEPTIONS + (urllib3.exceptions.HTTPError,) as exc:
            if encoded:  # decoded bytes cannot be resumed with byte ranges
                _truncate(part)
            raise RetryableError(f"{shown}: {describe_exception(exc, secrets)}", url=shown,
                                 reason=f"{describe_exception(exc, secrets)} after {offset + received} bytes") \
                from None
    if expected is not None and received != expected:
        if received > expected:
            _truncate(part)
        reason = f"short body: got {received} of {expected} bytes" if received < expected else \
            f"body longer than Content-Length ({received} > {expected}); discarded"
        raise RetryableError(f"{shown}: {reason}", url=shown, reason=reason)
    size = part.stat().st_size
    if total is not None and size != total:
        _truncate(part)
        reason = f"size mismatch: have {size} bytes, server says {total}; restarting"
        raise RetryableError(f"{shown}: {reason}", url=shown, reason=reason)
    return "done"


# --------------------------------------------------------------------------- many


def download_many(session: requests.Session, jobs: list[tuple[str, Path]], cfg: HttpConfig,
                  progress: bool = False) -> dict[Path, str | None]:
    """Download many (url, dest) jobs with at most cfg.concurrency at a time.

    Returns {dest: None} for success (or dest already present: existing files are final,
    because `download()` only ever creates them complete) and {dest: reason} for
    failures. One failure never aborts the others: a mirror missing a few images must
    not cost the whole run. The same dest twice with different URLs is a caller bug and
    raises ValueError up front.
    """
    wanted: dict[Path, str] = {}
    for url, dest in jobs:
        dest = Path(dest)
        if dest in wanted and wanted[dest] != url:
            raise ValueError(f"download_many: {dest} is the destination of two different URLs "
                             f"({safe_url(wanted[dest])} and {safe_url(url)})")
        wanted[dest] = url
    results: dict[Path, str | None] = {}
    todo = []
    for dest, url in wanted.items():
        if dest.exists():
            results[dest] = None
        else:
            todo.append((url, dest))
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(wanted), initial=len(wanted) - len(todo), desc="download", unit="file")

    def one(url: str, dest: Path) -> str | None:
        try:
            download(session, url, dest, cfg)
            return None
        except FetchError as exc:
            return str(exc)
        except Exception as exc:  # a local disk error for one file must not stop the rest
            return _scrub(f"{type(exc).__name__}: {exc}", url_secrets(url, _session_auth(session)))

    try:
        with ThreadPoolExecutor(max_workers=max(1, cfg.concurrency), thread_name_prefix="download") as pool:
            futures = {pool.submit(one, url, dest): dest for url, dest in todo}
            for fut in as_completed(futures):
                dest = futures[fut]
                reason = fut.result()
                results[dest] = reason
                if reason is not None:
                    log.warning("download failed: %s", reason)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    failed = sum(1 for r in results.values() if r)
    if failed:
        log.warning("%d of %d downloads failed", failed, len(results))
    return results


__all__ = [
    "FetchError", "NotFoundError", "RetryableError", "backoff_delay", "call_with_retries",
    "check_response", "download", "download_many", "join_url", "make_session", "parse_retry_after",
    "part_path", "safe_url", "url_secrets",
]
