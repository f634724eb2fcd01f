"""segnext.inference.segment: the reference test procedure written plainly here, and its
memory-efficient path (multi-scale + flip averaged in bands of rows, labels by label-only
upsampling) against the reference."""

from __future__ import annotations

import importlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import segnext
from segnext.inference import (
    TestConfig,
    evaluation_mode,
    model_logits,
    prepare,
    resize_for_test,
    segment,
    segment_group,
    segment_group_confidence,
    segment_group_with_probabilities,
    segment_logits,
    to_tensor,
)
from segnext.ops import banded_average

segment_module = importlib.import_module("segnext.inference.segment")  # the name `segment` is its function
MULTI_SCALE = TestConfig(img_scale=(160, 96), size_divisor=32, scales=(0.5, 1.0, 1.75), flip=True)


@pytest.fixture(scope="module")
def eager(checkpoint_path):
    return segnext.create_model("segnext_t", 150, checkpoint=checkpoint_path).eval()


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(1)
    return np.kron(rng.integers(0, 255, (9, 13, 3)), np.ones((9, 9, 1))).astype(np.uint8)[:77, :109]


def resize_everything(model, image, config):
    """The official procedure written plainly: every scale's scores resized to the image, softmax,
    flipped ones flipped back, averaged."""
    total, count = 0, 0
    for ratio in config.scales:
        x = to_tensor(resize_for_test(image, config.img_scale, ratio, config.size_divisor), config.mean, config.std)
        for flipped in (False, True) if config.flip else (False,):
            scores = model_logits(model, x.flip(3) if flipped else x, config)
            scores = F.interpolate(scores, size=image.shape[:2], mode="bilinear", align_corners=False).softmax(1)
            total, count = total + (scores.flip(3) if flipped else scores), count + 1
    return (total / count)[0]


@pytest.mark.parametrize("band_bytes", [1, 1 << 30], ids=["one-row-bands", "one-band"])
def test_banded_multi_scale_equals_resizing_everything(eager, image, monkeypatch, band_bytes):
    monkeypatch.setattr(banded_average, "BAND_BYTES", band_bytes)
    with torch.no_grad():
        expected = resize_everything(eager, image, MULTI_SCALE)
        reference = segment_logits(eager, image, MULTI_SCALE)
        got = segment_logits(eager, image, MULTI_SCALE, memory_efficient=True)
    assert (reference - expected).abs().max() <= 1e-6
    assert got.shape == (150, *image.shape[:2])
    assert (got - expected).abs().max() <= 1e-6
    assert torch.allclose(got.sum(0), torch.ones(image.shape[:2]), atol=1e-5)


def test_multi_scale_labels_are_the_argmax_of_the_scores(eager, image, monkeypatch):
    monkeypatch.setattr(banded_average, "BAND_BYTES", 150 * 109 * 4 * 10)  # bands of 10 rows
    optimized = segnext.optimize_for_inference(eager)
    for model in (eager, optimized):
        labels = segment(model, image, MULTI_SCALE, memory_efficient=True)
        assert labels.dtype == torch.int64 and labels.shape == image.shape[:2]
        assert torch.equal(labels, segment_logits(model, image, MULTI_SCALE, memory_efficient=True).argmax(0))
        assert torch.equal(segment(model, image, MULTI_SCALE), segment_logits(model, image, MULTI_SCALE).argmax(0))


@pytest.mark.parametrize("config", [
    TestConfig(img_scale=(160, 96), size_divisor=32),
    TestConfig(img_scale=None),
    TestConfig(img_scale=(200, 120), mode="slide", crop_size=(64, 64), stride=(48, 48)),
], ids=["whole-divisor", "whole-native", "slide"])
def test_memory_efficient_labels_equal_the_reference(eager, image, config):
    """Label-only upsampling is exact: the same labels as the reference argmax of full-size scores."""
    labels = segment(eager, image, config, memory_efficient=True)
    assert labels.shape == image.shape[:2] and labels.dtype == torch.int64
    assert torch.equal(labels, segment(eager, image, config))
    assert torch.equal(segment(eager, image, config), segment_logits(eager, image, config).argmax(0))


