"""`segnext serve`'s application through FastAPI's test client: the answers, the bad inputs (each a 4xx
with a JSON message, after which the server still serves) and concurrent requests."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="fastapi is not installed (pip install 'segnext[serve]')")
pytest.importorskip("httpx", reason="httpx is not installed: FastAPI's test client needs it")
from fastapi.testclient import TestClient  # noqa: E402

import segnext  # noqa: E402
from segnext.serve import create_app  # noqa: E402

NAMES = ["sky", "road", "car", "tree"]
PALETTE = [[70, 130, 180], [128, 64, 128], [0, 0, 142], [107, 142, 35]]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    model = segnext.create_model("segnext_t", 4, class_names=NAMES, palette=PALETTE)
    model.config.test_settings = segnext.TestConfig(img_scale=(96, 64)).to_dict()
    return segnext.save_model(model, tmp_path_factory.mktemp("serve") / "model")


@pytest.fixture(scope="module")
def segmenter(model_folder):
    return segnext.Segmenter.from_checkpoint(model_folder, device="cpu")


@pytest.fixture(scope="module")
def client(segmenter):
    app = create_app(segmenter, name="test-model", batch_size=4, max_upload_mb=0.5, max_pixels=400 * 300)
    with TestClient(app) as client:
        yield client


def png_bytes(array, format="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format)
    return buffer.getvalue()


def photo(seed=0, height=60, width=80) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def post(client, data: bytes, output=None, filename="photo.png", confidence=None):
    params = {"output": output} if output else {}
    if confidence is not None:
        params["confidence"] = confidence
    return client.post("/predict", params=params, files={"image": (filename, data, "application/octet-stream")})


def test_health_describes_the_model(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["model"] == "test-model" and body["classes"] == NAMES
    assert body["version"] == segnext.__version__  # which segnext a deployment runs
    assert body["device"] == "cpu" and body["test_config"]["img_scale"] == [96, 64]
    assert body["outputs"] == ["labels", "overlay", "json", "confidence"] and body["unsure_below"] == 0.5


def test_labels_are_exactly_what_segnext_predict_writes(client, model_folder, tmp_path):
    from segnext.cli.main import main

    image = photo(1)
    Image.fromarray(image).save(tmp_path / "photo.png")
    assert main(["predict", "-c", str(model_folder), str(tmp_path / "photo.png"), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    response = post(client, png_bytes(image))
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content == (tmp_path / "out" / "photo.png").read_bytes()
    labels = np.asarray(Image.open(io.BytesIO(response.content)))
    assert labels.shape == image.shape[:2] and labels.max() < 4


def test_overlay_and_json(client, segmenter):
    image = photo(2)
    labels = segmenter.predict(image)
    response = post(client, png_bytes(image), "overlay")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    blended = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    assert np.array_equal(blended, segnext.data.overlay(image, labels, PALETTE, 0.5, ignore_index=None))
    summary = post(client, png_bytes(image), "json").json()
    assert (summary["width"], summary["height"]) == (80, 60)
    counts = np.bincount(labels.ravel(), minlength=4)
    assert {c["name"]: c["pixels"] for c in summary["classes"]} == {NAMES[i]: int(counts[i]) for i in range(4)
                                                                    if counts[i]}
    assert sum(c["fraction"] for c in summary["classes"]) == pytest.approx(1.0)
    assert [c["pixels"] for c in summary["classes"]] == sorted((c["pixels"] for c in summary["classes"]), reverse=True)


def test_confidence_image_is_what_segnext_predict_writes(client, model_folder, tmp_path):
    from segnext.cli.main import main

    image = photo(6)
    Image.fromarray(image).save(tmp_path / "photo.png")
    assert main(["predict", "-c", str(model_folder), str(tmp_path / "photo.png"), "--out", str(tmp_path / "out"),
                 "--confidence", "--no-progress"]) == 0
    response = post(client, png_bytes(image), "confidence")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content == (tmp_path / "out" / "photo_confidence.png").read_bytes()


def test_json_with_confidence_says_how_sure_the_model_is(client, segmenter):
    image = photo(7)
    labels, confidence = segmenter.predict_with_confidence(image)
    plain = post(client, png_bytes(image), "json").json()
    assert "confidence" not in plain and all("confidence" not in c for c in plain["classes"])
    summary = post(client, png_bytes(image), "json", confidence="true").json()
    assert summary["classes"] == [{**c, "confidence": summary["classes"][i]["confidence"]}
                                  for i, c in enumerate(plain["classes"])]  # the same classes, with more
    assert summary["confidence"] == pytest.approx(confidence.mean(), abs=1e-6)
    assert summary["unsure_fraction"] == pytest.approx((confidence < summary["unsure_below"]).mean())
    assert summary["unsure_below"] == 0.5
    for entry in summary["classes"]:
        assert entry["confidence"] == pytest.approx(confidence[labels == entry["id"]].mean(), abs=1e-6)


def test_unsure_pixels_are_left_unlabelled_as_segnext_predict_leaves_them(client, segmenter, model_folder, tmp_path):
    from segnext.cli.main import main

    image = photo(8)
    labels, confidence = segmenter.predict_with_confidence(image)
    below = float(np.median(confidence))
    Image.fromarray(image).save(tmp_path / "photo.png")
    assert main(["predict", "-c", str(model_folder), str(tmp_path / "photo.png"), "--out", str(tmp_path / "out"),
                 "--unsure-below", str(below), "--no-progress"]) == 0
    response = client.post("/predict", params={"unsure_below": below}, files={"image": ("p.png", png_bytes(image))})
    assert response.status_code == 200 and response.content == (tmp_path / "out" / "photo.png").read_bytes()
    left = np.where(confidence < below, 255, labels)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(response.content))), left) and (left == 255).any()
    response = client.post("/predict", params={"output": "overlay", "unsure_below": below},
                           files={"image": ("p.png", png_bytes(image))})
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")),
                          segnext.data.overlay(image, left, PALETTE, 0.5, ignore_index=255))
    for params, words in (({"output": "json", "unsure_below": 0.5}, "not in output=json"),
                          ({"unsure_below": 1.5}, "between 0 and 1"), ({"unsure_below": "high"}, "unsure_below")):
        response = client.post("/predict", params=params, files={"image": ("p.png", png_bytes(image))})
        assert response.status_code == 400 and words in response.json()["error"], response.text


def test_a_sieve_merges_small_regions_as_segnext_predict_does(client, model_folder, tmp_path, monkeypatch):
    """&sieve=N: the label PNG of `segnext predict --sieve N`, and the JSON's classes counted on it;
    refused for output=confidence, below 1, and (501) where the server has no rasterio."""
    pytest.importorskip("rasterio", reason="rasterio is not installed (pip install 'segnext[gis]')")
    from segnext.cli.main import main

    image = photo(9)
    Image.fromarray(image).save(tmp_path / "photo.png")
    assert main(["predict", "-c", str(model_folder), str(tmp_path / "photo.png"), "--out", str(tmp_path / "out"),
                 "--sieve", "30", "--no-progress"]) == 0
    expected = (tmp_path / "out" / "photo.png").read_bytes()
    response = client.post("/predict", params={"sieve": 30}, files={"image": ("p.png", png_bytes(image))})
    assert response.status_code == 200 and response.content == expected
    sieved = np.asarray(Image.open(io.BytesIO(expected)))
    plain = client.post("/predict", files={"image": ("p.png", png_bytes(image))}).content
    assert not np.array_equal(np.asarray(Image.open(io.BytesIO(plain))), sieved)  # there were specks to merge
    response = client.post("/predict", params={"sieve": 30, "output": "json"},
                           files={"image": ("p.png", png_bytes(image))})
    fractions = {entry["id"]: entry["fraction"] for entry in response.json()["classes"]}
    assert fractions == {int(c): pytest.approx((sieved == c).mean()) for c in np.unique(sieved)}
    for params, status, words in (({"sieve": 30, "output": "confidence"}, 400, "not output=confidence"),
                                  ({"sieve": 0}, 400, "at least 1")):
        response = client.post("/predict", params=params, files={"image": ("p.png", png_bytes(image))})
        assert response.status_code == status and words in response.json()["error"], response.text
    from segnext.serve import app

    monkeypatch.setattr(app, "find_spec", lambda name: None if name == "rasterio" else object())
    response = client.post("/predict", params={"sieve": 30}, files={"image": ("p.png", png_bytes(image))})
    assert response.status_code == 501 and "pip install 'segnext[gis]'" in response.json()["error"]


def test_the_page_s_two_requests_run_the_model_once(segmenter):
    """The page asks for the JSON with the confidence, then the overlay: the second comes from the
    cache. Labels first and the confidence afterwards run the model again, once."""
    app = create_app(segmenter, name="cached")
    with TestClient(app) as client:
        worker = app.service.worker
        first, second = png_bytes(photo(8)), png_bytes(photo(9))
        assert post(client, first, "json", confidence="true").status_code == 200
        for output in ("overlay", "labels", "confidence", "json"):
            assert post(client, first, output).status_code == 200
        assert worker.images == 1
        assert post(client, second, "overlay").status_code == 200
        assert post(client, second, "labels").status_code == 200
        assert worker.images == 2
        assert post(client, second, "confidence").status_code == 200  # not kept yet: computed now
        assert post(client, second, "json", confidence="true").status_code == 200
        assert worker.images == 3


def test_the_cache_keeps_the_confidence_once_it_is_computed_and_counts_its_bytes():
    from segnext.serve.app import ResultCache

    labels, confidence = np.zeros((10, 10), np.uint8), np.ones((10, 10), np.float32)
    cache = ResultCache(max_bytes=1000)
    cache.put("a", (labels, None))
    assert cache.get("a")[1] is None and cache.get("a", with_confidence=True) is None
    cache.put("a", (labels, confidence))
    assert cache.get("a", with_confidence=True)[1] is confidence and cache._bytes == 500
    cache.put("a", (labels, None))  # an answer without it does not replace one with it
    assert cache.get("a")[1] is confidence
    cache.put("b", (labels, confidence))
    cache.put("c", (labels, None))  # 1100 bytes: the oldest goes
    assert cache.get("a") is None and cache._bytes == 600
    cache.put("d", (np.zeros((40, 40), np.uint8), np.ones((40, 40), np.float32)))  # larger than all: not kept
    assert cache.get("d") is None and cache._bytes == 600


def test_a_jpeg_with_exif_orientation_is_read_as_predict_reads_it(client, segmenter):
    image = photo(3, 40, 70)
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the pixels are stored sideways
    Image.fromarray(image).save(buffer, format="JPEG", exif=exif)
    summary = post(client, buffer.getvalue(), "json", "photo.jpg").json()
    assert (summary["width"], summary["height"]) == (40, 70)


@pytest.mark.parametrize("case, status, words", [
    ("text", 400, "is not an image"),
    ("truncated", 400, "truncated or corrupt"),
    ("empty", 400, "is empty"),
    ("too many pixels", 413, "over this server's limit"),
    ("too large", 413, "over this server's limit of 0.5 MB"),
    ("bad output", 400, "is not one of labels, overlay, json, confidence"),
    ("confidence with labels", 400, "confidence=true adds the confidence to output=json, not to output=labels"),
    ("confidence not a yes or no", 400, "confidence"),
])
def test_bad_input_is_a_4xx_with_a_message_and_the_server_goes_on(client, case, status, words):
    good = png_bytes(photo(4))
    data, output = {
        "text": (b"hello, this is not an image", None),
        "truncated": (good[: len(good) // 2], None),
        "empty": (b"", None),
        "too many pixels": (png_bytes(np.zeros((400, 301, 3), np.uint8)), None),  # small file, 120,400 pixels
        "too large": (np.random.default_rng(0).bytes(600_000), None),
        "bad output": (good, "mask"),
        "confidence with labels": (good, "labels"),
        "confidence not a yes or no": (good, "json"),
    }[case]
    confidence = {"confidence with labels": "true", "confidence not a yes or no": "maybe"}.get(case)
    response = post(client, data, output, confidence=confidence)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    assert post(client, good).status_code == 200  # still serving


def test_a_missing_field_is_named(client):
    response = client.post("/predict", files={"picture": ("photo.png", png_bytes(photo(5)), "image/png")})
    assert response.status_code == 400 and "no image in the form's field 'image': send it as the multipart/" \
                                           "form-data field 'image'" in response.json()["error"]
    response = client.post("/predict", content=b"some text", headers={"content-type": "text/plain"})
    assert response.status_code == 400 and response.json()["error"].startswith(
        "no image (Content-Type text/plain): send it as the multipart/form-data field 'image' (curl -F "
        "image=@photo.jpg URL/predict), as the request body with its Content-Type (curl --data-binary @photo.jpg "
        "-H 'Content-Type: image/jpeg' URL/predict), or as JSON")
    for body in (b"{}", b'{"image": "not base64!"}', b"[1]", b"not json"):
        response = client.post("/predict", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400 and "the JSON body holds no base64 image under \"image\"" in \
            response.json()["error"]
    assert post(client, png_bytes(photo(5))).status_code == 200  # still serving


def test_the_image_as_the_body_or_as_base64_json_gets_the_form_upload_s_answer(client):
    """What clients other than a browser's form send: the bytes as the body, or JSON with base64 (a
    data: URL too); the same answer as the multipart upload, and bad bytes the same 400."""
    import base64

    data = png_bytes(photo(6))
    expected = post(client, data, "json").json()
    as_body = client.post("/predict", params={"output": "json"}, content=data, headers={"content-type": "image/png"})
    assert as_body.status_code == 200 and as_body.json() == expected
    octets = client.post("/predict", content=data, headers={"content-type": "application/octet-stream"})
    assert octets.status_code == 200 and octets.content == post(client, data).content
    for encoded in (base64.b64encode(data).decode(), "data:image/png;base64," + base64.b64encode(data).decode()):
        as_json = client.post("/predict", params={"output": "json"}, json={"image": encoded})
        assert as_json.status_code == 200 and as_json.json() == expected
    broken = client.post("/predict", content=b"not an image", headers={"content-type": "image/jpeg"})
    assert broken.status_code == 400 and "the uploaded file" in broken.json()["error"]


def test_a_decompression_bomb_is_refused_before_decoding(client):
    """A PNG that claims 20000 x 20000 pixels in a few hundred bytes."""
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format="PNG")
    response = post(client, buffer.getvalue())
    assert response.status_code == 413 and "20000x20000" in response.json()["error"]


def test_a_chunked_upload_over_the_limit_is_refused_while_it_streams(client):
    boundary = "segnextboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.bin\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()

    def chunks():  # no Content-Length: the size is only known by reading
        yield head
        for _ in range(10):
            yield b"\0" * 100_000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post("/predict", content=chunks(), headers={"content-type": f"multipart/form-data; "
                                                                                  f"boundary={boundary}"})
    assert response.status_code == 413 and "0.5 MB" in response.json()["error"]


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(segmenter):
    """Every third request asks for the confidence: a batch computes it for them only."""
    app = create_app(segmenter, name="batched", batch_size=4, max_inflight=8)
    images = [photo(10 + i) for i in range(8)]  # one size: they can share forward passes
    expected = [segmenter.predict(image) for image in images]
    results = [None] * len(images)
    confidence = [None] * len(images)
    with TestClient(app) as client:
        service = app.service
        barrier = threading.Barrier(len(images))

        def ask(index):
            barrier.wait()
            if index % 3 == 0:
                confidence[index] = post(client, png_bytes(images[index]), "json", confidence="true")
            results[index] = post(client, png_bytes(images[index]))

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(images))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(r.status_code == 200 for r in results)
        for response, labels in zip(results, expected):
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(response.content))), labels)
        for index in range(0, len(images), 3):
            expected_confidence = segmenter.predict_with_confidence(images[index])[1].mean()
            assert confidence[index].json()["confidence"] == pytest.approx(expected_confidence, abs=1e-6)
        assert service.worker.images == len(images)  # the labels after the confidence came from the cache
        assert service.worker.batches < len(images)  # some shared a forward pass


def _metrics(client) -> dict:
    """/metrics parsed: {(name, labels as sorted tuples): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def test_metrics_count_what_the_server_did(segmenter):
    app = create_app(segmenter, name="counted", max_upload_mb=0.01)
    with TestClient(app) as client:
        first = png_bytes(photo(20, 30, 40))
        assert post(client, first).status_code == 200
        assert post(client, first, "overlay").status_code == 200  # from the cache
        assert post(client, first, "nonsense").status_code == 400
        assert post(client, b"not an image").status_code == 400
        assert post(client, png_bytes(photo(21, 200, 200))).status_code == 413  # over 0.01 MB: refused unread
        counted = _metrics(client)
        other = create_app(segmenter, name="other")
        with TestClient(other) as fresh:  # a second server in the process counts on its own
            assert ("segnext_requests_total", (("output", "labels"), ("status", "200"))) not in _metrics(fresh)
    requests = {labels: value for (name, labels), value in counted.items() if name == "segnext_requests_total"}
    assert requests == {(("output", "labels"), ("status", "200")): 1, (("output", "overlay"), ("status", "200")): 1,
                        (("output", "invalid"), ("status", "400")): 1, (("output", "labels"), ("status", "400")): 1}
    assert counted[("segnext_refused_uploads_total", ())] == 1
    assert counted[("segnext_cache_lookups_total", (("result", "hit"),))] == 1
    assert counted[("segnext_cache_lookups_total", (("result", "miss"),))] == 1
    assert counted[("segnext_batch_images_count", ())] == 1 and counted[("segnext_batch_images_sum", ())] == 1
    assert counted[("segnext_model_seconds_count", ())] == 1 and counted[("segnext_model_seconds_sum", ())] > 0
    assert counted[("segnext_request_seconds_count", (("output", "labels"),))] == 2
    assert counted[("segnext_images_in_work", ())] == 0


def test_the_page_loads_and_names_the_endpoints(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    for text in ('type="file"', "output=json&confidence=true", '"output=overlay"', "&unsure_below=", 'value="overlay"',
                 'value="sure"', 'value="confidence"', "health"):
        assert text in response.text


def test_json_errors_for_unknown_routes_keep_the_server_up(client):
    assert client.get("/nothing-here").status_code == 404
    assert json.loads(client.get("/health").content)["status"] == "ok"


def test_the_command_serves_with_the_test_settings_given(model_folder, monkeypatch, capsys):
    """`segnext serve --img-scale ... --flip` replaces the saved settings, as `segnext predict` does."""
    import uvicorn

    from segnext.cli.main import main

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    assert main(["serve", "-c", str(model_folder), "--device", "cpu", "--img-scale", "64", "48", "--flip",
                 "--port", "8123"]) == 0
    assert served["port"] == 8123 and "http://127.0.0.1:8123/" in capsys.readouterr().err
    with TestClient(served["app"]) as client:
        test_config = client.get("/health").json()["test_config"]
    assert test_config["img_scale"] == [64, 48] and test_config["flip"] is True


def test_cross_origin_calls_are_answered_only_for_the_origins_given(segmenter):
    """A web page elsewhere calls the server from its users' browsers: its preflight is answered and
    the answers (a refused upload's 413 too) carry the header that lets the browser read them; other
    origins get no such header, nor does a server started without --cors-origin."""
    page = "https://app.example.com"
    shared = create_app(segmenter, name="shared", cors_origins=[page], max_upload_mb=0.01)
    with TestClient(shared) as client:
        assert shared.service.name == "shared"
        preflight = client.options("/predict", headers={"Origin": page, "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == page
        assert "POST" in preflight.headers["access-control-allow-methods"]
        answered = client.post("/predict", headers={"Origin": page},
                               files={"image": ("p.png", png_bytes(photo(30, 20, 30)), "image/png")})
        assert answered.status_code == 200 and answered.headers["access-control-allow-origin"] == page
        refused = client.post("/predict", headers={"Origin": page},
                              files={"image": ("p.png", png_bytes(photo(31, 200, 200)), "image/png")})
        assert refused.status_code == 413 and refused.headers["access-control-allow-origin"] == page
        other = client.get("/health", headers={"Origin": "https://elsewhere.example.org"})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    with TestClient(create_app(segmenter, name="private")) as client:
        assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": page}).headers


def test_the_command_checks_cors_origins_and_serves_them(model_folder, monkeypatch, capsys):
    import uvicorn

    from segnext.cli.main import main

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app))
    assert main(["serve", "-c", str(model_folder), "--device", "cpu", "--cors-origin", "https://a.example.com",
                 "--cors-origin", "http://localhost:3000"]) == 0
    with TestClient(served["app"]) as client:
        for origin in ("https://a.example.com", "http://localhost:3000"):
            answer = client.get("/health", headers={"Origin": origin})
            assert answer.headers["access-control-allow-origin"] == origin
    with pytest.raises(SystemExit):
        main(["serve", "-c", str(model_folder), "--cors-origin", "https://app.example.com/"])
    assert "'https://app.example.com/' is not an origin: give the scheme and host (and port) a browser sends, " \
           "without a path or a final /, e.g. https://app.example.com; or * for any" in capsys.readouterr().err


KEY = "k3y-0f-this-server-0123456789"


def test_with_keys_predictions_and_metrics_need_one_and_the_rest_stays_open(segmenter):
    """api_keys: /predict and /metrics only for 'Authorization: Bearer KEY' (401 otherwise, an upload
    refused before it is read); the page, /health and a browser's preflight stay open."""
    page = "https://app.example.com"
    guarded = create_app(segmenter, name="guarded", api_keys=["another-key-of-this-server", KEY],
                         cors_origins=[page], max_upload_mb=0.01)
    image = png_bytes(photo(32, 20, 30))
    with TestClient(guarded) as client, TestClient(create_app(segmenter, name="open")) as open_client:
        assert guarded.service.name == "guarded"
        assert client.get("/health").json()["key_required"] is True
        assert open_client.get("/health").json()["key_required"] is False
        assert client.get("/").status_code == 200
        for headers, reason in (({}, "no key was given"), ({"Authorization": "Bearer wrong-key-0123456789"},
                                                          "the key given is not one of this server's"),
                                ({"Authorization": f"Basic {KEY}"}, "the key given is not one of this server's")):
            refused = client.post("/predict", headers={"Origin": page, **headers}, files={"image": ("p.png", image)})
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert f"/predict needs this server's key: {reason}" in refused.json()["error"]
            assert refused.headers["access-control-allow-origin"] == page  # readable by the page that called
        big = client.post("/predict", files={"image": ("p.png", png_bytes(photo(33, 200, 200)))})
        assert big.status_code == 401  # not 413: refused before the upload is read
        answered = client.post("/predict", headers={"Authorization": f"Bearer {KEY}"},
                               files={"image": ("p.png", image)})
        assert answered.status_code == 200
        assert answered.content == open_client.post("/predict", files={"image": ("p.png", image)}).content
        preflight = client.options("/predict", headers={"Origin": page, "Access-Control-Request-Method": "POST",
                                                        "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 200 and "authorization" in preflight.headers["access-control-allow-headers"]
        assert client.get("/metrics").status_code == 401
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
        assert metrics.status_code == 200
        assert 'segnext_requests_total{output="unauthorized",status="401"} 4.0' in metrics.text


def test_the_command_reads_its_keys_from_a_file_and_refuses_weak_ones(model_folder, monkeypatch, capsys, tmp_path):
    import uvicorn

    from segnext.cli.main import main

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app))
    keys = tmp_path / "keys"
    keys.write_text(f"\n{KEY}\n")
    assert main(["serve", "-c", str(model_folder), "--device", "cpu", "--api-key-file", str(keys)]) == 0
    assert f"1 key(s) from {keys}" in capsys.readouterr().err
    with TestClient(served["app"]) as client:
        assert client.post("/predict", files={"image": ("p.png", png_bytes(photo(34)))}).status_code == 401
        assert client.post("/predict", headers={"Authorization": f"Bearer {KEY}"},
                           files={"image": ("p.png", png_bytes(photo(34)))}).status_code == 200
    for text, words in (("\n\n", "holds no key"), (f"{KEY}\nshort\n", "key 2 is shorter than 16 characters")):
        keys.write_text(text)
        assert main(["serve", "-c", str(model_folder), "--api-key-file", str(keys)]) == 1
        err = capsys.readouterr().err
        assert words in err and "short\n" not in err  # never the key itself
    assert main(["serve", "-c", str(model_folder), "--api-key-file", str(tmp_path / "none")]) == 1
    assert "cannot read it" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:the test settings normalise")  # random bands, not in the settings' units
def test_a_model_of_other_input_channels_serves_files_of_its_bands(tmp_path):
    """A 4-channel model takes .npy arrays and TIFFs of its bands (labels equal to the Segmenter's,
    overlays on a picture of the first three); an RGB photo, a wrong array and one over the pixel
    limit are refused with what to send."""
    from segnext.data import display_rgb
    from segnext.data.palette import overlay

    model = segnext.create_model("segnext_t", 4, class_names=NAMES, palette=PALETTE, in_channels=4)
    model.config.test_settings = segnext.TestConfig(img_scale=None, mean=(100, 110, 120, 500),
                                                    std=(50, 55, 60, 200)).to_dict()
    segmenter = segnext.Segmenter.from_checkpoint(segnext.save_model(model, tmp_path / "rgbn"), device="cpu")
    bands = np.random.default_rng(8).integers(0, 1000, (40, 52, 4)).astype(np.uint16)
    buffer = io.BytesIO()
    np.save(buffer, bands)
    with TestClient(create_app(segmenter, name="rgbn", max_pixels=100 * 100)) as client:
        assert client.get("/health").json()["input_channels"] == 4
        expected = segmenter.predict(bands)
        response = post(client, buffer.getvalue(), filename="tile.npy")
        assert response.status_code == 200
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(response.content))), expected)
        drawn = np.asarray(Image.open(io.BytesIO(post(client, buffer.getvalue(), "overlay").content)))
        assert np.array_equal(drawn, overlay(display_rgb(bands.astype(np.float32)), expected, PALETTE, 0.5,
                                             ignore_index=None))
        tifffile = pytest.importorskip("tifffile", reason="tifffile is not installed: TIFF uploads untested")
        tiff = io.BytesIO()
        tifffile.imwrite(tiff, np.moveaxis(bands, -1, 0), photometric="minisblack", planarconfig="separate")
        response = post(client, tiff.getvalue(), filename="tile.tif")
        assert response.status_code == 200
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(response.content))), expected)
        refused = post(client, png_bytes(photo(2)))
        assert refused.status_code == 400
        assert ("holds 3 channel(s), and the model takes 4 (in_channels); give every image the model's channels, in "
                "one order; send the 4 bands as a .npy array (height, width, 4) or a TIFF") in refused.json()["error"]
        large = io.BytesIO()
        np.save(large, np.zeros((120, 100, 4), np.uint8))
        refused = post(client, large.getvalue(), filename="large.npy")
        assert refused.status_code == 413
        assert "large.npy' is 100x120 = 12,000 pixels, over the limit of 10,000" in refused.json()["error"]
        assert client.get("/health").json()["status"] == "ok"


