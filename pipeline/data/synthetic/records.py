"""Metadata records of the synthetic mini-Danbooru2020, in the Danbooru2020 format.

`build_metadata` writes every post's record, older snapshots of a few in other shards and a few
truncated lines. Used by the `source` stage (kind synthetic, via `generate_dataset`) and by
`onepunch synthetic`.
"""

from __future__ import annotations

import json
import zlib
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from pipeline.config import SyntheticConfig
from pipeline.data.danbooru import METADATA_SHARD_NAMES, dump_record
from pipeline.data.synthetic.posts import MAX_POST_ID, NON_IMAGE_EXTS, PostPlan, seed_entropy

SNAPSHOT_DATE = datetime(2021, 1, 21, tzinfo=timezone.utc)
FIRST_POST_DATE = datetime(2005, 5, 24, tzinfo=timezone.utc)

# Tags that decide filtering: never dropped from an older snapshot.
FILTER_TAGS = frozenset({
    "monochrome", "greyscale", "lineart", "screentone", "hatching_(texture)", "comic", "4koma",
    "photo_(medium)", "partially_monochrome", "spot_color", "animated", "video", "ugoira", "flash",
})
_GENERAL = ("looking_at_viewer", "standing", "upper_body", "open_mouth", "closed_eyes", "bangs",
            "dress", "school_uniform", "ribbon", "holding", "sitting", "jewelry", "outdoors",
            "day", "shirt", "long_sleeves", "hair_ornament", "simple_background")
_HAIR = ("black_hair", "brown_hair", "blonde_hair", "blue_hair", "pink_hair", "silver_hair", "red_hair")
_EYES = ("blue_eyes", "red_eyes", "green_eyes", "brown_eyes", "purple_eyes", "yellow_eyes")
_ARTISTS = ("kantoku", "ningen_mame", "tony_taka", "ke-ta", "shiratama_(shiratamaco)", "hews",
            "émilie_dûpont", "zunko_(☆)", "ぽんぽん_(artist)", "kr◯s", "mika_pikazo", "🐱_(neko)",
            "ask_(askzy)", "fuzichoco", "void_0")
_FRANCHISES = {
    "touhou": ("hakurei_reimu", "kirisame_marisa", "remilia_scarlet"),
    "vocaloid": ("hatsune_miku", "kagamine_rin"),
    "kantai_collection": ("shimakaze_(kancolle)", "hibiki_(kancolle)"),
    "idolmaster": ("shimamura_uzuki",),
    "fate_(series)": ("saber", "tohsaka_rin"),
}
_META = ("highres", "commentary_request", "translated", "bad_id", "bad_pixiv_id", "twitter_username")
_HANDLES = ("sakura_drw", "ｈｉｋａｒｉ", "neko_no_te", "art.émile", "mizu☆iro")


def tag_id(name: str) -> int:
    """A stable positive id for a tag name (real ids are arbitrary too)."""
    return zlib.crc32(name.encode("utf-8")) % 1_700_000 + 1


def _when(rng: np.random.Generator, start: datetime, end: datetime) -> datetime:
    """A time between start and end, with 0, 3 or 6 significant fractional digits."""
    span = max(0.0, (end - start).total_seconds())
    t = start + timedelta(seconds=int(rng.uniform(0, span)))
    kind = rng.random()
    micro = 0 if kind < 0.25 else int(rng.integers(0, 1000)) * 1000 if kind < 0.6 else int(rng.integers(0, 10**6))
    return t.replace(microsecond=micro)


def _source(rng: np.random.Generator, pixiv_id: int | None, created: datetime, ext: str) -> str:
    if pixiv_id:
        if rng.random() < 0.3:  # the old page-style URL
            return f"http://www.pixiv.net/member_illust.php?mode=medium&illust_id={pixiv_id}"
        return f"https://i.pximg.net/img-original/img/{created:%Y/%m/%d/%H/%M/%S}/{pixiv_id}_p0.{ext}"
    handle = str(rng.choice(_HANDLES))
    choices = [
        "",
        f"https://twitter.com/{handle}/status/{int(rng.integers(10**17, 10**18))}",
        f"https://www.deviantart.com/{handle}/art/étude-{int(rng.integers(10**6, 10**8))}",
        f"https://seiga.nicovideo.jp/seiga/im{int(rng.integers(10**5, 10**7))} 「落書き」",
        "Scanned from 『月刊コミック』 2008年3月号 — p. 12",
    ]
    return choices[int(rng.choice(len(choices), p=[0.3, 0.35, 0.15, 0.1, 0.1]))]


