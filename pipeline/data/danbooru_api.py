"""The live Danbooru JSON API as a metadata source, normalised to Danbooru2020 records.

Why: Danbooru2020 is a frozen 2020 snapshot; the API gives newer posts or a quick,
tag-filtered sample without a 6 TB mirror. Everything downstream (the metadata parser,
the tag filter, the image stage) only knows the Danbooru2020 record format, so posts
are converted here, through `pipeline.data.danbooru.dump_record()`, and nowhere else.

Being a good API citizen is part of the contract: an honest User-Agent (from params),
a client-side rate limit (`api.requests_per_s`), Retry-After honoured on 429, and
`page=b<id>` paging (keyset paging: stable while new posts arrive, and not subject to
the numbered-page limit). Transient failures reuse `pipeline.data.http.call_with_retries`.

Credentials are optional (env DANBOORU_LOGIN / DANBOORU_API_KEY, HTTP basic auth, only
sent to the API host) and are never logged or written to any file.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import requests

from pipeline.config import ApiConfig, HttpConfig, SourceConfig
from pipeline.data.danbooru import TAG_CATEGORIES, dump_record
from pipeline.data.http import (
    FetchError,
    RetryableError,
    call_with_retries,
    check_response,
    join_url,
    make_session,
    safe_url,
    url_secrets,
)
from pipeline.files import atomic_path

log = logging.getLogger(__name__)

PAGE_LIMIT = 200  # Danbooru's maximum page size for /posts.json
OUTPUT_NAME = "api-posts.jsonl"
ENV_LOGIN = "DANBOORU_LOGIN"
ENV_API_KEY = "DANBOORU_API_KEY"

# Modern Danbooru (since 2022) splits the old "s" (safe) into "g" (general) and
# "s" (sensitive). Danbooru2020's "s" is the *old* safe, which the project's filter
# treats as SFW. Mapping modern "s" to "q" is conservative: sensitive posts never slip
# into a rating-s (SFW) selection; the cost is losing some posts that 2020 called safe.
RATING_MAP = {"g": "s", "s": "q", "q": "q", "e": "e"}

# tag_string_<category> fields of the modern API -> Danbooru2020 category numbers.
TAG_STRING_FIELDS = tuple((f"tag_string_{name}", cat) for name, cat in TAG_CATEGORIES.items())

_INT_FIELDS = ("uploader_id", "score", "up_score", "down_score", "image_width", "image_height",
               "file_size", "fav_count")
_NULLABLE_IDS = ("parent_id", "approver_id", "pixiv_id")
_TIMESTAMPS = ("created_at", "updated_at", "last_commented_at", "last_noted_at")
_BOOLS = ("is_deleted", "is_banned", "is_pending", "is_flagged", "is_note_locked",
          "is_rating_locked", "is_status_locked", "has_children")


class InvalidPostError(ValueError):
    """An API post cannot become a Danbooru2020 record (no id, unreadable field)."""


# --------------------------------------------------------------------------- rate limit


class RateLimiter:
    """At most `rate` calls per second: each `wait()` starts >= 1/rate after the previous.

    A minimum-interval limiter rather than a token bucket on purpose: the API's limits
    are per second, and bursts gain nothing for a sequential pager. `clock` and `sleep`
    are injectable so tests check the spacing without waiting.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if not rate > 0:
            raise ValueError(f"rate limit {rate!r}: must be > 0 requests per second")
        self.interval = 1.0 / rate
        self.clock = clock
        self.sleep = sleep
        self._next: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until the next call is allowed, then reserve the slot after it."""
        with self._lock:
            now = self.clock()
            if self._next is not None and now < self._next:
                self.sleep(self._next - now)
                now = self._next
            self._next = now + self.interval


# --------------------------------------------------------------------------- paging


def iter_api_posts(session: requests.Session, base_url: str, api: ApiConfig, http: HttpConfig, *,
                   limiter: RateLimiter | None = None, stats: dict | None = None,
                   sleep: Callable[[float], None] | None = None) -> Iterator[dict]:
    """Yield raw API posts, newest first, paging `posts.json` with `page=b<id>`.

    The first request has no `page` when api.start_id is 0 (the newest posts), else
    `page=b<start_id>`; each next page is `b<smallest id of this page>`. Stops on an
    empty page or after api.max_posts posts. Every request (retries included) passes the
    rate limiter. `stats`, when given, receives n_pages. Raises FetchError when the API
    fails for good, or answers something that is not a list of posts.
    """
    url = join_url(base_url, "posts.json")
    limiter = limiter or RateLimiter(api.requests_per_s)
    secrets = url_secrets(url, _auth_of(session))
    shown = safe_url(url)
    cursor: int | None = api.start_id or None
    yielded = 0
    pages = 0
    while yielded < api.max_posts:
        params: dict[str, Any] = {"tags": api.tags, "limit": PAGE_LIMIT}
        if cursor is not None:
            params["page"] = f"b{cursor}"
        page = call_with_retries(lambda: _get_page(session, url, shown, params, http, limiter, secrets),
                                 http, url, secrets=secrets, sleep=sleep, what="API request")
        pages += 1
        if stats is not None:
            stats["n_pages"] = pages
        if not page:
            break
        ids = [i for i in (_post_id(p) for p in page) if i is not None]
        for post in page:
            yield post
            yielded += 1
            if yielded >= api.max_posts:
                break
        if yielded >= api.max_posts:
            break
        if not ids:
            log.warning("%s: page %s had no post ids; cannot page further", shown, params.get("page", "1"))
            break
        lowest = min(ids)
        if cursor is not None and lowest >= cursor:
            raise FetchError(f"{shown}: asked for posts below id {cursor} and got id {lowest}; the "
                             "server ignores page=b<id>, refusing to loop", url=shown)
        cursor = lowest
        if cursor <= 1:
            break


def _get_page(session: requests.Session, url: str, shown: str, params: dict, http: HttpConfig,
              limiter: RateLimiter, secrets: tuple[str, ...]) -> list[dict]:
    """One rate-limited GET of a posts page (transient failures raise for the retry loop)."""
    limiter.wait()
    with session.get(url, params=params, timeout=(http.timeout_s, http.timeout_s),
                     headers={"Accept": "application/json"}) as resp:
        check_response(resp, url, secrets)
        try:
            data = resp.json()
        except ValueError:  # truncated or HTML error page behind a proxy: try again
            raise RetryableError(f"{shown}: response is not JSON", url=shown,
                                 reason=f"HTTP {resp.status_code} response is not JSON") from None
    if isinstance(data, dict) and data.get("success") is False:
        message = str(data.get("message") or data.get("error") or "unknown error")[:200]
        raise FetchError(f"{shown}: the API refused the query: {message}", url=shown)
    if not isinstance(data, list) or not all(isinstance(p, dict) for p in data):
        raise FetchError(f"{shown}: expected a JSON list of posts, got {type(data).__name__}", url=shown)
    return data


def _post_id(post: dict) -> int | None:
    value = post.get("id")
    if isinstance(value, bool):
        return None
    try:
        value = int(value)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def _auth_of(session: requests.Session) -> tuple[str, str] | None:
    auth = getattr(session, "auth", None)
    if isinstance(auth, requests.auth.HTTPBasicAuth):
        return (str(auth.username), str(auth.password))
    return None


# --------------------------------------------------------------------------- normalise


def _int(post: dict, name: str, default: int | None = 0) -> int | None:
    value = post.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise InvalidPostError(f"post {post.get('id')!r}: {name} = {value!r} is not a number")
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidPostError(f"post {post.get('id')!r}: {name} = {value!r} is not an integer")
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise InvalidPostError(f"post {post.get('id')!r}: {name} = {value!r} is not an integer") from None


def _timestamp(post: dict, name: str) -> datetime | None:
    """ISO-8601 with an offset ('2020-01-01T12:34:56.789-05:00', or 'Z') -> aware UTC datetime."""
    value = post.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidPostError(f"post {post.get('id')!r}: {name} = {value!r} is not an ISO-8601 string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidPostError(f"post {post.get('id')!r}: {name} = {value!r} is not an ISO-8601 "
                               "timestamp") from None
    if ts.tzinfo is None:  # the API always sends an offset; a bare time is taken as UTC
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc)


def _tags(post: dict) -> list[tuple[str, int, int]]:
    tags: list[tuple[str, int, int]] = []
    found = False
    for field_name, category in TAG_STRING_FIELDS:
        value = post.get(field_name)
        if value is None:
            continue
        found = True
        if not isinstance(value, str):
            raise InvalidPostError(f"post {post.get('id')!r}: {field_name} = {value!r} is not a string")
        tags += [(name, category, 0) for name in value.split()]
    if not found and isinstance(post.get("tag_string"), str):
        # Older API answers carry only the flat tag_string: categories are unknown -> general.
        tags += [(name, 0, 0) for name in post["tag_string"].split()]
    return tags


def normalize_api_post(post: dict) -> dict:
    """A modern `/posts.json` post -> a Danbooru2020 record (via `dump_record()`).

    Numbers become the dump's strings, null ids become "0", ISO-8601 timestamps with
    offsets become UTC ' UTC' strings (null -> the 1970 null), tag_string_<category>
    fields become {"id": "0", "name", "category"} tags (the API does not give tag ids),
    ratings are mapped by RATING_MAP (see there for why modern 's' becomes 'q'), a
    missing md5 (restricted posts) becomes "". `file_url` is kept when the API gives
    one, so the image stage can fetch the file. `fav_count` is carried as an extra
    string field (Danbooru2020 itself only has the `favs` list, which the API no longer
    exposes). Raises InvalidPostError naming the post and field when it cannot convert.
    """
    if not isinstance(post, dict):
        raise InvalidPostError(f"API post {post!r:.80}: expected a JSON object")
    post_id = _post_id(post)
    if post_id is None:
        raise InvalidPostError(f"API post without a valid id (id = {post.get('id')!r})")
    rating = post.get("rating")
    if rating not in RATING_MAP:
        raise InvalidPostError(f"post {post_id}: rating {rating!r} is not one of g, s, q, e")
    record: dict[str, Any] = {"id": post_id}
    for name in _INT_FIELDS:
        record[name] = _int(post, name)
    for name in _NULLABLE_IDS:
        record[name] = _int(post, name, default=None) or None
    for name in _TIMESTAMPS:
        record[name] = _timestamp(post, name)
    for name in _BOOLS:
        record[name] = bool(post.get(name, False))
    record["rating"] = RATING_MAP[rating]
    ext = post.get("file_ext")
    record["file_ext"] = str(ext).lower() if ext else ""
    record["md5"] = str(post.get("md5") or "")
    record["source"] = str(post.get("source") or "")
    record["tags"] = _tags(post)
    pools = post.get("pool_string")
    if isinstance(pools, str):
        record["pools"] = [p.split(":", 1)[1] for p in pools.split()
                           if p.startswith("pool:") and p.split(":", 1)[1].isdigit()]
    if post.get("file_url"):
        record["file_url"] = str(post["file_url"])
    out = dump_record(record)
    out["fav_count"] = str(record["fav_count"])
    return out


# --------------------------------------------------------------------------- stage entry


def api_credentials(environ: dict | None = None) -> tuple[str, str] | None:
    """(login, api_key) from DANBOORU_LOGIN / DANBOORU_API_KEY, or None for anonymous use.

    Setting only one of the two is almost certainly a mistake (the request would go out
    anonymously and hit the anonymous limits), so it raises, naming the missing variable
    but never printing a value.
    """
    env = os.environ if environ is None else environ
    login = (env.get(ENV_LOGIN) or "").strip()
    key = (env.get(ENV_API_KEY) or "").strip()
    if login and key:
        return (login, key)
    if login or key:
        missing = ENV_API_KEY if login else ENV_LOGIN
        present = ENV_LOGIN if login else ENV_API_KEY
        raise ValueError(f"{present} is set but {missing} is not: set both for authenticated "
                         "Danbooru API access, or neither for anonymous access")
    return None


def fetch_api_metadata(source: SourceConfig, dest_dir: Path, progress: bool = True) -> dict:
    """Page the API per `source.api` and write normalised records to dest_dir/api-posts.jsonl.

    The file appears atomically (temp file + fsync + os.replace), so an interrupted run
    never leaves a truncated metadata file for the metadata stage to trust. Posts that
    cannot be normalised are skipped, counted (n_skipped) and logged by reason.
    Returns {n_posts, n_pages, n_skipped, seconds}.
    """
    t0 = time.perf_counter()
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    auth = api_credentials()
    host = urlsplit(source.url).hostname or ""
    session = make_session(source.http, auth, auth_hosts=[host] if auth else None)
    log.info("Danbooru API %s: tags=%r, max_posts=%d, %s", safe_url(source.url), source.api.tags,
             source.api.max_posts, "authenticated" if auth else "anonymous")
    stats: dict[str, Any] = {"n_pages": 0}
    skipped: Counter = Counter()
    n_posts = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=source.api.max_posts, desc="api posts", unit="post")
    try:
        with atomic_path(dest_dir / OUTPUT_NAME) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            for post in iter_api_posts(session, source.url, source.api, source.http, stats=stats):
                if bar is not None:
                    bar.update(1)
                try:
                    record = normalize_api_post(post)
                except InvalidPostError as exc:
                    reason = "missing_id" if _post_id(post) is None else "invalid_field"
                    skipped[reason] += 1
                    log.debug("skipped API post: %s", exc)
                    continue
                fh.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
                n_posts += 1
    finally:
        if bar is not None:
            bar.close()
        session.close()
    if skipped:
        log.warning("skipped %d API posts: %s", sum(skipped.values()), dict(skipped))
    if n_posts == 0:
        log.warning("the API returned no usable posts for tags=%r", source.api.tags)
    return {"n_posts": n_posts, "n_pages": int(stats["n_pages"]), "n_skipped": sum(skipped.values()),
            "seconds": round(time.perf_counter() - t0, 2)}
