"""The README's screenshot: the app with the shipped weights, one of its own examples analysed, as a
reviewer sees it in Chromium (Debian `chromium`, Python playwright; no `playwright install`).

    .venv/bin/python notes/scripts/screenshot.py --example "FAKE: face blended in (photo a)" \\
        --out docs/screenshot.png [--width 1366 --height 900] [--weights weights]

Clicks the labelled example in the Image tab (the labels are `present.example_label`'s), presses
Analyse, waits for the verdict and saves the viewport scrolled to the result. Prints the verdict
the page showed, so the caption can say it. ``--video PATH`` instead uploads a video in the Video tab
(the app's default frame count) and does the same:

    .venv/bin/python notes/scripts/screenshot.py --video clip.mp4 --out runs/shot_video.png
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--example", help="the example's label as the app shows it")
    which.add_argument("--video", type=Path, help="a video file to upload in the Video tab instead")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--weights", default=str(ROOT / "weights"))
    ap.add_argument("--width", type=int, default=1366)
    ap.add_argument("--height", type=int, default=900)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise SystemExit("Chromium not found: apt-get install -y chromium")
    sys.path.insert(0, str(ROOT))  # the repository root: runs without PYTHONPATH
    from deepfake_demo.soak import serve_app

    with tempfile.TemporaryDirectory() as log_dir, serve_app(args.weights, Path(log_dir)) as (url, _):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(url, wait_until="load")  # not networkidle: the page keeps a heartbeat stream open (its gr.State)
            if args.video:
                page.get_by_role("tab", name="Video").click()
                page.wait_for_selector("#video-input input[type=file]", state="attached")
                page.locator("#video-input input[type=file]").set_input_files(str(args.video))
                page.wait_for_selector("#video-input video", timeout=30_000)
                page.click("#analyze-video")
            else:
                page.get_by_text(args.example, exact=True).first.click()
                page.wait_for_selector("#image-input img", timeout=30_000)
                page.click("#analyze-image")
            page.wait_for_selector("#badge .verdict-badge", timeout=300_000)
            page.wait_for_timeout(1500)  # the heatmap gallery's images finish loading
            verdict = page.locator("#badge .verdict-badge .v").inner_text()
            page.locator("#badge").scroll_into_view_if_needed()
            page.evaluate("window.scrollBy(0, -40)")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
            browser.close()
    print(f"{args.out}: {args.video or args.example} -> {verdict.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
