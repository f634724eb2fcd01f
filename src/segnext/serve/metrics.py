"""What a running server has done, for Prometheus (`GET /metrics`, its text format).

    segnext_requests_total{output, status}      prediction requests answered (400/413/500/503 included)
    segnext_request_seconds{output}             from the upload read to the answer encoded (histogram)
    segnext_model_seconds                       one forward pass of a batch (histogram)
    segnext_batch_images                        images per forward pass (histogram)
    segnext_cache_lookups_total{result}         hit: the answer came from the cache; miss: the model ran
    segnext_images_in_work                      requests holding an image: decoding, waiting or in the model
    segnext_refused_uploads_total               uploads over the size limit, refused before they were read

Each server counts in a registry of its own (not prometheus_client's process-wide default), so that
two applications in one process, or a test's, never add to each other's counts.
"""

from __future__ import annotations

from ..utils import require

# Seconds: a small CPU model answers in tens of milliseconds, a large image on a busy CPU in tens of seconds.
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServiceMetrics:
    """The counters of one server and their text for Prometheus (`render`)."""

    def __init__(self):
        client = require("prometheus_client", "serve", "segnext serve's /metrics", package="prometheus-client")
        self.registry = client.CollectorRegistry(auto_describe=True)
        self._render = client.generate_latest
        self.requests = client.Counter("segnext_requests", "Prediction requests answered, by output and HTTP status",
                                       ["output", "status"], registry=self.registry)
        self.request_seconds = client.Histogram("segnext_request_seconds", "Seconds from the upload read to the "
                                                "answer encoded", ["output"], buckets=SECONDS, registry=self.registry)
        self.model_seconds = client.Histogram("segnext_model_seconds", "Seconds of one forward pass of a batch",
                                              buckets=SECONDS, registry=self.registry)
        self.batch_images = client.Histogram("segnext_batch_images", "Images per forward pass", buckets=BATCH_SIZES,
                                             registry=self.registry)
        self.cache_lookups = client.Counter("segnext_cache_lookups", "Answers looked up in the cache of the last "
                                            "results: hit (no model run) or miss", ["result"], registry=self.registry)
        self.images_in_work = client.Gauge("segnext_images_in_work", "Requests holding an image (decoding, waiting for "
                                           "the model, in it, or encoding); at most max_inflight",
                                           registry=self.registry)
        self.refused_uploads = client.Counter("segnext_refused_uploads", "Uploads over the size limit, refused "
                                              "before they were read", registry=self.registry)

    def batch(self, images: int, seconds: float) -> None:
        """A forward pass of `images` images that took `seconds` (the model worker's callback)."""
        self.batch_images.observe(images)
        self.model_seconds.observe(seconds)

    def render(self) -> bytes:
        return self._render(self.registry)


__all__ = ["CONTENT_TYPE", "ServiceMetrics"]
