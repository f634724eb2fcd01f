"""A segmentation model over HTTP: `create_app(segmenter)` is a FastAPI application.

    GET  /          a page to choose an image and see its overlay, classes and confidence
    GET  /health    200 JSON: model, classes, device, test settings, limits, the outputs it gives
    GET  /metrics   what it has done, in Prometheus's text format (`segnext.serve.metrics`)
    POST /predict   the image (multipart form field `image`, or the body as image/*, or JSON
                    {"image": base64}) -> 200 image/png, the single-channel label map
                    (exactly the file `segnext predict` writes); ?output=overlay: the colour overlay
                    (PNG); ?output=json: the classes present with their pixel fractions, and with
                    &confidence=true how sure the model is of them; ?output=confidence: each
                    pixel's confidence as a greyscale PNG (`segnext predict --confidence`'s file);
                    &unsure_below=P with labels or overlay: the pixels whose confidence is under P
                    unlabelled (255) and uncoloured (`segnext predict --unsure-below`); &sieve=N with
                    labels, overlay or json: the regions of fewer than N pixels merged into their
                    largest neighbour (`segnext predict --sieve`; needs rasterio on the server)

A model of other input channels than RGB (`in_channels`, /health's `input_channels`), or of RGB of
more than 8 bits (its test settings' `bands`), takes files of its bands (.npy arrays (H, W, C), TIFFs,
16-bit PNGs) and draws its overlays on a picture of the first three.

Each request decodes and resizes its image itself (Pillow and NumPy, in the server's thread pool),
hands it to the one model thread (`ModelWorker`, which batches images of one size) and encodes the
answer. Memory stays bounded: an upload over `max_upload_mb` is refused before it is read in full, an
image of more than `max_pixels` before it is decoded, and at most `max_inflight` requests hold an image
at a time (the others wait for a slot, up to `queue_timeout` seconds, then get 503). The last results
are kept by the upload's SHA-256 (`cache_mb`), so the page's two requests (the class list, then the
overlay) run the model once. The confidence costs up to twice the model's time on the CPU with many
classes, so it is computed only for the requests that ask for it.

Bad input is a 4xx with a JSON body `{"error": "..."}` that says what was wrong; the server goes on.
With keys (`api_keys`), /predict and /metrics answer only requests that carry one (`KeyCheck`).
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' annotations at run time.
import base64
import binascii
import hashlib
import hmac
import io
import json
import threading
import time
from collections import OrderedDict
from importlib import resources
from importlib.util import find_spec
from typing import Optional, Sequence, Tuple

import numpy as np

from ..constants import IGNORE_INDEX
from ..data.bands import PixelLimitError, decode_bands, display_rgb, reads_bands
from ..data.io import DataError, encode_image, encode_label_png, pil_to_rgb
from ..data.palette import overlay
from ..inference.segmenter import UNSURE_BELOW, Segmenter, confidence_greyscale, leave_unsure
from ..utils import require
from .metrics import CONTENT_TYPE, ServiceMetrics
from .worker import ModelWorker

OUTPUTS = ("labels", "overlay", "json", "confidence")


class RequestError(Exception):
    """A request the server refuses: the HTTP status and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


Prediction = Tuple[np.ndarray, Optional[np.ndarray]]  # labels, confidence (None: not computed)


