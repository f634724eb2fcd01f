"""The model side of the server: one thread runs the model on what the requests hand in.

Requests decode and resize their image themselves (`Segmenter.prepare`, no model), then `submit` it
and wait for the labels (and, where asked, each pixel's confidence). The worker takes what has queued
up, up to `batch_size` images, groups the images of one resized size
(`segnext.inference.batching.batches_by_size`) and runs each group in one forward pass
(`Segmenter.predict_group`: each image gets exactly the labels it gets alone; the confidence is
computed for the group when one of its requests asks for it). A group that fails as a whole (out of
memory, say) is retried image by image, so that only an image that fails alone gets the error. The
model runs in one thread only: a request never competes with another for the model's threads or
memory.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable, List, NamedTuple, Optional

from ..inference.batching import batches_by_size
from ..inference.preprocess import PreparedImage
from ..inference.segmenter import Segmenter


class _Request(NamedTuple):
    image: PreparedImage
    future: Future
    with_confidence: bool


class ModelWorker:
    """A thread that predicts submitted images in batches.

    Args:
        segmenter: the model and its test settings.
        batch_size: the most images of one resized size per forward pass.
        on_batch: called after each forward pass with its number of images and its seconds (in the
            model thread: keep it short), e.g. `ServiceMetrics.batch`.
    """

    def __init__(self, segmenter: Segmenter, batch_size: int = 4,
                 on_batch: Optional[Callable[[int, float], None]] = None):
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.segmenter = segmenter
        self.batch_size = batch_size
        self.on_batch = on_batch
        self._queue: queue.Queue[Optional[_Request]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="segnext-model", daemon=True)
        self.batches = 0  # forward passes so far (a group is one pass per test view)
        self.images = 0
        self._thread.start()

    def submit(self, image: PreparedImage, *, with_confidence: bool = False) -> Future:
        """The label map of `image` (uint8/int32 (H, W)), as a future; with `with_confidence`, the
        pair (labels, confidence float32 (H, W)) of `Segmenter.predict_with_confidence`."""
        if not self._thread.is_alive():
            raise RuntimeError("the model worker has stopped")
        future: Future = Future()
        self._queue.put(_Request(image, future, with_confidence))
        return future

    def close(self, timeout: Optional[float] = 10.0) -> None:
        """Stop after the images already submitted."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            waiting = [first]
            while len(waiting) < self.batch_size:  # what has queued up meanwhile, without waiting for more
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop once these are done
                    break
                waiting.append(item)
            stream = ((request, request.image) for request in waiting)
            for group in batches_by_size(stream, self.batch_size, max_waiting=len(waiting)):
                self._predict([request for request, _ in group])

    def _predict(self, group: List[_Request]) -> None:
        live = [request for request in group if request.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = self._predict_group(live)
        except Exception as error:  # every error goes back to the request that caused it
            if len(live) > 1:
                for request in live:
                    self._predict_alone(request)
            else:
                live[0].future.set_exception(error)
            return
        for request, result in zip(live, results):
            request.future.set_result(result)

    def _predict_alone(self, request: _Request) -> None:
        try:
            result, = self._predict_group([request])
        except Exception as error:
            request.future.set_exception(error)
            return
        request.future.set_result(result)

    def _predict_group(self, requests: List[_Request]) -> list:
        """What each request asked for: its labels, or (labels, confidence)."""
        with_confidence = any(request.with_confidence for request in requests)
        start = time.perf_counter()
        results = self.segmenter.predict_group([request.image for request in requests],
                                               with_confidence=with_confidence)
        self.batches += 1
        self.images += len(requests)
        if self.on_batch is not None:
            self.on_batch(len(requests), time.perf_counter() - start)
        if not with_confidence:
            return results
        return [result if request.with_confidence else result[0] for request, result in zip(requests, results)]
