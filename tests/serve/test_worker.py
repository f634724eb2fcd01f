"""segnext.serve.worker: what queues up meanwhile is batched, and each request gets what it asked for."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import segnext
from segnext.serve import ModelWorker


@pytest.fixture(scope="module")
def segmenter():
    model = segnext.create_model("segnext_t", 5)
    return segnext.Segmenter(model.eval(), segnext.TestConfig(img_scale=(64, 48)), device="cpu")


def test_a_batch_computes_the_confidence_when_one_request_asks_and_hands_it_only_to_that_one(segmenter):
    images = [np.random.default_rng(seed).integers(0, 256, (40, 50, 3), dtype=np.uint8) for seed in range(4)]
    prepared = [segmenter.prepare(image) for image in images]
    first_running, release = threading.Event(), threading.Event()
    calls = []
    predict_group = segmenter.predict_group

    def recorded(group, **outputs):
        calls.append((len(group), outputs.get("with_confidence", False)))
        if len(calls) == 1:  # hold the first pass until the others have queued up
            first_running.set()
            release.wait(10)
        return predict_group(group, **outputs)

    segmenter.predict_group = recorded
    worker = ModelWorker(segmenter, batch_size=4)
    try:
        futures = [worker.submit(prepared[0])]
        assert first_running.wait(10)
        futures += [worker.submit(prepared[1]), worker.submit(prepared[2], with_confidence=True),
                    worker.submit(prepared[3])]
        release.set()
        results = [future.result(30) for future in futures]
    finally:
        worker.close()
        del segmenter.predict_group
    assert calls == [(1, False), (3, True)] and (worker.batches, worker.images) == (2, 4)
    for index in (0, 1, 3):
        assert isinstance(results[index], np.ndarray)
        assert np.array_equal(results[index], segmenter.predict(images[index]))
    labels, confidence = results[2]
    expected_labels, expected_confidence = segmenter.predict_with_confidence(images[2])
    assert np.array_equal(labels, expected_labels)
    np.testing.assert_allclose(confidence, expected_confidence, atol=1e-6)  # a batch of three: to float rounding