class ResultCache:
    """The predictions of the last uploads, by SHA-256, within `max_bytes`."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Prediction] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str, with_confidence: bool = False) -> Optional[Prediction]:
        """The prediction kept for `key`, if there is one with the confidence when that is asked for."""
        with self._lock:
            prediction = self._items.get(key)
            if prediction is None or (with_confidence and prediction[1] is None):
                return None
            self._items.move_to_end(key)
            return prediction

    def put(self, key: str, prediction: Prediction) -> None:
        size = _nbytes(prediction)
        if size > self.max_bytes:
            return
        with self._lock:
            kept = self._items.get(key)
            if kept is not None and (kept[1] is not None or prediction[1] is None):
                return
            if kept is not None:  # the same labels, now with their confidence
                self._bytes -= _nbytes(self._items.pop(key))
            self._items[key] = prediction
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= _nbytes(dropped)


def _nbytes(prediction: Prediction) -> int:
    return sum(array.nbytes for array in prediction if array is not None)


def decode_upload(data: bytes, name: str, max_pixels: int, channels: int = 3, bands: bool = False) -> np.ndarray:
    """The uploaded file as RGB uint8, or a RequestError saying why not (checked before decoding).
    channels, bands: a model's of other input channels than RGB, or of three read as bands
    (`TestConfig.reads_bands`), reads the file's bands instead (float32 (H, W, channels): a .npy array,
    a TIFF, an image of as many bands; `segnext.data.decode_bands`)."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise RequestError(400, f"{name} is empty: send an image file (PNG, JPEG, WebP, ...)")
    if reads_bands(channels, bands):
        try:
            return decode_bands(data, channels, name=name, max_pixels=max_pixels)
        except PixelLimitError as error:
            raise RequestError(413, f"{error} (this server's limit)") from None
        except DataError as error:
            raise RequestError(400, f"{error}; send the {channels} bands as a .npy array (height, width, "
                                    f"{channels}) or a TIFF") from None
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise RequestError(400, f"{name} is not an image Pillow can read: send PNG, JPEG, WebP, BMP or TIFF") from None
    except Image.DecompressionBombError as error:
        raise RequestError(413, f"{name}: {error}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise RequestError(413, f"{name} is {width}x{height} = {width * height:,} pixels, over this server's limit of "
                                f"{max_pixels:,}; send a smaller image")
    try:
        image.load()
        return pil_to_rgb(image, name=name)
    except DataError as error:
        raise RequestError(400, str(error)) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise RequestError(400, f"{name} cannot be decoded ({error}): the file is truncated or corrupt") from None


def class_summary(labels: np.ndarray, class_names, palette, confidence: Optional[np.ndarray] = None) -> dict:
    """The classes present in `labels`, most pixels first; with `confidence`, the mean confidence of
    the image and of each class's pixels, and the share of pixels the model is unsure of."""
    counts = np.bincount(labels.ravel(), minlength=len(class_names))
    total = int(labels.size)
    present = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    classes = [{"id": i, "name": class_names[i] if i < len(class_names) else f"class_{i}",
                "color": list(palette[i]) if i < len(palette) else [0, 0, 0],
                "pixels": int(counts[i]), "fraction": float(counts[i]) / total} for i in present]
    summary = {"height": int(labels.shape[0]), "width": int(labels.shape[1]), "classes": classes}
    if confidence is not None:
        sums = np.bincount(labels.ravel(), weights=confidence.ravel().astype(np.float64), minlength=len(counts))
        for entry in classes:
            entry["confidence"] = float(sums[entry["id"]] / counts[entry["id"]])
        summary["confidence"] = float(confidence.mean(dtype=np.float64))
        summary["unsure_fraction"] = float((confidence < UNSURE_BELOW).mean())
        summary["unsure_below"] = UNSURE_BELOW
    return summary