def _domain_tags(rng: np.random.Generator, plan: PostPlan, scene_tags: list[str], tone_tags: list[str]) -> list[str]:
    """General tags that say what the image is (the ones the select stage filters on)."""
    look = plan.look
    tags = list(scene_tags)
    if look in ("scan", "4koma_scan", "comic", "spot_color"):
        mono = [t for t, p in (("monochrome", 0.95), ("greyscale", 0.85)) if rng.random() < p]
        tags += mono or ["monochrome"]
        tags += ["simple_background", "white_background"]
    if look == "scan":
        tags += (["lineart"] if rng.random() < 0.6 else []) + tone_tags
    elif look in ("color", "4koma_color", "partially_monochrome"):
        tags += {"simple": ["simple_background"], "white": ["simple_background", "white_background"],
                 "gradient": ["gradient_background"]}[plan.background]
        if "no_humans" not in scene_tags:
            tags += [str(rng.choice(_HAIR)), str(rng.choice(_EYES))]
    if look == "comic":
        tags += ["comic", "speech_bubble"]
    elif look.startswith("4koma"):
        tags += ["4koma", "comic"]
    elif look == "photo":
        tags = ["photo_(medium)", "1girl", "solo"] + (["cosplay"] if rng.random() < 0.5 else [])
    elif look == "spot_color":
        tags += ["spot_color"]
    elif look == "partially_monochrome":
        tags += ["partially_monochrome"] + (["greyscale"] if rng.random() < 0.5 else [])
    if plan.file_ext in NON_IMAGE_EXTS:
        tags += {"zip": ["animated", "ugoira"], "swf": ["animated", "flash"]}.get(plan.file_ext,
                                                                                 ["animated", "video"])
    extra = rng.choice(len(_GENERAL), size=int(rng.integers(1, 5)), replace=False)
    return tags + [_GENERAL[i] for i in extra]


def make_record(rng: np.random.Generator, plan: PostPlan, scene_tags: list[str],
                tone_tags: list[str]) -> dict[str, Any]:
    """A post with Python values (ints, None, datetimes, bools, tag tuples) for dump_record()."""
    frac = plan.id / MAX_POST_ID  # ids grow with upload time, as on Danbooru
    span = SNAPSHOT_DATE - timedelta(days=30) - FIRST_POST_DATE
    anchor = FIRST_POST_DATE + span * frac
    created = _when(rng, max(FIRST_POST_DATE, anchor - timedelta(days=20)), anchor + timedelta(days=20))
    updated = _when(rng, created + timedelta(minutes=1), SNAPSHOT_DATE)
    up = int(rng.gamma(1.1, 6.0 if plan.rating == "s" else 10.0))
    down = -int(rng.poisson(0.4))
    pixiv_id = int(rng.integers(1_000_000, 86_000_000)) if rng.random() < 0.55 else None

    copyright_ = "original" if rng.random() < 0.6 else str(rng.choice(list(_FRANCHISES)))
    tags: list[tuple[str, int]] = [(t, 0) for t in _domain_tags(rng, plan, scene_tags, tone_tags)]
    tags.append((copyright_, 3))
    if copyright_ != "original":
        tags.append((str(rng.choice(_FRANCHISES[copyright_])), 4))
    if rng.random() < 0.9:
        tags.append((str(rng.choice(_ARTISTS)), 1))
    if max(plan.width, plan.height) >= 1600:
        tags.append(("highres", 5))
    tags += [(m, 5) for m in _META if rng.random() < 0.12]
    tags = list(dict.fromkeys(tags))
    tags = [tags[i] for i in rng.permutation(len(tags))]
    if rng.random() < 0.06:  # Danbooru2020 repeats tags inside some records
        tags.append(tags[int(rng.integers(len(tags)))])

    n_pixels = plan.width * plan.height
    size_per_pixel = {"jpg": (0.15, 0.6), "png": (0.8, 2.5)}.get(plan.file_ext, (1.5, 12.0))
    return {
        "id": plan.id,
        "uploader_id": int(rng.integers(1, 700_000)),
        "created_at": created,
        "updated_at": updated,
        "last_commented_at": _when(rng, created, SNAPSHOT_DATE) if rng.random() < 0.3 else None,
        "last_noted_at": _when(rng, created, SNAPSHOT_DATE) if rng.random() < 0.07 else None,
        "score": up + down,
        "up_score": up,
        "down_score": down,
        "favs": sorted({int(x) for x in rng.integers(1, 700_000, size=min(up, 12))}),
        "image_width": plan.width,
        "image_height": plan.height,
        "file_size": int(n_pixels * rng.uniform(*size_per_pixel)),
        "file_ext": plan.file_ext,
        "rating": plan.rating,
        "md5": rng.bytes(16).hex(),  # like Danbooru2020's, it does not match the file
        "source": _source(rng, pixiv_id, created, plan.file_ext),
        "parent_id": int(rng.integers(1, plan.id)) if plan.id > 1 and rng.random() < 0.1 else None,
        "approver_id": int(rng.integers(1, 600_000)) if rng.random() < 0.65 else None,
        "pixiv_id": pixiv_id,
        "is_deleted": plan.kind == "deleted",
        "is_banned": plan.kind == "banned",
        "is_pending": False,
        "is_flagged": plan.kind == "deleted" and rng.random() < 0.3,
        "is_note_locked": False,
        "is_rating_locked": rng.random() < 0.04,
        "is_status_locked": rng.random() < 0.01,
        "has_children": rng.random() < 0.05,
        "pools": [int(rng.integers(1, 20_000))] if rng.random() < 0.04 else [],
        "tags": [(name, cat, tag_id(name)) for name, cat in tags],
    }