SLIDE_NATIVE = TestConfig(img_scale=None, mode="slide", crop_size=(48, 48), stride=(32, 32))  # logits in bands
SLIDE_NATIVE_FLIP = TestConfig(img_scale=None, mode="slide", crop_size=(48, 48), stride=(32, 32), flip=True)
CONFIGS = [TestConfig(img_scale=(160, 96), size_divisor=32), TestConfig(img_scale=None),
           TestConfig(img_scale=(200, 120), mode="slide", crop_size=(64, 64), stride=(48, 48)), MULTI_SCALE,
           TestConfig(img_scale=(200, 120), mode="slide", crop_size=(64, 64), stride=(48, 48), scales=(0.75, 1.0)),
           SLIDE_NATIVE, SLIDE_NATIVE_FLIP]
CONFIG_IDS = ["whole-divisor", "whole-native", "slide", "multi-scale", "slide-multi-scale", "slide-native",
              "slide-native-flip"]


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_confidence_is_the_probability_of_the_label_with_or_without_full_size_scores(eager, image, config,
                                                                                     monkeypatch):
    """The labels are `segment`'s exactly; the confidence is the probability of each label: from the
    full-size scores exactly, from bands of rows (no full-size scores) to float rounding."""
    monkeypatch.setattr(banded_average, "BAND_BYTES", 150 * 109 * 4 * 10)  # bands of 10 rows
    scores = segment_logits(eager, image, config)
    probabilities = scores.softmax(0) if config.single_scale else scores
    group = [prepare(image, config)]
    for memory_efficient in (False, True):
        (labels, confidence), = segment_group_confidence(eager, group, config, memory_efficient=memory_efficient)
        assert labels.dtype == torch.int64 and confidence.dtype == torch.float32
        assert torch.equal(labels, segment(eager, image, config, memory_efficient=memory_efficient))
        expected = probabilities.gather(0, labels[None])[0]
        if memory_efficient:
            assert (confidence - expected).abs().max() <= 1e-6
        else:
            assert torch.equal(confidence, expected)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_labels_of_one_byte_are_the_int64_labels_on_every_path(eager, image, config, monkeypatch):
    """label_dtype=torch.uint8 (what `Segmenter` asks for up to 256 classes): the same labels, made in
    that type where they are made a band at a time; the confidence unchanged."""
    monkeypatch.setattr(banded_average, "BAND_BYTES", 150 * 109 * 4 * 10)  # bands of 10 rows
    group = [prepare(image, config)]
    for memory_efficient in (False, True):
        (wide,) = segment_group(eager, group, config, memory_efficient=memory_efficient)
        (narrow,) = segment_group(eager, group, config, memory_efficient=memory_efficient, label_dtype=torch.uint8)
        assert narrow.dtype == torch.uint8 and torch.equal(narrow.long(), wide)
        (labels, confidence), = segment_group_confidence(eager, group, config, memory_efficient=memory_efficient)
        (narrow, narrow_confidence), = segment_group_confidence(eager, group, config, memory_efficient=memory_efficient,
                                                                label_dtype=torch.uint8)
        assert narrow.dtype == torch.uint8 and torch.equal(narrow.long(), labels)
        assert torch.equal(narrow_confidence, confidence)


def test_a_label_type_too_small_for_the_classes_is_refused(image):
    model = segnext.create_model("segnext_t", 300).eval()
    with pytest.raises(ValueError, match="label_dtype torch.uint8 cannot hold the labels of 300 classes"):
        segment_group(model, [prepare(image, TestConfig(img_scale=None))], TestConfig(img_scale=None),
                      label_dtype=torch.uint8)
    with pytest.raises(ValueError, match="label_dtype torch.float32 cannot hold the labels"):
        segment_group_confidence(model, [prepare(image, TestConfig(img_scale=None))], label_dtype=torch.float32)


