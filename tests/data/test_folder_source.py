"""The `folder` source: a user's own mixed folder (colored pages, line art, junk, broken
files) indexed, selected and prepared by the unchanged data stages."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.config import ImagesConfig, ParamsError, SourceConfig, params_from_dict
from pipeline.data.danbooru import image_root, metadata_dir
from pipeline.data.folder_source import FILES_NAME, folder_files, post_id
from pipeline.data.metadata.read import discover_metadata_files
from pipeline.data.metadata.table import build_metadata_table
from pipeline.data.prepare import prepare_images
from pipeline.data.select import select_posts
from pipeline.data.sources import materialize_source

ROOT = Path(__file__).resolve().parents[2]


def shipped_select():
    from pipeline.config import load_params

    return load_params(ROOT / "params.yaml").select


def colored(seed: int, size=(300, 400)) -> Image.Image:
    arr = np.full((size[1], size[0], 3), 255, np.uint8)
    arr[40:200, 50:250] = [(220, 40, 60), (40, 90, 220), (240, 200, 40), (60, 170, 80)][seed % 4]  # saturated
    arr[::20] = 0  # some ink
    return Image.fromarray(arr)


def lineart(size=(300, 400)) -> Image.Image:
    arr = np.full((size[1], size[0]), 255, np.uint8)
    arr[::15] = 0
    arr[:, ::25] = 30
    return Image.fromarray(arr)


@pytest.fixture()
def series(tmp_path):
    root = tmp_path / "own" / "series"
    (root / "color").mkdir(parents=True)
    (root / "chapter 1" / "lineart").mkdir(parents=True)
    (root / "loose").mkdir()
    (root / "__MACOSX").mkdir()
    colored(1).save(root / "color" / "cover.png")
    lineart().save(root / "color" / "grey_but_in_color_folder.png")  # the folder decides
    colored(2).convert("RGB").save(root / "loose" / "spread.jpg", quality=95)  # told by chroma
    lineart().convert("RGB").save(root / "loose" / "page2.jpg", quality=95)  # grey saved as RGB
    for k in (1, 10, 2):
        lineart().save(root / "chapter 1" / "lineart" / f"page{k}.png")
    (root / "notes.txt").write_text("not an image")
    (root / "loose" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    colored(3).save(root / "__MACOSX" / "._cover.png")
    (root / ".DS_Store").write_bytes(b"\0\1")
    colored(4, (100, 120)).save(root / "loose" / "too_small.png")  # select's min_side drops it
    return root


def test_folder_source_indexes_classifies_and_counts(series, tmp_path):
    out = tmp_path / "source"
    stats = materialize_source(SourceConfig(kind="folder", root=str(series)), out, progress=False)
    assert stats["color"] == 4 and stats["lineart"] == 4  # cover, grey-in-color/, spread, too_small
    assert stats["by_folder"] == 5 and stats["by_chroma"] == 3
    assert stats["skipped_non_images"] == 1 and stats["unreadable"] == 1
    assert stats["unreadable_files"][0].startswith("loose/broken.png: ")
    files = folder_files(out)
    assert sorted(files.values()) == sorted([
        "color/cover.png", "color/grey_but_in_color_folder.png", "loose/spread.jpg", "loose/page2.jpg",
        "chapter 1/lineart/page1.png", "chapter 1/lineart/page2.png", "chapter 1/lineart/page10.png",
        "loose/too_small.png"])
    assert json.loads((out / "SOURCE.json").read_text())["kind"] == "folder"
    # ids follow the path, so adding a file keeps the others' ids
    assert post_id("color/cover.png", set()) in files


def test_folder_source_runs_through_the_data_stages(series, tmp_path):
    source = SourceConfig(kind="folder", root=str(series))
    out = tmp_path / "source"
    materialize_source(source, out, progress=False)
    paths = discover_metadata_files(metadata_dir(source, out), [])
    build_metadata_table(paths, tmp_path / "metadata.parquet", progress=False)
    selected, _ = select_posts(tmp_path / "metadata.parquet", shipped_select())
    files = folder_files(out)
    by_name = dict(zip([files[i] for i in selected.column("id").to_pylist()], selected.column("domain").to_pylist()))
    assert by_name["color/cover.png"] == "color" and by_name["loose/spread.jpg"] == "color"
    assert by_name["loose/page2.jpg"] == "scan" and by_name["chapter 1/lineart/page10.png"] == "scan"
    assert "loose/too_small.png" not in by_name  # 100 x 120 < select.min_side
    stats = prepare_images(selected, source, ImagesConfig(size=64, shard_images=4, workers=1),
                           image_root(source, out), tmp_path / "prepared", tmp_path / "work", tmp_path / "dl",
                           progress=False, files=files)
    assert stats["images"] == len(selected) and stats["failed"] == 0
    index = pq.read_table(tmp_path / "prepared" / "index.parquet")
    assert sorted(index.column("id").to_pylist()) == sorted(selected.column("id").to_pylist())
    # a page removed after indexing fails that page, named, not the stage
    (series / "loose" / "spread.jpg").unlink()
    stats = prepare_images(selected, source, ImagesConfig(size=64, shard_images=4, workers=1),
                           image_root(source, out), tmp_path / "prepared2", tmp_path / "work2", tmp_path / "dl",
                           progress=False, files=files)
    assert stats["failed"] == 1 and stats["images"] == len(selected) - 1
    failures = (tmp_path / "prepared2" / "failures.csv").read_text()
    assert "missing_file" in failures and "spread.jpg" in failures


def test_folder_without_colored_images_or_missing_is_refused(tmp_path):
    root = tmp_path / "bw"
    root.mkdir()
    lineart().save(root / "p1.png")
    with pytest.raises(ValueError, match="no colored image among 1 files"):
        materialize_source(SourceConfig(kind="folder", root=str(root)), tmp_path / "s", progress=False)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        materialize_source(SourceConfig(kind="folder", root=str(tmp_path / "nope")), tmp_path / "s", progress=False)
    assert not (tmp_path / "s" / FILES_NAME).exists()


@pytest.mark.parametrize("root", ["", "/abs/series", "data/series", "data/own/../x"])
def test_folder_root_must_lie_under_data_own(root):
    with pytest.raises(ParamsError, match="under data/own/"):
        params_from_dict({"source": {"kind": "folder", "root": root}})
    assert params_from_dict({"source": {"kind": "folder", "root": "data/own/my-series"}}).source.root


def test_synthetic_series_is_a_folder_source_with_held_out_pairs(tmp_path):
    from pipeline.data.synthetic.pages import write_series
    from pipeline.imaging import is_colored

    size = (256, 362)
    write_series(tmp_path / "a", tmp_path / "held", pages=2, lineart=2, heldout_pages=2, size=size, progress=False)
    write_series(tmp_path / "b", None, pages=2, lineart=1, size=size, progress=False)
    assert (tmp_path / "a" / "color" / "page_001.png").read_bytes() == \
        (tmp_path / "b" / "color" / "page_001.png").read_bytes()  # deterministic
    assert not (tmp_path / "b" / "lineart" / "page_002.png").exists()
    for name in ("page_001.png", "page_002.png"):
        color = Image.open(tmp_path / "a" / "color" / name)
        assert color.size == size and is_colored(color)
        assert Image.open(tmp_path / "a" / "lineart" / name).mode == "L"
        scan, truth = Image.open(tmp_path / "held" / "scan" / name), Image.open(tmp_path / "held" / "color" / name)
        assert scan.size == truth.size == size
    # training, line-art and held-out pages are different pages
    assert (tmp_path / "held" / "color" / "page_001.png").read_bytes() != \
        (tmp_path / "a" / "color" / "page_001.png").read_bytes()
    stats = materialize_source(SourceConfig(kind="folder", root=str(tmp_path / "a")), tmp_path / "s", progress=False)
    assert (stats["color"], stats["lineart"], stats["by_folder"]) == (2, 2, 4)
