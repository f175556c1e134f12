"""`onepunch serve` in a real browser: the server on 127.0.0.1, Debian's headless Chromium
driven by Selenium with every request to another host sent to a dead proxy. Upload a page,
place hints by clicking, colorize, download; a bad upload shows a message and the server
keeps serving. Also takes the README's screenshot (docs/serve.png) when asked to
(ONEPUNCH_SCREENSHOT=1)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import free_port, wait_until_serving
from PIL import Image

from pipeline.config import ColorizerConfig
from pipeline.models.colorizer import publish_colorizer
from pipeline.training.colorizer_step import build_colorizer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture()
def server(tmp_path):
    model = tmp_path / "color.pt"
    torch.manual_seed(0)
    cfg = ColorizerConfig(width=4, mults=[1, 2], n_attention=1, groups=2, disc_width=4, hints_max=8)
    publish_colorizer(build_colorizer(cfg)[0], model, image_size=32, steps=0, variant="scangen")
    port = free_port()
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.Popen([str(BIN / "onepunch"), "serve", "--port", str(port), "--model", str(model),
                             "--device", "cpu", "--max-mb", "1", "--max-megapixels", "0.5"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    wait_until_serving(url, proc, "onepunch serve")
    yield url, tmp_path
    proc.send_signal(signal.SIGINT)  # Ctrl-C: it stops and removes every upload
    proc.wait(timeout=30)
    assert not list(tmp_path.glob("onepunch-serve-*")), "the server left uploads behind"


def browser(tmp_path: Path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a dev dependency")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                "--proxy-server=127.0.0.1:9", "--window-size=1400,900", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads"),
                                           "download.prompt_for_download": False})
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(service=Service(driver), options=opts)


def boxes_page(path: Path) -> Path:
    arr = np.full((300, 400), 255, np.uint8)
    for x0, x1 in ((20, 190), (210, 380)):
        arr[40:260, x0:x1][[0, 1, -2, -1], :] = 0
        arr[40:260, x0:x1][:, [0, 1, -2, -1]] = 0
    Image.fromarray(arr).save(path)
    return path


def test_upload_hint_colorize_download_in_chromium(server):
    url, tmp_path = server
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    drv = browser(tmp_path)
    try:
        drv.get(url)
        # a bad upload first: a message on the page, and the server keeps serving
        bad = tmp_path / "notes.png"
        bad.write_text("not an image")
        drv.find_element(By.ID, "file").send_keys(str(bad))
        WebDriverWait(drv, 20).until(lambda d: "not an image" in d.find_element(By.ID, "message").text)
        # what the browser shows but the server refuses: over the byte limit, over the pixel
        # limit (the decompression-bomb guard); each gets the server's message on the page
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (1000, 1000, 3), dtype=np.uint8)).save(tmp_path / "noise.png")
        Image.new("L", (1000, 800), 255).save(tmp_path / "huge.png")
        for name, said in (("noise.png", "1,000,000"), ("huge.png", "not a page this can read")):
            drv.find_element(By.ID, "file").send_keys(str(tmp_path / name))
            WebDriverWait(drv, 20).until(lambda d: d.find_element(By.ID, "go").is_enabled())
            drv.find_element(By.ID, "go").click()
            WebDriverWait(drv, 60).until(lambda d, said=said: said in d.find_element(By.ID, "message").text)
        page = boxes_page(tmp_path / "page.png")
        drv.find_element(By.ID, "file").send_keys(str(page))
        WebDriverWait(drv, 20).until(lambda d: d.find_element(By.ID, "go").is_enabled())
        canvas = drv.find_element(By.ID, "input")
        drv.execute_script("document.getElementById('color').value = '#20a040'")
        size = canvas.size  # click the left box's middle (the canvas is shown scaled)
        ActionChains(drv).move_to_element_with_offset(canvas, int(-size["width"] * 0.24), 0).click().perform()
        assert drv.find_element(By.ID, "count").text == "1"
        # before colorizing, the page shows the region the dot will fill: the left box, tinted
        shown = ("return Array.from(document.getElementById('input').getContext('2d')"
                 ".getImageData(arguments[0], arguments[1], 1, 1).data)")
        WebDriverWait(drv, 30).until(lambda d: (lambda p: p[1] - p[0] > 40)(d.execute_script(shown, 60, 100)))
        assert drv.execute_script(shown, 300, 150)[:3] == [255, 255, 255]  # not the other box
        drv.find_element(By.ID, "go").click()
        WebDriverWait(drv, 120).until(lambda d: d.find_element(By.ID, "status").text.startswith("done")
                                      or d.find_element(By.ID, "message").text)
        assert drv.find_element(By.ID, "message").text == ""
        href = drv.find_element(By.ID, "dlPng").get_attribute("href")
        with urllib.request.urlopen(href, timeout=30) as res:
            (tmp_path / "colorized.png").write_bytes(res.read())
        out = np.array(Image.open(tmp_path / "colorized.png").convert("RGB")).astype(int)
        left, right = out[80:220, 50:160], out[80:220, 240:350]
        assert (left[..., 1] - left[..., 0]).mean() > 40  # green where the hint was
        assert abs(right[..., 1] - right[..., 0]).mean() < 20
        scan = np.array(Image.open(page))
        assert (out.max(-1)[scan == 0] == 0).all()  # the page's ink, black
        # the page draws the result from its layers: colors off leaves white paper and the ink
        pixel = ("return Array.from(document.getElementById('result').getContext('2d')"
                 ".getImageData(100, 150, 1, 1).data)")
        slide = ("const c = document.getElementById('compare'); c.value = arguments[0]; "
                 "c.dispatchEvent(new Event('input'))")
        green = drv.execute_script(pixel)
        assert green[1] - green[0] > 40
        drv.find_element(By.ID, "showColor").click()
        assert drv.execute_script(pixel)[:3] == [255, 255, 255]
        drv.find_element(By.ID, "showColor").click()
        assert drv.execute_script(pixel) == green
        drv.execute_script(slide, 0)
        assert drv.execute_script(pixel)[:3] == [255, 255, 255]  # the compare slider shows the input there
        drv.execute_script(slide, 100)
        if os.environ.get("ONEPUNCH_SCREENSHOT"):
            drv.save_screenshot(str(ROOT / "docs" / "serve.png"))
        errors = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"  # the two refusals, each twice
                  and not any(f"/api/{api} - Failed to load resource" in e["message"] for api in ("colorize", "regions"))]
        assert not errors, json.dumps(errors)[:2000]
    finally:
        drv.quit()
