"""The page of `segnext serve` in a real headless Chromium: choose an image, see the overlay and the
class list, checked on a screenshot. Skipped, saying why, where Chromium (Debian's `chromium`
package) or Playwright's Python package is absent."""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="fastapi is not installed (pip install 'segnext[serve]')")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (pip install 'segnext[serve]')")
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright; "
                                                               "the browser is Debian's chromium, not a download)")

import segnext  # noqa: E402
from segnext.serve import create_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")

# The flags of a closed network: no background connections, no sandbox as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KEY = "the-page-s-key-0123456789"


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    palette = [[255, 0, 0], [0, 0, 255]]
    model = segnext.create_model("segnext_t", 2, class_names=["red thing", "blue thing"], palette=palette)
    model.config.test_settings = segnext.TestConfig(img_scale=(96, 64)).to_dict()
    folder = segnext.save_model(model, tmp_path_factory.mktemp("page") / "model")
    return segnext.Segmenter.from_checkpoint(folder, device="cpu")


def serving(app):
    """Run `app` on a free port in a thread; yields its URL, then stops it."""
    port = free_port()
    instance = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not instance.started and time.time() < deadline:
        time.sleep(0.05)
    assert instance.started, "the server did not start"
    yield f"http://127.0.0.1:{port}/"
    instance.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def server(segmenter):
    app = create_app(segmenter, name="page-model")
    for url in serving(app):
        yield url, segmenter, app.service.worker


@pytest.fixture(scope="module")
def guarded_server(segmenter):
    yield from serving(create_app(segmenter, name="guarded-model", api_keys=[KEY]))


def test_choose_an_image_and_see_overlay_and_classes(server, tmp_path):
    url, segmenter, worker = server
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, :80] = (200, 200, 200)
    image[:, 80:] = (30, 30, 30)
    path = tmp_path / "scene.png"
    Image.fromarray(image).save(path)
    labels, confidence = segmenter.predict_with_confidence(image)
    images_before = worker.images
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 600})
            page.goto(url)
            page.wait_for_function("document.getElementById('model').textContent.includes('page-model')")
            assert not page.is_visible("#key")  # an open server asks for no key
            page.set_input_files("#file", str(path))
            page.wait_for_function("document.body.dataset.done !== undefined", timeout=60_000)
            assert page.evaluate("document.body.dataset.done") == "1", page.inner_text("#status")
            status = page.inner_text("#status")
            rows = page.inner_text("#classes")
            natural = page.evaluate("[document.getElementById('result').naturalWidth, "
                                    "document.getElementById('result').naturalHeight]")
            box = page.locator("#result").bounding_box()
            shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
            sure_label = page.inner_text("#view")
            # Two classes' confidence is never under the server's 50%: the page asks for 90% here.
            page.evaluate("unsureBelow = 0.9")
            page.check("input[value=sure]")  # the classes where the model is sure: the others uncoloured
            page.wait_for_function("document.body.dataset.shown === 'sure'", timeout=60_000)
            page.wait_for_function("document.getElementById('result').complete")
            sure_shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
            page.check("input[value=confidence]")  # the other view: each pixel's confidence, in grey
            page.wait_for_function("document.body.dataset.shown === 'confidence'", timeout=60_000)
            page.wait_for_function("document.getElementById('result').complete")
            grey = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
        finally:
            browser.close()
    assert "160 x 120 pixels" in status and natural == [160, 120]
    assert f"mean confidence {100 * confidence.mean():.0f} %" in status
    assert f"on {100 * (confidence < 0.5).mean():.1f} % of the pixels" in status
    present = [index for index in range(2) if (labels == index).any()]
    for index in present:
        name = ["red thing", "blue thing"][index]
        share, sure = 100 * (labels == index).mean(), 100 * confidence[labels == index].mean()
        assert f"{name}\t{share:.1f} %\t{sure:.0f} %" in rows, rows
    assert worker.images == images_before + 1  # the overlays and the confidence came from the cache
    # The screenshot shows the overlay where the page put it: the image blended with the class colours.
    x0, y0 = int(box["x"]) + 2, int(box["y"]) + 2
    shown = shot[y0:y0 + int(box["height"]) - 4, x0:x0 + int(box["width"]) - 4].astype(int)
    expected = segnext.data.overlay(image, labels, [[255, 0, 0], [0, 0, 255]], 0.5, ignore_index=None)
    left, right = expected[:, :80].reshape(-1, 3).mean(0), expected[:, 80:].reshape(-1, 3).mean(0)
    half = shown.shape[1] // 2
    assert np.abs(shown[:, : half - 4].reshape(-1, 3).mean(0) - left).max() < 25
    assert np.abs(shown[:, half + 4:].reshape(-1, 3).mean(0) - right).max() < 25
    assert "the classes where the model is sure (50 % or more)" in sure_label
    kept = np.where(confidence < 0.9, 255, labels)
    expected_sure = segnext.data.overlay(image, kept, [[255, 0, 0], [0, 0, 255]], 0.5, ignore_index=255)
    assert np.abs(expected_sure.reshape(-1, 3).mean(0) - expected.reshape(-1, 3).mean(0)).max() > 25  # it tells
    shown_sure = sure_shot[y0:y0 + int(box["height"]) - 4, x0:x0 + int(box["width"]) - 4].astype(int)
    for shown_columns, image_columns in ((slice(0, half - 4), slice(0, 80)), (slice(half + 4, None), slice(80, None))):
        assert np.abs(shown_sure[:, shown_columns].reshape(-1, 3).mean(0)
                      - expected_sure[:, image_columns].reshape(-1, 3).mean(0)).max() < 25
    shown_grey = grey[y0:y0 + int(box["height"]) - 4, x0:x0 + int(box["width"]) - 4].astype(int)
    assert np.abs(shown_grey[..., 0] - shown_grey[..., 2]).max() <= 2  # grey
    assert abs(shown_grey.mean() - 255 * confidence.mean()) < 10


def test_an_error_is_shown_on_the_page(server, tmp_path):
    url, _, _ = server
    path = tmp_path / "notes.png"
    path.write_bytes(b"not an image at all")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.set_input_files("#file", str(path))
            page.wait_for_function("document.body.dataset.done !== undefined", timeout=60_000)
            assert page.evaluate("document.body.dataset.done") == "error"
            assert "is not an image" in page.inner_text("#status")
        finally:
            browser.close()


def test_a_server_with_a_key_asks_for_it_on_the_page(guarded_server, tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(np.full((60, 80, 3), 128, np.uint8)).save(path)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(guarded_server)
            page.wait_for_function("document.getElementById('model').textContent.includes('guarded-model')")
            assert page.is_visible("#key")
            page.set_input_files("#file", str(path))  # without the key
            page.wait_for_function("document.body.dataset.done !== undefined", timeout=60_000)
            assert page.evaluate("document.body.dataset.done") == "error"
            assert "needs this server's key: no key was given" in page.inner_text("#status")
            page.fill("#key", KEY)
            page.set_input_files("#file", [])
            page.set_input_files("#file", str(path))
            page.wait_for_function("document.body.dataset.done !== undefined", timeout=60_000)
            assert page.evaluate("document.body.dataset.done") == "1", page.inner_text("#status")
            assert "80 x 60 pixels" in page.inner_text("#status")
        finally:
            browser.close()
