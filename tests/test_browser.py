"""The app in a real browser: start `python app.py` in a subprocess with tiny
test-only weights, drive it in headless Chromium (Debian `chromium` through
Python playwright; no `playwright install`), upload an image and a video from
../shared/data, check that the verdict, a heatmap, the plot and a playable
annotated video appear, and save screenshots under runs/screenshots/."""
from __future__ import annotations

import shutil

import pytest

from conftest import ROOT
from deepfake_demo.soak import serve_app

SHOTS = ROOT / "runs" / "screenshots"
VERDICTS = ("FAKE", "REAL", "UNCERTAIN", "NO FACE", "NO_FACE", "ERROR")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# the project's own media (examples/make_examples.py), so the browser test runs without ../shared/data
IMAGE = ROOT / "examples" / "astronaut_real.jpg"
VIDEO = ROOT / "examples" / "astronaut_blended_zoom.mp4"  # 320x320, 24 frames: fast on a CPU
FRAMES = 4


@pytest.fixture(scope="module")
def browser():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("Chromium not found: `apt-get install -y chromium` to run the browser test")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Python playwright not installed: `pip install playwright` (no `playwright install` needed)")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        except Exception as exc:  # a browser that cannot start is a skip, not a failure
            pytest.skip(f"Chromium could not start: {str(exc).splitlines()[0]}")
        yield b
        b.close()


@pytest.fixture(scope="module")
def app_url(tiny_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("app")
    try:
        with serve_app(tiny_weights, out) as (url, _):
            yield url
    except RuntimeError as exc:  # it exited or did not come up: the failure shows its log
        pytest.fail(f"{exc}:\n{(out / 'app.log').read_text()[-3000:]}")


def _set_frames(page, n: int) -> None:
    """Type the frame count into the slider's number box; the range input shows
    when Gradio took it (a fill right after the tab switch was sometimes lost)."""
    box = page.locator("#frames input[type=number]")
    for _ in range(5):
        box.fill(str(n))
        box.press("Tab")
        page.wait_for_timeout(300)
        if page.locator("#frames input[type=range]").input_value() == str(n):
            return
    raise AssertionError(f"could not set the frame count to {n}")


def _wait_results(page, timeout_ms: int = 120_000) -> str:
    """Wait for the verdict label and return its text."""
    page.wait_for_selector("#badge .verdict-badge", timeout=timeout_ms)
    text = page.locator("#badge .verdict-badge .v").inner_text()
    assert any(v in text for v in VERDICTS), text
    return text


def test_image_and_video_in_chromium(browser, app_url, detector):
    image, video = IMAGE, VIDEO
    # what the library says for the same inputs and weights, untouched settings (the page must show it)
    expect = (detector.analyze(image, heatmaps=False).verdict,
              detector.analyze(video, frames=FRAMES, heatmaps=False).verdict)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        _drive(page, app_url, image, video, expect)
    except Exception:
        page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
        raise


def _drive(page, app_url, image, video, expect):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app_url, wait_until="load")  # not networkidle: the page keeps a heartbeat stream open (its gr.State)
    page.wait_for_selector("#analyze-image")
    assert page.locator("#weights-warning").count() == 1, "test-only weights must be flagged on the page"
    # before any result: the placeholder (an HTML component's value, which can mount after the button:
    # waited for, failing after 15 s), no empty galleries or plot, the settings closed
    page.wait_for_selector("#placeholder", state="visible", timeout=15_000)
    page.screenshot(path=str(SHOTS / "01_start.png"), full_page=True)
    assert not page.locator("#frames-gallery").is_visible() and not page.locator("#plot").is_visible()
    assert not page.get_by_label("Heatmap opacity").is_visible(), "settings must start closed"

    # image
    page.locator("#image-input input[type=file]").set_input_files(str(image))
    page.wait_for_selector("#image-input img", timeout=30_000)
    page.click("#analyze-image")
    verdict = _wait_results(page)
    assert verdict.strip().replace(" ", "_") == expect[0], (verdict, expect[0])
    assert "test-only" in page.locator("#badge").inner_text()
    # white text on the verdict colour (the theme must not recolour it)
    assert page.evaluate("getComputedStyle(document.querySelector('#verdict-badge .v')).color") == "rgb(255, 255, 255)"
    page.wait_for_selector("#faces-gallery img", timeout=30_000)  # crop + heatmap panels
    page.wait_for_selector("#plot [data-testid=matplotlib] img", timeout=30_000)  # the figure itself
    page.screenshot(path=str(SHOTS / "02_image_result.png"), full_page=True)

    # video, with few frames to stay fast on a CPU
    page.get_by_role("tab", name="Video").click()
    page.wait_for_selector("#video-input input[type=file]", state="attached")
    page.locator("#video-input input[type=file]").set_input_files(str(video))
    page.wait_for_selector("#video-input video", timeout=30_000)
    # a new input clears the image's result: no verdict on screen that belongs to another file
    page.wait_for_selector("#placeholder", timeout=10_000)
    assert page.locator("#verdict-badge").count() == 0 and not page.locator("#faces-gallery").is_visible()
    _set_frames(page, FRAMES)
    page.click("#analyze-video")
    page.wait_for_function(
        "() => (document.querySelector('#badge') || {}).innerText?.includes('frame(s) analysed')", timeout=150_000)
    verdict = _wait_results(page)
    page.wait_for_selector("#frames-gallery img", timeout=30_000)
    page.wait_for_selector("#faces-gallery img", timeout=30_000)
    page.wait_for_selector("#plot [data-testid=matplotlib] img", timeout=30_000)  # the figure itself
    page.wait_for_selector("#annotated-video video", timeout=60_000)
    # the annotated video must decode in Chromium (H.264 mp4, or VP8 webm as the fallback)
    page.wait_for_function(
        "() => { const v = document.querySelector('#annotated-video video');"
        " return v && v.readyState >= 1 && v.videoWidth > 0; }", timeout=30_000)
    assert page.evaluate("document.querySelector('#annotated-video video').error") is None
    assert f"{FRAMES} frame(s) analysed" in page.locator("#badge").inner_text()
    page.screenshot(path=str(SHOTS / "03_video_result.png"), full_page=True)
    page.locator("#frames-gallery img").first.click()  # click to enlarge
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "04_frame_enlarged.png"))
    page.keyboard.press("Escape")
    page.get_by_text("How to read this", exact=True).click()
    page.get_by_text("Model card", exact=True).click()
    page.wait_for_selector("#model-card")
    assert "test-only" in page.locator("#model-card").inner_text()
    page.locator("#model-card").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "06_model_card.png"), full_page=True)
    assert not errors, errors
    assert verdict.strip().replace(" ", "_") == expect[1], (verdict, expect[1])  # the video's, as the library says


def test_no_weights_message_in_chromium(browser, tmp_path):
    """No weights: the app still starts and says so on the page, without a traceback."""
    empty = tmp_path / "empty_weights"
    empty.mkdir()
    with serve_app(empty, tmp_path / "app", args=["--no-warm-up"]) as (url, _):  # an exit raises
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url, wait_until="load")  # not networkidle: the page keeps a heartbeat stream open (its gr.State)
        box = page.wait_for_selector("#no-weights")
        text = box.inner_text()
        assert "No trained weights" in text and "--weights" in text, text
        assert "Traceback" not in page.content()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "05_no_weights.png"), full_page=True)