class SegmentationService:
    """What the routes call: decode -> worker -> encode, with the limits of the module docstring."""

    def __init__(self, segmenter: Segmenter, *, name: str, batch_size: int = 4, max_upload_mb: float = 20.0,
                 max_pixels: int = 25_000_000, max_inflight: Optional[int] = None, queue_timeout: float = 60.0,
                 cache_mb: float = 64.0, alpha: float = 0.5):
        if max_upload_mb <= 0 or max_pixels <= 0:
            raise ValueError("max_upload_mb and max_pixels must be positive")
        self.segmenter = segmenter
        self.name = name
        self.metrics = ServiceMetrics()
        self.worker = ModelWorker(segmenter, batch_size, on_batch=self.metrics.batch)
        self.max_upload_bytes = int(max_upload_mb * 2**20)
        self.max_pixels = int(max_pixels)
        self.max_inflight = max_inflight or 2 * batch_size
        self._slots = threading.BoundedSemaphore(self.max_inflight)
        self.queue_timeout = queue_timeout
        self.cache = ResultCache(int(cache_mb * 2**20))
        self.alpha = alpha

    def health(self) -> dict:
        from .. import __version__

        segmenter = self.segmenter
        return {"status": "ok", "model": self.name, "version": __version__, "num_classes": segmenter.num_classes,
                "classes": segmenter.class_names, "palette": segmenter.palette, "device": str(segmenter.device),
                "backend": type(segmenter.model).__name__, "test_config": segmenter.test_config.to_dict(),
                "batch_size": self.worker.batch_size, "max_upload_mb": self.max_upload_bytes / 2**20,
                "max_pixels": self.max_pixels, "max_inflight": self.max_inflight, "outputs": list(OUTPUTS),
                "unsure_below": UNSURE_BELOW, "input_channels": segmenter.test_config.channels}

    def predict(self, data: bytes, filename: str, output: str, confidence: bool = False,
                unsure_below: Optional[float] = None, sieve: Optional[int] = None) -> Tuple[bytes, str]:
        """(body, media type) for an uploaded file; `confidence`: add it to the JSON summary;
        `unsure_below`: leave the pixels less sure than that unlabelled; `sieve`: merge the regions
        of fewer pixels into their neighbours. Counted in `metrics`: its output and status, and its time."""
        start, status = time.perf_counter(), 200
        try:
            return self._answer(data, filename, output, confidence, unsure_below, sieve)
        except RequestError as error:
            status = error.status
            raise
        finally:
            counted = output if output in OUTPUTS else "invalid"
            self.metrics.requests.labels(counted, str(status)).inc()
            self.metrics.request_seconds.labels(counted).observe(time.perf_counter() - start)

    def _answer(self, data: bytes, filename: str, output: str, confidence: bool,
                unsure_below: Optional[float], sieve: Optional[int] = None) -> Tuple[bytes, str]:
        if output not in OUTPUTS:
            raise RequestError(400, f"output={output!r} is not one of {', '.join(OUTPUTS)}")
        if confidence and output != "json":
            raise RequestError(400, f"confidence=true adds the confidence to output=json, not to output={output}; "
                                    f"output=confidence is each pixel's confidence as an image")
        if unsure_below is not None:
            if output not in ("labels", "overlay"):
                raise RequestError(400, f"unsure_below leaves pixels unlabelled in output=labels or overlay, not in "
                                        f"output={output}")
            if not 0 < unsure_below < 1:
                raise RequestError(400, f"unsure_below={unsure_below} must be a probability between 0 and 1")
            if self.segmenter.num_classes > IGNORE_INDEX:
                raise RequestError(400, f"unsure_below marks unlabelled pixels {IGNORE_INDEX}, which is a class of "
                                        f"this model's {self.segmenter.num_classes}")
        if sieve is not None:
            if output == "confidence":
                raise RequestError(400, "sieve merges the small regions of the labels of output=labels, overlay or "
                                        "json, not output=confidence")
            if sieve < 1:
                raise RequestError(400, f"sieve={sieve} must be a number of pixels of at least 1")
            if find_spec("rasterio") is None:
                raise RequestError(501, "sieve needs rasterio on the server (pip install 'segnext[gis]')")
        with_confidence = confidence or output == "confidence" or unsure_below is not None
        name = f"the uploaded file {filename!r}" if filename else "the uploaded file"
        if not self._slots.acquire(timeout=self.queue_timeout):
            raise RequestError(503, f"the server is busy ({self.max_inflight} images in work for "
                                    f"{self.queue_timeout:.0f} s); try again later")
        self.metrics.images_in_work.inc()
        try:
            settings = self.segmenter.test_config
            image = decode_upload(data, name, self.max_pixels, channels=settings.channels, bands=settings.reads_bands)
            key = hashlib.sha256(data).hexdigest()
            prediction = self.cache.get(key, with_confidence)
            self.metrics.cache_lookups.labels("miss" if prediction is None else "hit").inc()
            if prediction is None:
                try:
                    result = self.worker.submit(self.segmenter.prepare(image), with_confidence=with_confidence).result()
                except (RuntimeError, ValueError) as error:
                    raise RequestError(500, f"the model failed on {name}: {error}") from None
                prediction = result if with_confidence else (result, None)
                self.cache.put(key, prediction)
            labels, pixel_confidence = prediction
            palette = self.segmenter.palette
            if unsure_below is not None:
                labels = leave_unsure(labels, pixel_confidence, unsure_below)
            if sieve is not None:
                from ..data.polygons import sieve_labels

                labels = sieve_labels(labels, sieve, IGNORE_INDEX if self.segmenter.num_classes <= IGNORE_INDEX else -1)
            if output == "labels":
                return encode_label_png(labels, palette), "image/png"
            if output == "overlay":
                unlabelled = IGNORE_INDEX if unsure_below is not None else None  # a class 255 keeps its colour
                picture = display_rgb(image)  # an RGB image itself; bands: the first three, stretched
                return encode_image(overlay(picture, labels, palette, self.alpha, ignore_index=unlabelled)), "image/png"
            if output == "confidence":
                return encode_image(confidence_greyscale(pixel_confidence)), "image/png"
            summary = class_summary(labels, self.segmenter.class_names, palette,
                                    pixel_confidence if confidence else None)
            return json.dumps(summary).encode(), "application/json"
        finally:
            self.metrics.images_in_work.dec()
            self._slots.release()

    def close(self) -> None:
        self.worker.close()