def test_confidence_in_bands_holds_no_full_size_scores(eager, image, monkeypatch):
    """The banded confidence never makes a (classes, H, W) tensor: the largest it makes is a band."""
    calls = []
    original = banded_average.average_probabilities_in_bands

    def bands(sources, height, width, band_bytes=None):
        for rows, band in original(sources, height, width, band_bytes):
            calls.append(band.shape)
            yield rows, band

    monkeypatch.setattr(banded_average, "BAND_BYTES", 150 * 109 * 4 * 10)
    monkeypatch.setattr(segment_module, "average_probabilities_in_bands", bands)
    monkeypatch.setattr(segment_module, "_segment_group_scores", None)  # the full-size path would fail
    for config in CONFIGS[:2] + [MULTI_SCALE]:
        calls.clear()
        segment_group_confidence(eager, [prepare(image, config)], config, memory_efficient=True)
        assert calls and all(shape == (150, 10, 109) for shape in calls[:-1])


@pytest.mark.parametrize("height, width, crop, stride, batch", [
    (100, 130, (64, 64), (48, 48), 1),    # the last row and column of windows aligned to the far edges
    (40, 70, (64, 64), (48, 48), 2),      # lower than a window: one band
    (96, 96, (32, 32), (32, 32), 1),      # windows that do not overlap
    (90, 50, (40, 30), (13, 20), 1),      # several rows of windows over each row
])
def test_sliding_windows_in_bands_give_the_logits_bit_for_bit(height, width, crop, stride, batch):
    """`slide_logits_in_bands`: bands that tile the rows top to bottom, each equal to those rows of
    `slide_logits` to the bit, holding at most a window and a stride of rows."""
    model = torch.nn.Conv2d(3, 5, 3, padding=1)  # zero padding at each window's border: windows disagree
    images = torch.randn(batch, 3, height, width)
    with torch.no_grad():
        reference = segment_module.slide_logits(model, images, crop, stride, 5)
        bands = list(segment_module.slide_logits_in_bands(model, images, crop, stride, 5))
    starts, stops = [rows.start for rows, _ in bands], [rows.stop for rows, _ in bands]
    assert starts == [0] + stops[:-1] and stops[-1] == height
    for rows, band in bands:
        assert band.shape[2] <= crop[0] + stride[0] and torch.equal(band, reference[:, :, rows])


@pytest.mark.parametrize("config", [SLIDE_NATIVE, SLIDE_NATIVE_FLIP], ids=["one-view", "flip"])
def test_sliding_windows_at_the_images_size_hold_no_full_size_scores(eager, image, monkeypatch, config):
    """Labels and confidence of windows over the image at its own size (and its mirror's, with flip)
    come from bands of rows: the full map of logits is never made (its path would fail here), and
    they equal the plain path's."""
    (plain_labels, plain_confidence), = segment_group_confidence(eager, [prepare(image, config)], config,
                                                                  memory_efficient=False)
    other = np.ascontiguousarray(image[::-1])  # and a group of two images of one size
    pair = [prepare(image, config), prepare(other, config)]
    plain_pair = segment_module.segment_group(eager, pair, config, memory_efficient=False)
    monkeypatch.setattr(segment_module, "slide_logits", None)
    for memory_efficient in (True, None):
        (labels, confidence), = segment_group_confidence(eager, [prepare(image, config)], config,
                                                         memory_efficient=memory_efficient)
        assert torch.equal(labels, plain_labels) and (confidence - plain_confidence).abs().max() <= 1e-6
        assert torch.equal(segment(eager, image, config, memory_efficient=memory_efficient), plain_labels)
    banded_pair = segment_module.segment_group(eager, pair, config, memory_efficient=True)
    assert all(torch.equal(banded, plain) for banded, plain in zip(banded_pair, plain_pair))


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_probabilities_in_bands_equal_the_full_size_ones(eager, image, config, monkeypatch, tmp_path):
    """`segment_group_with_probabilities`: the labels and the confidence of `segment_group_confidence`,
    and probabilities equal to the full-size ones: made a band of rows at a time (never all of them
    at once), or for several scales averaged once where they fit the budget; `save` writes them to
    a .npy file band by band."""
    monkeypatch.setattr(banded_average, "BAND_BYTES", 150 * 109 * 4 * 10)  # bands of 10 rows
    scores = segment_logits(eager, image, config)
    expected = scores.softmax(0) if config.single_scale else scores
    group = [prepare(image, config)]
    (reference_labels, reference_confidence), = segment_group_confidence(eager, group, config, memory_efficient=True)
    for budget in (0, segment_module.FULL_SCORES_BUDGET):
        monkeypatch.setattr(segment_module, "FULL_SCORES_BUDGET", budget)
        (labels, probabilities, confidence), = segment_group_with_probabilities(eager, group, config,
                                                                                with_confidence=True)
        assert torch.equal(labels, reference_labels) and (confidence - reference_confidence).abs().max() <= 1e-6
        full_path = segment(eager, image, config)
        if config.single_scale:  # the exact upsampled argmax
            assert torch.equal(labels, full_path)
        else:  # averages equal to float rounding: a label may differ only where two classes tie to it
            differ = labels != full_path
            gap = expected.gather(0, labels[None])[0] - expected.gather(0, full_path[None])[0]
            assert differ.float().mean() < 1e-3 and (gap[differ].abs().max() if differ.any() else 0) <= 1e-6
        (alone, _), = segment_group_with_probabilities(eager, group, config)
        assert torch.equal(alone, labels)

        assert probabilities.shape == (150, *image.shape[:2])
        band_shapes = [band.shape for _, band in probabilities.bands()]
        assert len(band_shapes) == 8 and all(shape == (150, 10, 109) for shape in band_shapes[:-1])
        # several scales: averaged once where they fit the budget, labels and confidence read from it;
        # windows over the image at its own size: made with the labels, a band of rows at a time
        at_own_size = config in (SLIDE_NATIVE, SLIDE_NATIVE_FLIP)
        assert (probabilities.computed is not None) == bool(budget and not config.single_scale or at_own_size)
        assert np.abs(probabilities.numpy() - expected.numpy()).max() <= 1e-6
        saved = np.load(probabilities.save(tmp_path / "probs.npy"))
        assert saved.dtype == np.float16 and saved.shape == (150, *image.shape[:2])
        assert np.array_equal(saved, probabilities.numpy().astype(np.float16))
        assert [path.name for path in tmp_path.iterdir()] == ["probs.npy"]  # no temporary file left


