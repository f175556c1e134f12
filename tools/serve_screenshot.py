"""The README's picture of `onepunch serve` in use, and its timing against the CLI.

Starts `onepunch serve` with a real colorizer, drives the page in headless Chromium (as
tests/colorist/test_serve_browser.py does, every other host sent to a dead proxy): uploads the
README's page, clicks its hints (docs/page_hints.json) onto the canvas, colorizes, and
saves docs/serve.png. Then times `onepunch colorize` on the same page with the same hints,
and prints both (the page's "done in" is the browser's whole round trip: upload,
colorization, the layers drawn).

    python tools/serve_screenshot.py --model models/colorizer.pt
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models/colorizer.pt")
    ap.add_argument("--page", type=Path, default=ROOT / "docs/page_scan.png")
    ap.add_argument("--hints", type=Path, default=ROOT / "docs/page_hints.json")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/serve.png")
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp())
    server = subprocess.Popen([str(BIN / "onepunch"), "serve", "--port", str(port), "--model", str(args.model),
                               "--device", "cpu"])
    url = f"http://127.0.0.1:{port}/"
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
                "--window-size=1500,1000", f"--user-data-dir={tmp / 'profile'}"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        drv.get(url)
        drv.find_element(By.ID, "file").send_keys(str(args.page.resolve()))
        WebDriverWait(drv, 30).until(lambda d: d.find_element(By.ID, "go").is_enabled())
        for h in json.loads(args.hints.read_text()):  # what a click at (x, y) of the page does
            drv.execute_script(f"document.getElementById('color').value = '{h['color']}'")
            drv.execute_script("""
                const c = document.getElementById('input'), b = c.getBoundingClientRect();
                c.dispatchEvent(new MouseEvent('click', {clientX: b.left + arguments[0] * b.width / c.width,
                                                         clientY: b.top + arguments[1] * b.height / c.height}));
            """, h["x"] + 0.5, h["y"] + 0.5)
        drv.find_element(By.ID, "go").click()
        WebDriverWait(drv, 300).until(lambda d: d.find_element(By.ID, "status").text.startswith("done")
                                      or d.find_element(By.ID, "message").text)
        page_time = drv.find_element(By.ID, "status").text
        drv.execute_script("const c = document.getElementById('compare'); c.value = 55; "
                           "c.dispatchEvent(new Event('input'))")
        drv.save_screenshot(str(args.out))
    finally:
        drv.quit()
        server.terminate()
        server.wait()
    t0 = time.perf_counter()
    subprocess.run([str(BIN / "onepunch"), "colorize", str(args.page), "--hints", str(args.hints), "--model",
                    str(args.model), "-o", str(tmp / "cli"), "--device", "cpu"], check=True, capture_output=True)
    cli_s = time.perf_counter() - t0
    print(json.dumps({"page": page_time, "cli_process_s": round(cli_s, 2), "screenshot": str(args.out)}))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