def older_snapshot(rng: np.random.Generator, post: dict[str, Any]) -> dict[str, Any]:
    """The same post as an earlier yearly snapshot saw it: fewer tags, lower score, not yet deleted."""
    old = dict(post)
    old["updated_at"] = _when(rng, post["created_at"], post["updated_at"] - timedelta(seconds=30))
    assert old["updated_at"] < post["updated_at"]
    droppable = [i for i, t in enumerate(post["tags"]) if t[1] == 0 and t[0] not in FILTER_TAGS]
    drop = set(rng.choice(droppable, size=min(len(droppable), int(rng.integers(1, 4))), replace=False).tolist()) \
        if droppable else set()
    old["tags"] = [t for i, t in enumerate(post["tags"]) if i not in drop]
    old["up_score"] = int(post["up_score"] * rng.uniform(0.3, 0.9))
    old["score"] = old["up_score"] + post["down_score"]
    old["favs"] = post["favs"][: len(post["favs"]) // 2]
    for flag in ("is_deleted", "is_banned", "is_flagged"):
        old[flag] = False
    for name in ("last_commented_at", "last_noted_at"):
        if post[name] is not None and post[name] > old["updated_at"]:
            old[name] = None
    return old


def build_metadata(cfg: SyntheticConfig, plans: list[PostPlan],
                   drawn: list[dict[str, Any]]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """JSON lines per shard name: records, older snapshots in other shards, a few truncated lines."""
    rng = np.random.default_rng([seed_entropy(cfg.seed), 2])
    shards = METADATA_SHARD_NAMES[: cfg.n_shards]
    posts = [make_record(rng, p, d["tags"], d["tone_tags"]) for p, d in zip(plans, drawn)]
    lines: list[tuple[int, str]] = []  # (shard index, line)
    home = rng.integers(0, len(shards), size=len(posts))
    for shard, post in zip(home.tolist(), posts):
        lines.append((shard, _line(post)))
    n_dup = round(cfg.duplicate_fraction * len(posts))
    chosen = rng.choice(len(posts), size=n_dup, replace=False).tolist()
    deleted = [i for i, p in enumerate(plans) if p.kind == "deleted"]
    if chosen and deleted and not set(chosen) & set(deleted):
        # make sure one post was deleted after its older snapshot: deduping must keep the newest
        chosen[0] = int(rng.choice(deleted))
    for i in sorted(chosen):
        other = (home[i] + 1 + rng.integers(len(shards) - 1)) % len(shards) if len(shards) > 1 else 0
        lines.append((int(other), _line(older_snapshot(rng, posts[i]))))
    n_bad = int(rng.integers(1, 4)) if posts else 0
    for _ in range(n_bad):  # a line cut off mid-record, as from an interrupted export
        text = _line(posts[int(rng.integers(len(posts)))])
        lines.append((int(rng.integers(len(shards))), text[: int(rng.integers(10, len(text) - 5))]))
    by_shard: dict[str, list[str]] = {name: [] for name in shards}
    for shard, text in lines:
        by_shard[shards[shard]].append(text)
    for name, shard_lines in by_shard.items():
        by_shard[name] = [shard_lines[i] for i in rng.permutation(len(shard_lines))]
    return by_shard, {"n_posts": len(posts), "n_records": len(posts) + n_dup, "n_duplicates": n_dup,
                      "n_malformed_lines": n_bad}


def _line(post: dict[str, Any]) -> str:
    return json.dumps(dump_record(post), ensure_ascii=False, separators=(",", ":"))  # compact, as shipped