@pytest.mark.parametrize("config", [SLIDE_NATIVE, SLIDE_NATIVE_FLIP], ids=["one-view", "flip"])
def test_probabilities_of_windows_at_the_images_size_are_made_with_the_labels(eager, image, config, monkeypatch,
                                                                              tmp_path):
    """Windows over the image at its own size: one pass gives the labels, the confidence and the
    probabilities, without the logits of the whole image (their path would fail here); held as
    float16 they are the float32 ones rounded, and the file is the same to the byte."""
    other = np.ascontiguousarray(image[::-1])
    group = [prepare(image, config), prepare(other, config)]
    reference = segment_group_with_probabilities(eager, group, config, with_confidence=True)
    monkeypatch.setattr(segment_module, "slide_logits", None)
    monkeypatch.setattr(segment_module, "_stride8_sources", None)
    held = segment_group_with_probabilities(eager, group, config, with_confidence=True, label_dtype=torch.uint8,
                                            held_dtype=torch.float16)
    for index, ((labels, probabilities, confidence), (labels16, probabilities16, confidence16)) in \
            enumerate(zip(reference, held)):
        assert labels16.dtype == torch.uint8 and torch.equal(labels16.long(), labels)
        assert torch.equal(confidence16, confidence)
        assert probabilities16.computed.dtype == torch.float16 and probabilities16.shape == (150, 77, 109)
        full = probabilities.numpy()
        assert np.array_equal(probabilities16.numpy(), full.astype(np.float16).astype(np.float32))
        assert np.array_equal(full.argmax(0), labels.numpy()) and np.allclose(full.sum(0), 1, atol=1e-5)
        assert (np.load(probabilities.save(tmp_path / f"{index}.npy")).tobytes() ==
                np.load(probabilities16.save(tmp_path / f"{index}_16.npy")).tobytes())


def test_probabilities_on_a_full_disk_are_an_error_naming_the_file(eager, image, full_disk, tmp_path):
    """The file is written by plain writes (no memory map, where a full disk kills the process):
    the disk filling up midway is a DiskFullError naming the file, and no partial file is left."""
    from segnext.utils import DiskFullError

    config = TestConfig(img_scale=(160, 96))
    (_, probabilities), = segment_group_with_probabilities(eager, [prepare(image, config)], config)
    full_disk(tmp_path, free=150 * 77 * 109)  # room for about half of the float16 file
    with pytest.raises(DiskFullError, match=r"probs\.npy: no space left on the device"):
        probabilities.save(tmp_path / "probs.npy")
    assert list(tmp_path.iterdir()) == []


