"""Every source kind gives the same data: synthetic, local mirror, HTTP mirror (with
faults), and the live-API shape (fake server). All servers are on 127.0.0.1."""

import io
from pathlib import Path

import numpy as np
import pytest
from http_server import Fault
from PIL import Image

from pipeline.config import (
    HttpConfig,
    ImagesConfig,
    SelectConfig,
    SourceConfig,
    SyntheticConfig,
    params_from_dict,
)
from pipeline.data.danbooru import image_relpath, image_root, metadata_dir
from pipeline.data.metadata.read import discover_metadata_files
from pipeline.data.metadata.table import build_metadata_table
from pipeline.data.prepare import prepare_images
from pipeline.data.select import select_posts
from pipeline.data.shards import holdout_materials, holdout_with_truth
from pipeline.data.sources import materialize_source

ROOT = Path(__file__).resolve().parents[2]
FAST_HTTP = HttpConfig(timeout_s=2.0, retries=4, backoff_s=0.01, max_backoff_s=0.05, concurrency=4)


def shipped_select() -> SelectConfig:
    from pipeline.config import load_params

    return load_params(ROOT / "params.yaml").select


TINY = SyntheticConfig(seed=7, n_color=8, n_scan=8, n_distractors=16, n_shards=3)


def data_stages(source: SourceConfig, source_dir: Path, work: Path, images: ImagesConfig | None = None):
    """source output -> metadata -> select -> images; returns (selected, out folder, stats)."""
    files = discover_metadata_files(metadata_dir(source, source_dir), source.metadata_files)
    build_metadata_table(files, work / "metadata.parquet", progress=False)
    selected, counts = select_posts(work / "metadata.parquet", shipped_select())
    images = images or ImagesConfig(size=16, shard_images=8, workers=1)
    stats = prepare_images(selected, source, images, image_root(source, source_dir), work / "prepared",
                           work / "work", work.parent / "download-cache", progress=False)
    return selected, work / "prepared", stats, counts


