"""pipeline.data.danbooru_api against a fake /posts.json: paging, 429, rate limit, normalisation, secrecy."""

from __future__ import annotations

import base64
import json
import logging
import traceback

import pytest
from http_server import Fault

from pipeline.config import ApiConfig, HttpConfig, SourceConfig
from pipeline.data.danbooru_api import (
    RATING_MAP,
    InvalidPostError,
    RateLimiter,
    api_credentials,
    fetch_api_metadata,
    iter_api_posts,
    normalize_api_post,
)
from pipeline.data.http import FetchError, make_session

HTTP = HttpConfig(timeout_s=2.0, retries=3, backoff_s=0.01, max_backoff_s=0.05, concurrency=1,
                  user_agent="onepunchgan-tests/1.0 (api)")
FAST_API = dict(requests_per_s=10.0)


def api_post(pid: int, **over) -> dict:
    """A post shaped like modern Danbooru's /posts.json answer."""
    post = {
        "id": pid, "created_at": "2020-01-01T12:34:56.789-05:00",
        "updated_at": "2021-06-30T23:59:59.000+09:00", "uploader_id": 42, "approver_id": None,
        "score": 7, "up_score": 8, "down_score": -1, "fav_count": 5, "rating": "g",
        "source": "https://example.invalid/art", "md5": f"{pid:032x}", "file_ext": "png",
        "image_width": 800, "image_height": 600, "file_size": 123456, "parent_id": None,
        "pixiv_id": None, "last_commented_at": None, "last_noted_at": None, "has_children": False,
        "is_pending": False, "is_flagged": False, "is_deleted": False, "is_banned": False,
        "tag_string": "1girl solo monochrome artist_a original",
        "tag_string_general": "1girl solo", "tag_string_artist": "artist_a",
        "tag_string_copyright": "original", "tag_string_character": "",
        "tag_string_meta": "monochrome",
        "file_url": f"https://cdn.example.invalid/original/{pid}.png",
    }
    post.update(over)
    return post


class FakeClock:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def fast_limiter() -> RateLimiter:
    clock = FakeClock()
    return RateLimiter(1000.0, clock=clock, sleep=clock.sleep)


# --------------------------------------------------------------------------- paging


def test_paging_uses_before_id_cursor_and_limit(loopback_server):
    loopback_server.api_posts = [api_post(i) for i in range(1, 451)]  # 450 posts
    session = make_session(HTTP)
    stats: dict = {}
    posts = list(iter_api_posts(session, loopback_server.url, ApiConfig(tags="monochrome", max_posts=10_000),
                                HTTP, limiter=fast_limiter(), stats=stats))
    assert [p["id"] for p in posts] == list(range(450, 0, -1))
    reqs = loopback_server.requests_for("/posts.json")
    pages = [r.query.get("page", [None])[0] for r in reqs]
    assert pages == [None, "b251", "b51"]  # 200 + 200 + 50: the 50-post page is not full but not empty
    assert all(r.query["limit"] == ["200"] for r in reqs)
    assert all(r.query["tags"] == ["monochrome"] for r in reqs)
    assert all(r.headers["User-Agent"] == HTTP.user_agent for r in reqs)
    assert stats["n_pages"] == 3


def test_paging_stops_at_max_posts_and_honours_start_id(loopback_server):
    loopback_server.api_posts = [api_post(i) for i in range(1, 1001)]
    session = make_session(HTTP)
    api = ApiConfig(max_posts=250, start_id=900)
    posts = list(iter_api_posts(session, loopback_server.url, api, HTTP, limiter=fast_limiter()))
    assert len(posts) == 250
    assert posts[0]["id"] == 899 and posts[-1]["id"] == 650
    pages = [r.query["page"][0] for r in loopback_server.requests_for("/posts.json")]
    assert pages == ["b900", "b700"]  # no third request once max_posts is reached