def test_optimized_model_gives_the_reference_labels(eager, image):
    optimized = segnext.optimize_for_inference(eager)
    config = TestConfig(img_scale=(160, 96), size_divisor=32)
    reference = segment(eager, image, config)
    for memory_efficient in (False, True):
        labels = segment(optimized, image, config, memory_efficient=memory_efficient)
        assert (labels == reference).double().mean() >= 0.999


def test_multi_scale_without_forward_logits_takes_the_plain_path(eager, image):
    """Models that only give logits at their input size (e.g. an ONNX session) are averaged at full size."""

    class LogitsOnly(torch.nn.Module):
        num_classes = 150

        def __init__(self):
            super().__init__()
            self.inner = eager

        def forward(self, images):
            return self.inner(images)

    with torch.no_grad():
        got = segment_logits(LogitsOnly(), image, MULTI_SCALE, memory_efficient=True)
        expected = resize_everything(eager, image, MULTI_SCALE)
    assert (got - expected).abs().max() <= 1e-6


def test_memory_efficient_none_follows_the_device_and_the_size_of_the_scores(eager, image, monkeypatch):
    """None (what Segmenter and evaluate pass): the label-only path on the CPU; on a device whose
    default is the plain resize + argmax (a GPU), that path, unless the full-resolution scores would
    pass the budget. The labels are the same either way."""
    import importlib

    from segnext.devices import DEVICE_DEFAULTS

    segment_module = importlib.import_module("segnext.inference.segment")  # the package's `segment` is the function

    calls = []
    real = segment_module.upsampled_argmax
    monkeypatch.setattr(segment_module, "upsampled_argmax", lambda *args: calls.append(1) or real(*args))
    config = TestConfig(img_scale=(160, 96))

    on_cpu = segment(eager, image, config, memory_efficient=None)
    assert len(calls) == 1
    monkeypatch.setattr(segment_module, "device_defaults", lambda device: DEVICE_DEFAULTS["cuda"])
    as_on_a_gpu = segment(eager, image, config, memory_efficient=None)
    assert len(calls) == 1
    monkeypatch.setattr(segment_module, "FULL_SCORES_BUDGET", 4 * 150 * 77 * 109 - 1)  # one byte short
    too_large = segment(eager, image, config, memory_efficient=None)
    assert len(calls) == 2
    assert torch.equal(on_cpu, as_on_a_gpu) and torch.equal(on_cpu, too_large)


@pytest.mark.parametrize("memory_efficient", [False, True])
@pytest.mark.parametrize("config", [TestConfig(img_scale=(160, 96)), MULTI_SCALE], ids=["single", "multi-scale"])
def test_a_model_in_training_mode_gives_its_eval_predictions_and_is_left_as_it_was(eager, checkpoint_path, image,
                                                                                    config, memory_efficient):
    """create_model returns a model in training mode, as every module: BatchNorm's batch statistics
    would give other labels and overwrite its running statistics."""
    expected = segment(eager, image, config, memory_efficient=memory_efficient)
    training = segnext.create_model("segnext_t", 150, checkpoint=checkpoint_path)
    training.backbone.norm1.eval()  # a module the user froze stays frozen
    modes = {name: module.training for name, module in training.named_modules()}
    state = {name: value.clone() for name, value in training.state_dict().items()}

    assert torch.equal(segment(training, image, config, memory_efficient=memory_efficient), expected)
    assert np.array_equal(segnext.Segmenter(training, config).predict_with_proba(image)[1],
                          segnext.Segmenter(eager, config).predict_with_proba(image)[1])
    assert {name: module.training for name, module in training.named_modules()} == modes
    assert not modes["backbone.norm1"] and modes["backbone.block1.0.norm1"]
    assert all(torch.equal(value, state[name]) for name, value in training.state_dict().items())


