"""Many files through DataLoader workers and size groups: each image's single-image result, bad
files named, the global RNG untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import segnext
from segnext.inference import ClassProbabilities, Segmenter, TestConfig
from segnext.inference.streaming import predict_files

CONFIG = TestConfig(img_scale=(64, 48), size_divisor=16)


@pytest.fixture(scope="module")
def segmenter(checkpoint_path):
    return Segmenter(segnext.optimize_for_inference(segnext.create_model(checkpoint=checkpoint_path).eval()), CONFIG)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for index, (height, width) in enumerate([(40, 60), (60, 40), (38, 58), (41, 61), (60, 40)]):
        paths.append(folder / f"{index}.png")
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(paths[-1])
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a jpeg")
    paths.insert(2, broken)
    return paths


@pytest.mark.parametrize("workers,batch_size", [(0, 1), (0, 3), (1, 2)])
def test_every_file_gets_its_single_image_result(segmenter, files, workers, batch_size):
    rng_state = torch.get_rng_state()
    results = list(predict_files(segmenter, files, batch_size=batch_size, workers=workers, with_probabilities=True,
                                 with_confidence=batch_size > 1, keep_images=True))
    assert torch.equal(torch.get_rng_state(), rng_state)  # the DataLoader drew its seeds from its own generator
    assert sorted(result.index for result in results) == list(range(len(files)))
    for result in results:
        assert result.path == files[result.index]
        if result.path.name == "broken.jpg":
            assert result.labels is None and "broken.jpg" in result.error and "cannot read" in result.error
            continue
        assert result.error is None
        labels, probabilities = segmenter.predict_with_proba(result.path)
        assert np.array_equal(result.labels, labels) and np.array_equal(result.probabilities, probabilities)
        if batch_size > 1:  # asked for with the probabilities: the largest of them
            assert np.array_equal(result.confidence, probabilities.max(0))
        else:
            assert result.confidence is None
        assert np.array_equal(result.image, np.asarray(Image.open(result.path)))


def test_a_group_that_fails_is_retried_image_by_image(segmenter, files, monkeypatch):
    """A batch that fails as a whole (out of GPU memory, say) does not fail its images: each is
    predicted alone, and only one that fails alone is reported."""
    predict_group = segmenter.predict_group

    def failing_batches(group, **kwargs):
        if len(group) > 1 or group[0].size == (41, 61):
            raise RuntimeError("CUDA out of memory (simulated)")
        return predict_group(group, **kwargs)

    monkeypatch.setattr(segmenter, "predict_group", failing_batches)
    results = {result.path.name: result for result in predict_files(segmenter, files, batch_size=3)}
    assert results["3.png"].error == f"{files[4]}: CUDA out of memory (simulated)"
    assert all(results[name].labels is not None for name in ("0.png", "1.png", "2.png", "4.png"))
    # the confidence alone, without the probabilities
    alone = {result.path.name: result for result in predict_files(segmenter, files, batch_size=3, with_confidence=True)}
    assert alone["0.png"].probabilities is None
    assert np.array_equal(alone["0.png"].confidence, segmenter.predict_with_confidence(files[0])[1])
    np.testing.assert_allclose(alone["0.png"].confidence, segmenter.predict_proba(files[0]).max(0), rtol=0, atol=1e-6)


def test_probabilities_in_bands_for_images_too_large_for_all_of_them(segmenter, files):
    """`segnext predict --probs` takes the probabilities as a `ClassProbabilities`, made a band of rows
    at a time when saved; its labels and confidence are `predict`'s and `predict_with_confidence`'s."""
    results = {result.path.name: result for result in predict_files(
        segmenter, files, batch_size=3, with_probabilities=True, with_confidence=True, probabilities_in_bands=True)}
    for name in ("0.png", "3.png"):
        result = results[name]
        assert isinstance(result.probabilities, ClassProbabilities)
        np.testing.assert_allclose(result.probabilities.numpy(), segmenter.predict_proba(result.path), rtol=0,
                                   atol=1e-6)
        assert np.array_equal(result.labels, segmenter.predict(result.path))
        np.testing.assert_allclose(result.confidence, segmenter.predict_with_confidence(result.path)[1], rtol=0,
                                   atol=1e-6)
    assert "broken.jpg" in results["broken.jpg"].error


def test_probabilities_of_windows_at_the_images_size_are_held_as_float16(segmenter, files):
    """Sliding windows over images at their own size (`--keep-size --mode slide`): the probabilities
    come with the labels' pass, held as float16 (the file's values), the labels of one byte."""
    config = TestConfig(img_scale=None, mode="slide", crop_size=(32, 32), stride=(24, 24), flip=True)
    windows = Segmenter(segmenter.model, config)
    results = list(predict_files(windows, files[:2], with_probabilities=True, probabilities_in_bands=True))
    for result in results:
        assert result.probabilities.computed.dtype == torch.float16 and result.labels.dtype == np.uint8
        expected = windows.predict_proba(result.path)
        np.testing.assert_array_equal(result.probabilities.numpy(), expected.astype(np.float16).astype(np.float32))
        assert np.array_equal(result.labels, windows.predict(result.path))


def test_arguments_are_checked(segmenter, files):
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        next(predict_files(segmenter, files, batch_size=0))
    with pytest.raises(ValueError, match="workers must be 0 or more"):
        next(predict_files(segmenter, files, workers=-1))