def test_paging_stops_on_empty_page(loopback_server):
    loopback_server.api_posts = [api_post(i) for i in range(101, 301)]  # exactly one full page
    posts = list(iter_api_posts(make_session(HTTP), loopback_server.url, ApiConfig(max_posts=5000),
                                HTTP, limiter=fast_limiter()))
    assert len(posts) == 200
    pages = [r.query.get("page", [None])[0] for r in loopback_server.requests_for("/posts.json")]
    assert pages == [None, "b101"]


def test_paging_needs_no_request_below_id_1(loopback_server):
    loopback_server.api_posts = [api_post(i) for i in range(1, 4)]
    posts = list(iter_api_posts(make_session(HTTP), loopback_server.url, ApiConfig(max_posts=5000),
                                HTTP, limiter=fast_limiter()))
    assert len(posts) == 3 and loopback_server.count("/posts.json") == 1


def test_api_429_is_retried_after_retry_after(loopback_server):
    loopback_server.api_posts = [api_post(i) for i in range(11, 14)]
    loopback_server.faults["/posts.json"] = Fault(fail_429=2, retry_after="0")
    waits: list[float] = []
    posts = list(iter_api_posts(make_session(HTTP), loopback_server.url, ApiConfig(max_posts=10), HTTP,
                                limiter=fast_limiter(), sleep=waits.append))
    assert len(posts) == 3
    assert len(waits) == 2
    assert loopback_server.count("/posts.json") == 4  # 2 x 429, the page, the empty page


def test_api_5xx_exhausted_raises_fetch_error(loopback_server):
    loopback_server.faults["/posts.json"] = Fault(fail_500=50)
    with pytest.raises(FetchError, match="HTTP 500"):
        list(iter_api_posts(make_session(HTTP), loopback_server.url, ApiConfig(), HTTP,
                            limiter=fast_limiter(), sleep=lambda s: None))
    assert loopback_server.count("/posts.json") == HTTP.retries + 1


def test_api_refusal_names_server_message(loopback_server):
    loopback_server.faults["/posts.json"] = Fault(status=422)
    with pytest.raises(FetchError, match="422"):
        list(iter_api_posts(make_session(HTTP), loopback_server.url, ApiConfig(), HTTP,
                            limiter=fast_limiter()))
    assert loopback_server.count("/posts.json") == 1


