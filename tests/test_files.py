"""pipeline.files: nothing half-written under a final name, whoever writes and however it ends."""

import threading

import pytest

from pipeline.files import atomic_path, leftovers, open_atomic, replace_folder, write_json


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with open_atomic(target) as f:
            f.write(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_concurrent_writers_never_mix_their_bytes(tmp_path):
    """Many threads writing one target: each temp name is unique, so the survivor is one
    writer's whole payload, never a mix, and no temp file is left."""
    target = tmp_path / "page.color.png"
    payloads = [bytes([i]) * 200_000 for i in range(16)]
    errors = []

    def write(data):
        try:
            for _ in range(5):
                with open_atomic(target) as f:
                    f.write(data[:100_000])
                    f.write(data[100_000:])
        except Exception as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() in payloads
    assert leftovers(tmp_path, target.name) == []


def test_written_files_get_the_permissions_a_plain_open_gives(tmp_path):
    """tempfile creates 0600 files; the final file must have what open() would give."""
    (tmp_path / "plain.json").write_text("{}")
    write_json(tmp_path / "m.json", {"a": 1})
    with atomic_path(tmp_path / "x.png") as tmp:
        tmp.write_bytes(b"png")
    expected = (tmp_path / "plain.json").stat().st_mode & 0o777
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == expected
    assert (tmp_path / "x.png").stat().st_mode & 0o777 == expected


def test_replace_folder_swaps_whole_or_not_at_all(tmp_path):
    dest = tmp_path / "prepared"
    dest.mkdir()
    (dest / "old.npy").write_text("old")
    with pytest.raises(ValueError):
        with replace_folder(dest) as tmp:
            (tmp / "new.npy").write_text("new")
            raise ValueError("failed before the end")
    assert [p.name for p in dest.iterdir()] == ["old.npy"]
    killed = tmp_path / ".prepared.999999999.abc123.tmp"  # what a writer killed mid-way leaves (dead PID)
    killed.mkdir()
    with replace_folder(dest) as tmp:
        (tmp / "new.npy").write_text("new")
    assert [p.name for p in dest.iterdir()] == ["new.npy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]
