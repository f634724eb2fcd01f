"""The model side of the server: one thread runs the model on what the requests hand in.

Requests decode and resize their image themselves (`Segmenter.prepare`, no model), then `submit` it
and wait for the labels. The worker takes what has queued up, up to `batch_size` images, groups the
images of one resized size (`segnext.inference.batching.batches_by_size`) and runs each group in one
forward pass (`Segmenter.predict_group`: each image gets exactly the labels it gets alone). A group
that fails as a whole (out of memory, say) is retried image by image, so that only an image that
fails alone gets the error. The model runs in one thread only: a request never competes with another
for the model's threads or memory.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import List, Optional, Tuple

import numpy as np

from ..inference.batching import batches_by_size
from ..inference.preprocess import PreparedImage
from ..inference.segmenter import Segmenter


class ModelWorker:
    """A thread that predicts submitted images in batches.

    Args:
        segmenter: the model and its test settings.
        batch_size: the most images of one resized size per forward pass.
    """

    def __init__(self, segmenter: Segmenter, batch_size: int = 4):
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.segmenter = segmenter
        self.batch_size = batch_size
        self._queue: queue.Queue[Optional[Tuple[PreparedImage, Future]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="segnext-model", daemon=True)
        self.batches = 0  # forward passes so far (a group is one pass per test view)
        self.images = 0
        self._thread.start()

    def submit(self, image: PreparedImage) -> Future[np.ndarray]:
        """The label map of `image` (uint8/int32 (H, W)), as a future."""
        if not self._thread.is_alive():
            raise RuntimeError("the model worker has stopped")
        future: Future = Future()
        self._queue.put((image, future))
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
            stream = ((future, image) for image, future in waiting)
            for group in batches_by_size(stream, self.batch_size, max_waiting=len(waiting)):
                self._predict(group)

    def _predict(self, group: List[Tuple[Future, PreparedImage]]) -> None:
        live = [(future, image) for future, image in group if future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            labels = self.segmenter.predict_group([image for _, image in live])
        except Exception as error:  # every error goes back to the request that caused it
            if len(live) > 1:
                for one in live:
                    self._predict_alone(*one)
            else:
                live[0][0].set_exception(error)
            return
        self.batches += 1
        self.images += len(live)
        for (future, _), one in zip(live, labels):
            future.set_result(one)

    def _predict_alone(self, future: Future, image: PreparedImage) -> None:
        try:
            labels = self.segmenter.predict_group([image])[0]
        except Exception as error:
            future.set_exception(error)
            return
        self.batches += 1
        self.images += 1
        future.set_result(labels)