def test_rate_limiter_spaces_requests():
    clock = FakeClock()
    limiter = RateLimiter(2.0, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(4):
        limiter.wait()
        starts.append(clock.now)
    assert [round(b - a, 6) for a, b in zip(starts, starts[1:])] == [0.5, 0.5, 0.5]
    clock.now += 10  # idle time is not "saved up" into a burst
    limiter.wait()
    limiter.wait()
    assert clock.sleeps[-1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="rate limit"):
        RateLimiter(0)


def test_rate_limiter_applies_to_every_request(loopback_server):
    loopback_server.api_posts = [api_post(i) for i in range(101, 501)]
    loopback_server.faults["/posts.json"] = Fault(fail_500=1)
    clock = FakeClock()
    limiter = RateLimiter(4.0, clock=clock, sleep=clock.sleep)
    list(iter_api_posts(make_session(HTTP), loopback_server.url, ApiConfig(max_posts=1000), HTTP,
                        limiter=limiter, sleep=lambda s: None))
    # 1 failed + 3 pages (200, 200, empty): each request after the first waits 0.25 s
    assert clock.sleeps == pytest.approx([0.25] * 3)


# --------------------------------------------------------------------------- normalisation


def test_normalize_matches_danbooru2020_format():
    rec = normalize_api_post(api_post(148112, approver_id=7, last_noted_at="2020-03-04T05:06:07Z"))
    assert rec["id"] == "148112" and rec["score"] == "7" and rec["down_score"] == "-1"
    assert rec["image_width"] == "800" and rec["file_size"] == "123456" and rec["fav_count"] == "5"
    assert rec["approver_id"] == "7" and rec["parent_id"] == "0" and rec["pixiv_id"] == "0"
    assert rec["created_at"] == "2020-01-01 17:34:56.789 UTC"  # -05:00 -> UTC
    assert rec["updated_at"] == "2021-06-30 14:59:59 UTC"  # +09:00 -> UTC, no zero fraction
    assert rec["last_noted_at"] == "2020-03-04 05:06:07 UTC"
    assert rec["last_commented_at"] == "1970-01-01 00:00:00 UTC"  # null
    assert rec["rating"] == "s" and rec["file_ext"] == "png" and rec["md5"] == f"{148112:032x}"
    assert rec["is_deleted"] is False and rec["has_children"] is False
    assert rec["file_url"] == "https://cdn.example.invalid/original/148112.png"
    tags = {(t["name"], t["category"], t["id"]) for t in rec["tags"]}
    assert tags == {("1girl", "0", "0"), ("solo", "0", "0"), ("artist_a", "1", "0"),
                    ("original", "3", "0"), ("monochrome", "5", "0")}
    json.dumps(rec)  # plain JSON types only


def test_normalize_character_tags_and_string_numbers():
    rec = normalize_api_post(api_post(5, id="5", score="12", tag_string_character="hero_(series)",
                                      pixiv_id=99, parent_id=3, is_deleted=True))
    assert rec["id"] == "5" and rec["score"] == "12" and rec["pixiv_id"] == "99" and rec["parent_id"] == "3"
    assert {"id": "0", "name": "hero_(series)", "category": "4"} in rec["tags"]
    assert rec["is_deleted"] is True


@pytest.mark.parametrize("modern,old", [("g", "s"), ("s", "q"), ("q", "q"), ("e", "e")])
def test_rating_mapping(modern, old):
    assert normalize_api_post(api_post(1, rating=modern))["rating"] == old
    assert RATING_MAP[modern] == old


def test_restricted_post_without_md5_or_file_url():
    post = api_post(9)
    del post["md5"], post["file_url"]
    rec = normalize_api_post(post)
    assert rec["md5"] == "" and "file_url" not in rec


@pytest.mark.parametrize("bad", [{"id": None}, {"id": "abc"}, {"rating": "x"}, {"created_at": "yesterday"},
                                 {"score": "lots"}])
def test_normalize_rejects_bad_posts_naming_field(bad):
    with pytest.raises(InvalidPostError) as info:
        normalize_api_post(api_post(3, **bad))
    key = next(iter(bad))
    assert key in str(info.value) or "id" in str(info.value)


def test_normalized_records_parse_in_metadata_stage():
    """The one metadata parser reads what this source writes."""
    from pipeline.data.metadata.normalize import normalize
    from pipeline.data.metadata.parse import ParseStats, parse_block

    lines = [json.dumps(normalize_api_post(api_post(i, rating=r))) for i, r in ((11, "g"), (12, "e"))]
    stats = ParseStats()
    table = normalize(parse_block(("\n".join(lines) + "\n").encode(), stats), stats)
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [11, 12]
    assert rows[0]["created_at"].isoformat() == "2020-01-01T17:34:56.789000+00:00"
    assert rows[0]["last_noted_at"] is None and rows[0]["approver_id"] is None
    assert rows[0]["file_url"].endswith("/11.png") and rows[1]["rating"] == "e"
    assert "monochrome" in rows[0]["tag_names"]


# --------------------------------------------------------------------------- stage entry


def test_fetch_api_metadata_writes_jsonl_with_basic_auth(loopback_server, tmp_path, monkeypatch, caplog,
                                                        capsys):
    loopback_server.api_posts = [api_post(i) for i in range(11, 16)] + [api_post(0, id=None)]  # skipped
    loopback_server.faults["/posts.json"] = Fault(fail_500=1)
    monkeypatch.setenv("DANBOORU_LOGIN", "tester_login")
    monkeypatch.setenv("DANBOORU_API_KEY", "KEY-sup3rs3cret")
    caplog.set_level(logging.DEBUG)
    source = SourceConfig(kind="danbooru_api", url=loopback_server.url, http=HTTP,
                          api=ApiConfig(tags="solo", max_posts=100, **FAST_API))
    stats = fetch_api_metadata(source, tmp_path / "metadata", progress=False)
    assert stats["n_posts"] == 5 and stats["n_skipped"] == 1 and stats["n_pages"] == 2
    assert set(stats) == {"n_posts", "n_pages", "n_skipped", "seconds"}
    out = tmp_path / "metadata" / "api-posts.jsonl"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["15", "14", "13", "12", "11"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["api-posts.jsonl"]  # no temp left
    reqs = loopback_server.requests_for("/posts.json")
    expected = "Basic " + base64.b64encode(b"tester_login:KEY-sup3rs3cret").decode()
    assert all(r.headers.get("Authorization") == expected for r in reqs)
    assert all(r.headers["User-Agent"] == HTTP.user_agent for r in reqs)
    captured = capsys.readouterr()
    for text in (caplog.text, out.read_text(), json.dumps(stats), captured.out, captured.err):
        assert "sup3rs3cret" not in text


def test_fetch_api_metadata_failure_hides_key_and_leaves_no_file(loopback_server, tmp_path, monkeypatch,
                                                                caplog):
    loopback_server.faults["/posts.json"] = Fault(fail_500=100)
    monkeypatch.setenv("DANBOORU_LOGIN", "tester_login")
    monkeypatch.setenv("DANBOORU_API_KEY", "KEY-sup3rs3cret")
    caplog.set_level(logging.DEBUG)
    source = SourceConfig(kind="danbooru_api", url=loopback_server.url, http=HTTP,
                          api=ApiConfig(max_posts=10, **FAST_API))
    with pytest.raises(FetchError) as info:
        fetch_api_metadata(source, tmp_path / "metadata", progress=False)
    text = "".join(traceback.format_exception(info.value)) + caplog.text
    assert "sup3rs3cret" not in text
    assert list((tmp_path / "metadata").iterdir()) == []


def test_anonymous_without_env(loopback_server, tmp_path, monkeypatch):
    monkeypatch.delenv("DANBOORU_LOGIN", raising=False)
    monkeypatch.delenv("DANBOORU_API_KEY", raising=False)
    loopback_server.api_posts = [api_post(1)]
    source = SourceConfig(kind="danbooru_api", url=loopback_server.url, http=HTTP,
                          api=ApiConfig(max_posts=10, **FAST_API))
    assert fetch_api_metadata(source, tmp_path, progress=False)["n_posts"] == 1
    assert all("Authorization" not in r.headers for r in loopback_server.requests)


def test_api_credentials_need_both_variables():
    assert api_credentials({}) is None
    assert api_credentials({"DANBOORU_LOGIN": "a", "DANBOORU_API_KEY": "b"}) == ("a", "b")
    with pytest.raises(ValueError, match="DANBOORU_API_KEY is not") as info:
        api_credentials({"DANBOORU_LOGIN": "someone"})
    assert "someone" not in str(info.value)
    with pytest.raises(ValueError, match="DANBOORU_LOGIN is not"):
        api_credentials({"DANBOORU_API_KEY": "k-secret"})


def test_auth_is_only_sent_to_the_api_host(loopback_server):
    """file_url downloads through the same session must not carry the API key elsewhere."""
    loopback_server.add_file("x.bin", b"data")
    session = make_session(HTTP, auth=("u", "p-secret"), auth_hosts=["api.example.invalid"])
    assert session.get(loopback_server.url_for("x.bin"), timeout=2).status_code == 200
    assert "Authorization" not in loopback_server.requests_for("/x.bin")[0].headers
    session = make_session(HTTP, auth=("u", "p-secret"), auth_hosts=["127.0.0.1"])
    session.get(loopback_server.url_for("x.bin"), timeout=2)
    assert loopback_server.requests_for("/x.bin")[1].headers["Authorization"].startswith("Basic ")