def test_threads_keep_a_training_model_in_eval_mode_until_the_last_is_done():
    """A web server's threads predicting with one model: the first to finish must not put the model
    back in training mode under the others (wrong labels, running statistics overwritten)."""
    model = segnext.create_model("segnext_t", num_classes=3)
    model.backbone.norm1.eval()  # a module the user froze stays frozen
    modes = {name: module.training for name, module in model.named_modules()}
    both_inside, first_is_out = threading.Barrier(2, timeout=10), threading.Event()
    seen = {}

    def first():
        with evaluation_mode(model):
            both_inside.wait()
        first_is_out.set()

    def second():
        with evaluation_mode(model):
            both_inside.wait()
            first_is_out.wait(timeout=10)
            seen["training modules"] = sorted(name for name, module in model.named_modules() if module.training)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"training modules": []}
    assert {name: module.training for name, module in model.named_modules()} == modes


def test_many_threads_predict_with_one_training_model_as_it_would_alone(checkpoint_path):
    model = segnext.create_model("segnext_t", 150, checkpoint=checkpoint_path)  # in training mode
    state = {name: value.clone() for name, value in model.state_dict().items()}
    segmenter = segnext.Segmenter(model, TestConfig(img_scale=None))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 40, 3), dtype=np.uint8) for _ in range(24)]
    expected = [segmenter.predict(one) for one in images]
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(segmenter.predict, images))
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    assert all(torch.equal(value, state[name]) for name, value in model.state_dict().items())
    assert model.training


class _CountingWindows(torch.nn.Module):
    """A model that counts its forward passes (the sliding windows run)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.num_classes, self.calls = model, model.num_classes, 0

    def forward(self, images):
        self.calls += 1
        return self.model(images)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_pixels_of_no_data_get_no_label_and_the_others_their_own(eager, image, config):
    """An image prepared with where it holds no data (`PreparedImage.no_data`): on every path of the
    test those pixels get no label (255) and NaN confidence and probabilities, and the others
    exactly what they get without it."""
    no_data = np.zeros(image.shape[:2], dtype=bool)
    no_data[:, :60] = no_data[70:] = True
    plain, masked = prepare(image, config), prepare(image, config)
    masked.no_data = no_data
    inside = torch.from_numpy(~no_data)
    for memory_efficient in (False, True):
        (labels, confidence), = segment_group_confidence(eager, [plain], config, memory_efficient=memory_efficient)
        (left, left_confidence), = segment_group_confidence(eager, [masked], config,
                                                            memory_efficient=memory_efficient)
        assert (left[~inside] == 255).all() and torch.equal(left[inside], labels[inside])
        assert left_confidence[~inside].isnan().all() and torch.equal(left_confidence[inside], confidence[inside])
        only_labels, = segment_group(eager, [masked], config, memory_efficient=memory_efficient)
        assert torch.equal(only_labels, left)
    (labels, probabilities), = segment_group_with_probabilities(eager, [plain], config)
    (left, left_probabilities), = segment_group_with_probabilities(eager, [masked], config)
    assert torch.equal(left[inside], labels[inside]) and (left[~inside] == 255).all()
    every, kept = probabilities.numpy(), left_probabilities.numpy()
    assert np.isnan(kept[:, no_data]).all() and np.array_equal(kept[:, ~no_data], every[:, ~no_data])


@pytest.mark.parametrize("config", [SLIDE_NATIVE, SLIDE_NATIVE_FLIP], ids=["one-view", "flip"])
def test_sliding_windows_that_hold_only_no_data_are_not_run(eager, image, config):
    """At the image's own size, a window all of whose pixels hold no data is not run (nor its mirror
    image's): 2 of the 6 windows (of each view) here; the labels of the other pixels are the same."""
    no_data = np.zeros(image.shape[:2], dtype=bool)
    no_data[:, :60] = no_data[70:] = True  # the windows over columns 0..48 hold nothing else
    counting = _CountingWindows(eager)
    plain = segment_group(counting, [prepare(image, config)], config, memory_efficient=True)[0]
    views = 2 if config.flip else 1
    assert counting.calls == 6 * views
    masked = prepare(image, config)
    masked.no_data = no_data
    counting.calls = 0
    left = segment_group(counting, [masked], config, memory_efficient=True)[0]
    assert counting.calls == 4 * views
    assert torch.equal(left[torch.from_numpy(~no_data)], plain[torch.from_numpy(~no_data)])