class KeyCheck:
    """ASGI middleware: `POST /predict` and `GET /metrics` answer only requests that carry one of
    `keys` as `Authorization: Bearer KEY` (401 otherwise, before the upload is read); the page,
    `/health` and a browser's CORS preflight stay open. Keys are compared in constant time."""

    PROTECTED = ("/predict", "/metrics")

    def __init__(self, app, keys: Sequence[str]):
        self.app = app
        self.keys = [key.encode() for key in keys]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or scope["path"] not in self.PROTECTED:
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, key = given.partition(b" ")
        # every key is compared, so that the time taken says nothing of which one came close
        matches = [hmac.compare_digest(key.strip(), expected) for expected in self.keys]
        if scheme.lower() == b"bearer" and any(matches):
            return await self.app(scope, receive, send)
        service = getattr(self, "service", None)
        if service is not None and scope["path"] == "/predict":
            service.metrics.requests.labels("unauthorized", "401").inc()
        reason = "no key was given" if not given else "the key given is not one of this server's"
        await send_error(send, 401, f"{scope['path']} needs this server's key: {reason}; send it as the header "
                                    f"'Authorization: Bearer KEY'", (b"www-authenticate", b"Bearer"))


class UploadLimit:
    """ASGI middleware: a POST body over `max_bytes` gets 413 before it is read in full (by its
    Content-Length, or while it streams in when it has none)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._refuse(send)
        if length is not None:
            return await self.app(scope, receive, send)
        body, more = [], True  # chunked: read it here, within the limit, then hand it on
        received = 0
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                return await self._refuse(send)
            body.append(chunk)
            more = message.get("more_body", False)
        replayed = {"type": "http.request", "body": b"".join(body), "more_body": False}
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return replayed

        return await self.app(scope, replay, send)

    async def _refuse(self, send) -> None:
        service = getattr(self, "service", None)
        if service is not None:
            service.metrics.refused_uploads.inc()
        await send_error(send, 413, f"the upload is over this server's limit of {self.max_bytes / 2**20:g} MB; send a "
                                    f"smaller file", (b"connection", b"close"))


async def send_error(send, status: int, error: str, *headers) -> None:
    """An ASGI answer from a middleware, before the application runs: `status` with the JSON body
    {"error": error} every refusal of the server has, and the `headers` given."""
    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


HOW_TO_SEND = ("send it as the multipart/form-data field 'image' (curl -F image=@photo.jpg URL/predict), as the "
               "request body with its Content-Type (curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' "
               "URL/predict), or as JSON {\"image\": \"<base64>\"}")


async def uploaded_image(request) -> Tuple[bytes, str]:
    """(the image's bytes, its file name or "") from a request that sends it as a multipart form's
    field `image` (a browser's form, curl -F), as the whole body under an image/* (or
    application/octet-stream) Content-Type, or as JSON {"image": base64, or a data: URL}."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form()
        try:
            image = form.get("image")
            if image is None or not hasattr(image, "read"):
                raise RequestError(400, f"no image in the form's field 'image': {HOW_TO_SEND}")
            return await image.read(), image.filename or ""
        finally:
            await form.close()
    if kind.startswith("image/") or kind == "application/octet-stream":
        return await request.body(), ""
    if kind == "application/json":
        try:
            encoded = json.loads(await request.body())["image"]
            encoded = encoded.split(",", 1)[1] if encoded.startswith("data:") else encoded  # a data: URL
            return base64.b64decode(encoded, validate=True), ""
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, binascii.Error):
            raise RequestError(400, f"the JSON body holds no base64 image under \"image\": {HOW_TO_SEND}") from None
    raise RequestError(400, f"no image (Content-Type {kind or 'none'}): {HOW_TO_SEND}")