def test_a_model_of_16_bit_colour_serves_pngs_at_all_their_bits(tmp_path):
    """An RGB model saved with bands=True (16-bit colour) reads an uploaded 16-bit PNG as its 16 bits,
    as the Segmenter reads the array; its overlay is drawn on the stretched picture of them."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed: 16-bit colour PNGs untested")
    from segnext.data import display_rgb
    from segnext.data.palette import overlay

    model = segnext.create_model("segnext_t", 4, class_names=NAMES, palette=PALETTE)
    model.config.test_settings = segnext.TestConfig(img_scale=None, mean=(1150, 1150, 1120), std=(70, 70, 80),
                                                    bands=True).to_dict()
    segmenter = segnext.Segmenter.from_checkpoint(segnext.save_model(model, tmp_path / "wide"), device="cpu")
    colour = np.random.default_rng(9).integers(1024, 1280, (40, 52, 3)).astype(np.uint16)
    png = cv2.imencode(".png", colour[:, :, ::-1])[1].tobytes()
    with TestClient(create_app(segmenter, name="wide")) as client:
        assert client.get("/health").json()["test_config"]["bands"] is True
        expected = segmenter.predict(colour)
        with pytest.warns(UserWarning, match="normalise an image to channel means of -16"):  # 8 bits for 16
            assert not np.array_equal(expected, segmenter.predict((colour >> 8).astype(np.float32)))
        response = post(client, png, filename="scene.png")
        assert response.status_code == 200
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(response.content))), expected)
        drawn = np.asarray(Image.open(io.BytesIO(post(client, png, "overlay").content)))
        assert np.array_equal(drawn, overlay(display_rgb(colour.astype(np.float32)), expected, PALETTE, 0.5,
                                             ignore_index=None))
