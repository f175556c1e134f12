"""A corpus of bad params files: each one is refused with one line that names the file or
the dotted key, by `load_params` and by `onepunch check-params FILE` (exit code 2), never
with a traceback. The files are written into tmp_path from the table below.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import Params, ParamsError, load_params, params_from_dict
from pipeline.validation import SEED

runner = CliRunner()

FILE = "{file}"  # stands for the params file's path in the expected message parts


def laughs(levels: int, key: bytes = b"seed") -> bytes:
    """A "billion laughs" under `key`: a few lines of YAML aliases standing for 10**levels strings."""
    lines = [key + b":", b"  - &l0 [" + b", ".join([b"lol"] * 10) + b"]"]
    lines += [b"  - &l%d [" % i + b", ".join([b"*l%d" % (i - 1)] * 10) + b"]" for i in range(1, levels)]
    return b"\n".join(lines) + b"\n"


# (case id, file bytes, expected exception, parts the message must contain)
BAD: list[tuple[str, bytes, type[Exception], tuple[str, ...]]] = [
    # --- the file itself
    ("not-utf8", b"lr: 0.0002\n# caf\xe9 au lait\nseed: 0\n", ParamsError, (FILE, "UTF-8", "line 2")),
    ("utf16", "lr: 0.0002\n".encode("utf-16"), ParamsError, (FILE, "UTF-8", "line 1")),
    ("yaml-syntax", b"lr: [unclosed\n", ParamsError, (FILE, "not valid YAML", "line 2")),
    ("yaml-bad-indent", b"cyclegan:\n  steps: 3\n batch_size: 2\n", ParamsError, (FILE, "not valid YAML", "line 3")),
    ("yaml-duplicate-key", b"lr: 0.0002\nlr: 0.0003\n", ParamsError, (FILE, "duplicate key", "line 2")),
    ("yaml-nul-char", b"lr: 0.0002\x00\n", ParamsError, (FILE, "not valid YAML")),
    ("yaml-too-deep", b"lr: " + b"[" * 3000 + b"]" * 3000 + b"\n", ParamsError, (FILE, "nested")),
    ("yaml-bad-date", b"seed: 2020-13-45\n", ParamsError, (FILE, "not valid params", "month must be in 1..12")),
    ("yaml-5000-digit-int", b"seed: 1" + b"0" * 5000 + b"\n", ParamsError, (FILE, "not valid params", "4300 digits")),
    ("yaml-billion-laughs", laughs(6), ParamsError, (FILE, "params key seed", "more than 100000 values", "aliases")),
    ("top-level-list", b"- lr\n- seed\n", ParamsError, (FILE, "expected a mapping")),
    ("top-level-scalar", b"just some words\n", ParamsError, (FILE, "expected a mapping")),
    # --- keys that are not names
    ("int-key-top", b"1: foo\nlr: 0.0002\n", ParamsError, ("key 1 at the top level", "integer")),
    ("int-key-nested", b"cyclegan:\n  1: foo\n  stpes: 3\n", ParamsError, ("cyclegan.1",)),
    ("bool-key", b"true: 3\n", ParamsError, ("key True",)),
    ("null-key", b"~: 3\n", ParamsError, ("key None",)),
    ("float-key-nested", b"images:\n  1.5: x\n", ParamsError, ("images.1.5",)),
    ("sequence-key", b"? [1, 2]\n: x\nlr: 0.0002\n", ParamsError, ("key (1, 2) at the top level",)),
    # --- unknown keys, types, ranges
    ("typo-stpes", b"cyclegan:\n  stpes: 3\n", ParamsError, ("cyclegan.stpes", "steps")),
    ("wrong-type-int", b"cyclegan:\n  steps: many\n", ParamsError, ("cyclegan.steps", "integer")),
    ("wrong-type-float-int", b"images:\n  size: 64.5\n", ParamsError, ("images.size",)),
    ("wrong-type-mapping", b"cyclegan: 5\n", ParamsError, ("cyclegan", "expected a mapping")),
    ("not-finite-float", b"cyclegan:\n  lambda_cycle: .inf\n", ParamsError, ("cyclegan.lambda_cycle", "finite")),
    ("float-field-huge-int", b"lr: 1" + b"0" * 400 + b"\n", ParamsError, ("lr", "finite")),
    ("not-finite-float-string", b"colorizer:\n  lambda_l1: 'nan'\n", ParamsError, ("colorizer.lambda_l1",)),
    # --- seeds the RNGs cannot take, or alias silently
    ("seed-2**64", b"seed: 18446744073709551616\n", ParamsError, ("seed", str(SEED[1]))),
    ("seed-2**32", b"seed: 4294967296\n", ParamsError, ("seed",)),
    ("seed-negative", b"seed: -1\n", ParamsError, ("seed",)),
    ("split-seed-2**32", b"select:\n  split_seed: 4294967296\n", ParamsError, ("select.split_seed",)),
    ("split-seed-negative", b"select:\n  split_seed: -3\n", ParamsError, ("select.split_seed",)),
    ("synthetic-seed-2**64", b"source:\n  synthetic:\n    seed: 18446744073709551616\n", ParamsError,
     ("source.synthetic.seed",)),
    # --- cross-key: the colorizer must end at the prepared size the model file records
    ("progressive-last-not-size", b"colorizer:\n  crop: 0\n  progressive_sizes: [32, 128]\n", ParamsError,
     ("colorizer.progressive_sizes[-1] = 128", "images.size = 256")),
    ("progressive-vs-small-size",
     b"images:\n  size: 32\ncyclegan:\n  crop: 0\ncolorizer:\n  crop: 0\n  progressive_sizes: [16, 64]\n", ParamsError,
     ("colorizer.progressive_sizes[-1] = 64", "images.size = 32")),
    ("progressive-vs-crop", b"colorizer:\n  crop: 32\n  progressive_sizes: [16, 64]\n", ParamsError,
     ("colorizer.progressive_sizes[-1] = 64", "colorizer.crop = 32")),
    # --- page-scale crops must fit in the prepared images
    ("crop-larger-than-images", b"images:\n  size: 64\ncyclegan:\n  crop: 128\n", ParamsError,
     ("cyclegan.crop = 128", "images.size = 64")),
    ("crop-too-small", b"colorizer:\n  crop: 8\n", ParamsError, ("colorizer.crop", "[16, 4096]")),
    ("gan-loss-unknown", b"colorizer:\n  gan_loss: wasserstein\n", ParamsError, ("colorizer.gan_loss", "hinge")),
    ("ema-one", b"colorizer:\n  ema: 1.0\n", ParamsError, ("colorizer.ema", "[0, 1)")),
    ("l1-space-unknown", b"colorizer:\n  l1_space: yuv\n", ParamsError, ("colorizer.l1_space", "lab", "de2000")),
    ("binary-loss-negative", b"cyclegan:\n  lambda_binary: -1\n", ParamsError, ("cyclegan.lambda_binary", "[0, 100]")),
    ("highpass-negative", b"cyclegan:\n  disc_scan_highpass: -2\n", ParamsError,
     ("cyclegan.disc_scan_highpass", "[0, 100]")),
    # --- color hints
    ("hints-p-zero", b"colorizer:\n  hints_p: 0\n", ParamsError, ("colorizer.hints_p", "(0, 1]")),
    ("hints-max-negative", b"colorizer:\n  hints_max: -1\n", ParamsError, ("colorizer.hints_max", "0: no hints")),
    ("hint-recolor-above-one", b"colorizer:\n  hint_recolor: 1.5\n", ParamsError,
     ("colorizer.hint_recolor", "[0, 1]")),
    # --- no file
    ("missing-file", b"", FileNotFoundError, (FILE, "not found")),
]

GOOD: list[tuple[str, bytes, dict]] = [
    ("empty-file", b"", {}),
    ("comments-only", b"# nothing set: every default\n", {}),
    ("lr-scientific", b"lr: 1e-05\n", {"lr": 1e-05}),
    ("lr-string-from-dvc-exp", b"lr: '1e-05'\n", {"lr": 1e-05}),
    ("utf8-bom", b"\xef\xbb\xbflr: 0.0003\n", {"lr": 0.0003}),
    ("utf8-comment", "# café\nlr: 0.0003\n".encode(), {"lr": 0.0003}),
    ("seed-max", f"seed: {SEED[1]}\n".encode(), {"seed": SEED[1]}),
    ("progressive-ends-at-size",
     b"images:\n  size: 32\ncyclegan:\n  crop: 0\ncolorizer:\n  crop: 0\n  progressive_sizes: [16, 32]\n", {}),
    ("progressive-empty", b"colorizer:\n  progressive_sizes: []\n", {}),
    ("progressive-ends-at-crop", b"images:\n  size: 64\ncolorizer:\n  crop: 32\n  progressive_sizes: [16, 32]\n", {}),
]


def _write(tmp_path: Path, case: str, content: bytes) -> Path:
    path = tmp_path / f"{case}.yaml"
    if case != "missing-file":
        path.write_bytes(content)
    return path


def _parts(parts: tuple[str, ...], path: Path) -> list[str]:
    return [str(path) if p == FILE else p for p in parts]


@pytest.mark.parametrize("case, content, exc, parts", BAD, ids=[c[0] for c in BAD])
def test_load_params_refuses_with_one_line(tmp_path, case, content, exc, parts):
    path = _write(tmp_path, case, content)
    with pytest.raises(exc) as err:
        load_params(path)
    assert type(err.value) is exc  # not a KeyError/TypeError/UnicodeDecodeError that happens to subclass
    message = str(err.value)
    assert "\n" not in message, message
    for part in _parts(parts, path):
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize("case, content, exc, parts", BAD, ids=[c[0] for c in BAD])
def test_check_params_cli_exits_2_with_one_line(tmp_path, case, content, exc, parts):
    path = _write(tmp_path, case, content)
    res = runner.invoke(app, ["check-params", str(path)])
    assert isinstance(res.exception, SystemExit), f"traceback: {res.exception!r}\n{res.output}"
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for part in _parts(parts, path):
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"


@pytest.mark.parametrize("case, content, expected", GOOD, ids=[c[0] for c in GOOD])
def test_good_files_load(tmp_path, case, content, expected):
    path = _write(tmp_path, case, content)
    p = load_params(path)
    for key, value in expected.items():
        assert getattr(p, key) == pytest.approx(value)
    if not expected and "progressive" not in case:
        assert p == Params()
    res = runner.invoke(app, ["check-params", str(path)])
    assert res.exit_code == 0 and f"{path}: ok" in res.stdout, res.output


LONG_VALUES = [  # a value read from the file goes into the message as its beginning only
    ("long-string", b"colorizer:\n  gan_loss: " + b"x" * 100_000 + b"\n", "colorizer.gan_loss = 'xxx"),
    ("long-key", b"cyclegan:\n  " + b"k" * 1000 + b": 1\n", "unknown params key cyclegan.kkk"),
    ("many-unknown-keys", b"".join(b"k%d: 1\n" % i for i in range(20_000)), "and 19997 more"),
    ("nested-lists", b"seed: " + b"[" * 50 + b"1" + b"]" * 50 + b"\n", "seed = [[[[...]]]]"),
    ("4000-digit-seed", b"seed: 1" + b"0" * 4000 + b"\n", "seed = <an integer of about 4001 digits>"),
    ("long-list-of-laughs", laughs(4, b"lr"), "lr = [["),
]


@pytest.mark.parametrize("case, content, part", LONG_VALUES, ids=[c[0] for c in LONG_VALUES])
def test_messages_show_at_most_the_beginning_of_a_value(tmp_path, case, content, part):
    path = _write(tmp_path, case, content)
    with pytest.raises(ParamsError) as err:
        load_params(path)
    message = str(err.value)
    assert part in message and "\n" not in message, message
    assert len(message) < 600, message[:1000]


def test_a_billion_laughs_fails_fast_and_small(tmp_path):
    """10**8 strings behind 8 lines of aliases: `onepunch check-params` refuses it in one line,
    within 512 MiB of address space (expanding it for a message took gigabytes)."""
    import resource
    import subprocess
    import sys

    path = tmp_path / "params.yaml"
    path.write_bytes(laughs(8))

    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))

    res = subprocess.run([sys.executable, "-c", "from pipeline.cli import app; app()", "check-params", str(path)],
                         check=False, capture_output=True, text=True, timeout=60, preexec_fn=cap_memory)
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.startswith(f"error: {path}: params key seed stands for more than"), res.stderr[-2000:]
    assert len(res.stderr.splitlines()) == 1


def test_small_aliases_still_load(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"select:\n  scan:\n    exclude: &neither [comic, 4koma]\n  color:\n    exclude: *neither\n")
    p = load_params(path)
    assert p.select.scan.exclude == p.select.color.exclude == ["comic", "4koma"]


@pytest.mark.parametrize(
    "data, parts",
    [
        ({1: "foo"}, ("key 1", "top level")),
        ({"cyclegan": {2: 3, "steps": 4}}, ("cyclegan.2",)),
        ({"cyclegan": {2: 3, "stpes": 4}}, ("cyclegan.2",)),
        ({("a",): 1, "b": 2}, ("key ('a',)",)),
        ({"seed": 2**63}, ("seed",)),
        ({"seed": True}, ("seed", "integer")),
        ({"colorizer": {"crop": 0, "progressive_sizes": [64, 128]}}, ("colorizer.progressive_sizes[-1]", "images.size")),
    ],
)
def test_params_from_dict_refuses_with_one_line(data, parts):
    with pytest.raises(ParamsError) as err:
        params_from_dict(data)
    message = str(err.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


def test_seed_range_is_what_the_training_stages_can_seed():
    """The documented range holds with the offsets the stages add (seed + rank for
    seed_everything, seed + 5 + 1000 * rank for the augmenters), and is the range past
    which the RNGs fail (torch) or alias silently (numpy takes seed % 2**32, Python's
    random.seed takes abs(seed))."""
    import random

    import numpy as np
    import torch

    from pipeline.runtime import seed_everything

    lo, hi = SEED
    rank = 1023
    seed_everything(hi + rank)
    torch.Generator().manual_seed(hi + 5 + 1000 * rank)
    assert (hi + rank) < 2**32  # numpy's seed % 2**32 keeps every rank apart
    with pytest.raises(ValueError):
        seed_everything(2**64)  # what a seed past the range does today, at the first training step
    np.random.seed((2**32) % 2**32)
    a = np.random.rand()
    np.random.seed(0)
    assert np.random.rand() == a  # 2**32 and 0 would be the same numpy stream
    random.seed(-5)
    b = random.random()
    random.seed(5)
    assert random.random() == b  # -5 and 5 would be the same Python stream
    assert lo == 0