def shard_bytes(folder: Path) -> dict:
    """The training shards, without the synthetic source's ground truth (true scans, oracles)."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.npy"))
            if not any(f"-{layer}-" in p.name for layer in ("gt", "oracle", "oracle_grey", "materials"))}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror")
    stats = materialize_source(SourceConfig(kind="synthetic", synthetic=TINY), root, progress=False)
    return root, stats


def test_synthetic_source_runs_through_the_data_stages(mirror, tmp_path):
    root, _ = mirror
    selected, out, stats, counts = data_stages(SourceConfig(kind="synthetic", synthetic=TINY), root, tmp_path)
    domains = selected.column("domain").to_pylist()
    assert domains.count("scan") == 8 and domains.count("color") >= 8  # corrupt posts look colored
    assert stats["failed"] >= 1 and any(k.startswith("failed_") for k in stats)
    assert counts["rejected_rating"] > 0 and counts["rejected_no_domain"] > 0
    assert list(out.glob("color-holdout-gt-*.npy")) or "color_holdout" not in stats
    codes = holdout_materials(out)
    if "color_holdout" in stats:  # each pixel's material, row-aligned with the holdout
        from pipeline.data.materials import CODE

        color, truth = holdout_with_truth(out)
        assert codes is not None and codes.shape == color.shape[:3]
        assert (color[codes == CODE["outside"]] >= 240).mean() > 0.9  # the white padding (a small JPEG's edges blur)
        drawn = codes > CODE["backdrop"]  # the scene's regions: inked and toned; the backdrop is paper
        assert drawn.any() and truth[..., 0][drawn].mean() < truth[..., 0][codes == CODE["backdrop"]].mean() - 20


def test_local_mirror_equals_synthetic(mirror, tmp_path):
    root, _ = mirror
    _, out_syn, _, _ = data_stages(SourceConfig(kind="synthetic", synthetic=TINY), root, tmp_path / "a")
    local = SourceConfig(kind="local", root=str(root))
    desc_dir = tmp_path / "local-source"
    materialize_source(local, desc_dir, progress=False)
    assert (desc_dir / "SOURCE.json").is_file()
    _, out_local, _, _ = data_stages(local, desc_dir, tmp_path / "b")
    assert shard_bytes(out_syn) == shard_bytes(out_local)
    with pytest.raises(FileNotFoundError, match="source.root"):
        materialize_source(SourceConfig(kind="local", root=str(tmp_path / "nowhere")), tmp_path / "x",
                           progress=False)


def test_http_mirror_with_faults_equals_local(mirror, tmp_path, loopback_server):
    root, _ = mirror
    srv = loopback_server
    # serve the mirror
    for p in root.rglob("*"):
        if p.is_file() and not p.relative_to(root).parts[0] == "groundtruth":
            srv.add_file(str(p.relative_to(root)), p.read_bytes())
    shards = sorted(p.name for p in (root / "metadata").iterdir())
    srv.faults[f"/metadata/{shards[0]}"] = Fault(drop_mid_body=1, chunk=1024)
    srv.faults[f"/metadata/{shards[1]}"] = Fault(fail_500=2)
    local = SourceConfig(kind="local", root=str(root))
    materialize_source(local, tmp_path / "ls", progress=False)
    selected, out_local, _, _ = data_stages(local, tmp_path / "ls", tmp_path / "local")
    some = selected.column("id").to_pylist()[:3]
    for pid, fault in zip(some, [Fault(fail_429=1), Fault(drop_mid_body=1, chunk=512), Fault(slow_s=0.01)]):
        srv.faults["/" + str(image_relpath(pid, "jpg", "512px"))] = fault

    http = SourceConfig(kind="http", url=srv.url + "/", metadata_files=shards, http=FAST_HTTP)
    materialize_source(http, tmp_path / "hs", progress=False)
    for name in shards:
        assert (tmp_path / "hs" / "metadata" / name).read_bytes() == (root / "metadata" / name).read_bytes()
    assert any("Range" in r.headers or "range" in r.headers for r in srv.requests_for(f"/metadata/{shards[0]}"))
    _, out_http, stats, _ = data_stages(http, tmp_path / "hs", tmp_path / "http")
    assert shard_bytes(out_http) == shard_bytes(out_local)
    # only selected images were fetched: no request for a rejected post's file
    fetched = {r.path for r in srv.requests if r.path.startswith("/512px/")}
    assert len(fetched) == selected.num_rows
    # a re-run finds every image in the download cache: no image request at all
    n_before = len(srv.requests)
    _, out_again, _, _ = data_stages(http, tmp_path / "hs", tmp_path / "http2")
    assert [r.path for r in srv.requests[n_before:] if r.path.startswith("/512px/")] == []
    assert shard_bytes(out_again) == shard_bytes(out_local)


def test_http_source_reports_failed_metadata_download(tmp_path, loopback_server):
    from pipeline.data.http import FetchError

    loopback_server.add_file("metadata/2020000000000000", b"{}\n")
    loopback_server.faults["/metadata/2020000000000001"] = Fault(status=404)
    cfg = SourceConfig(kind="http", url=loopback_server.url_for("/", userinfo="bob:s3cret"),
                       metadata_files=["2020000000000000", "2020000000000001"], http=FAST_HTTP)
    with pytest.raises(FetchError) as err:
        materialize_source(cfg, tmp_path / "src", progress=False)
    assert "2020000000000001" in str(err.value) and "s3cret" not in str(err.value)


def test_api_source_end_to_end(tmp_path, loopback_server):
    srv = loopback_server
    posts = []
    for i, pid in enumerate(range(500, 530)):
        mono = i % 2 == 0
        img = Image.new("RGB" if not mono else "L", (300, 300), "white" if mono else (200, 80, 40))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        srv.add_file(f"files/{pid}.png", buf.getvalue())
        posts.append({
            "id": pid, "created_at": "2020-01-01T12:34:56.789-05:00", "updated_at": "2021-01-01T00:00:00.000Z",
            "rating": "g", "file_ext": "png", "image_width": 300, "image_height": 300,
            "is_deleted": False, "is_banned": False,
            "tag_string_general": "monochrome lineart" if mono else "1girl solo",
            "tag_string_artist": "", "tag_string_copyright": "", "tag_string_character": "",
            "tag_string_meta": "", "file_url": srv.url_for(f"/files/{pid}.png"),
        })
    posts[3].pop("file_url")  # restricted post: no file URL
    srv.api_posts = posts
    srv.faults["/posts.json"] = Fault(fail_429=1)
    cfg = SourceConfig(kind="danbooru_api", url=srv.url, http=FAST_HTTP,
                       api=params_from_dict({"source": {"api": {"max_posts": 1000, "requests_per_s": 10.0}}}).source.api)
    stats = materialize_source(cfg, tmp_path / "src", progress=False)
    assert stats["n_posts"] == 30
    selected, out, istats, counts = data_stages(cfg, tmp_path / "src", tmp_path / "w",
                                                ImagesConfig(size=16, shard_images=8, workers=1, ))
    assert selected.num_rows == 30
    assert istats["failed_no_file_url"] == 1
    assert istats["images"] == 29
    scans = np.concatenate([np.load(p) for p in sorted(out.glob("scan-*-[0-9]*.npy"))])
    assert scans.shape[-1] == 1 and scans.min() > 200  # white line-art canvases