def create_app(segmenter: Segmenter, *, name: str = "segnext", cors_origins: Sequence[str] = (),
               api_keys: Sequence[str] = (), **options):
    """The FastAPI application serving `segmenter` (options: those of `SegmentationService`),
    wrapped in the upload limit (`UploadLimit`, whose `app` is the FastAPI application; the returned
    application's `service` is the `SegmentationService`). `cors_origins`: the web pages (origins,
    "https://app.example.com", or "*" for any) whose scripts may call the server from their browsers
    (CORS); their answers, a 413 of the upload limit included, carry the headers that let the browser
    hand them over. None by default: a browser lets only the server's own page read its answers.
    `api_keys`: predictions and metrics only for requests that carry one of them (`KeyCheck`)."""
    require("fastapi", "serve", "segnext serve")
    require("python_multipart", "serve", "segnext serve (multipart uploads)", package="python-multipart")
    require("prometheus_client", "serve", "segnext serve (its /metrics)", package="prometheus-client")
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    service = SegmentationService(segmenter, name=name, **options)

    @asynccontextmanager
    async def lifespan(app):
        yield
        service.close()

    app = FastAPI(title="segnext", description=f"SegNeXt segmentation: {name}", lifespan=lifespan)
    app.state.service = service
    page = resources.files("segnext.serve").joinpath("index.html").read_text(encoding="utf-8")

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError):
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(part) for part in e.get('loc', ()))}: {e.get('msg')}"
                             for e in error.errors())
        return JSONResponse({"error": f"invalid request ({problems})"}, status_code=400)

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return page

    @app.get("/health")
    async def health():
        return {**service.health(), "key_required": bool(api_keys)}

    @app.get("/metrics")
    async def metrics():
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/predict")
    async def predict(request: Request, output: str = "labels", confidence: bool = False,
                      unsure_below: Optional[float] = None, sieve: Optional[int] = None):
        data, filename = await uploaded_image(request)
        body, media_type = await run_in_threadpool(service.predict, data, filename, output, confidence, unsure_below,
                                                   sieve)
        return Response(body, media_type=media_type)

    served = UploadLimit(app, service.max_upload_bytes)
    served.service = service
    if api_keys:  # outside the limit: an upload without the key is refused before it is read
        served = KeyCheck(served, api_keys)
        served.service = service
    if not cors_origins:
        return served
    from starlette.middleware.cors import CORSMiddleware

    shared = CORSMiddleware(served, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                            allow_headers=["*"], max_age=600)  # outside the limit, so that its 413 is readable too
    shared.service = service
    return shared
