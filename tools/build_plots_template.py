"""Build the offline `dvc plots show` template: Vega, Vega-Lite and Vega-Embed inlined.

DVC's default page loads these scripts from a CDN, so plots stay blank without internet.
Run once after `npm install vega@5 vega-lite@5 vega-embed@6` in a scratch folder:

    python tools/build_plots_template.py /path/to/node_modules

The result is committed as .dvc/plots-template.html (the three libraries are BSD-3-Clause,
(c) the University of Washington Interactive Data Lab).
"""

import json
import sys
from pathlib import Path

PACKAGES = [("vega", "build/vega.min.js"), ("vega-lite", "build/vega-lite.min.js"),
            ("vega-embed", "build/vega-embed.min.js")]

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- {versions}: inlined so the page renders offline (BSD-3-Clause, UW IDL) -->
    {inline}
    <style>
        table {{ border-spacing: 15px; }}
        img {{ max-width: 100%; image-rendering: pixelated; }}
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def main() -> None:
    modules = Path(sys.argv[1])
    scripts, versions = [], []
    for name, rel in PACKAGES:
        code = (modules / name / rel).read_text(encoding="utf-8")
        if "</script" in code.lower():
            raise SystemExit(f"{name}: contains </script>, cannot inline safely")
        version = json.loads((modules / name / "package.json").read_text())["version"]
        versions.append(f"{name} {version}")
        scripts.append(f'<script type="text/javascript">{code}</script>')
    page = PAGE.replace("{{", "{").replace("}}", "}")  # before inlining: the JS has braces
    page = page.replace("{versions}", ", ".join(versions)).replace("{inline}", "\n    ".join(scripts))
    out = Path(__file__).resolve().parents[1] / ".dvc" / "plots-template.html"
    out.write_text(page, encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB): {', '.join(versions)}")


if __name__ == "__main__":
    main()
