"""Videos: an overlay video with every frame and a label PNG per frame, each frame's labels those
of the frame predicted alone."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

import segnext
from segnext.inference import Segmenter, TestConfig
from segnext.inference.video import predict_video

cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed (pip install 'segnext[opencv]'): videos untested")

FRAMES, HEIGHT, WIDTH = 10, 40, 56


def write_test_video(path, frames=FRAMES, fourcc="mp4v"):
    """A small video of moving blocks, or a skip naming the codec this OpenCV cannot write."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (WIDTH, HEIGHT))
    if not writer.isOpened():
        pytest.skip(f"this OpenCV build cannot write {fourcc} video: video prediction untested")
    blocks = np.random.default_rng(0).integers(0, 256, (HEIGHT // 8 + 1, WIDTH // 8 + frames + 1, 3), dtype=np.uint8)
    scene = np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8))
    for index in range(frames):
        writer.write(np.ascontiguousarray(scene[:HEIGHT, index * 2:index * 2 + WIDTH]))
    writer.release()
    return path


def read_frames(path):
    """Every frame of a video as RGB, decoded as predict_video decodes it."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


@pytest.fixture(scope="module")
def segmenter(checkpoint_path):
    model = segnext.optimize_for_inference(segnext.create_model(checkpoint=checkpoint_path).eval())
    return Segmenter(model, TestConfig(img_scale=(64, 48)))


def test_overlay_video_and_a_label_map_per_frame(segmenter, tmp_path):
    write_test_video(tmp_path / "probe.mp4", frames=1)  # the overlay's codec (skips without it)
    clip = write_test_video(tmp_path / "clip.avi", fourcc="MJPG")
    outputs = predict_video(segmenter, clip, tmp_path / "out", batch_size=4, alpha=1.0)  # 4 + 4 + 2 frames
    assert outputs.frames == FRAMES
    assert outputs.overlay == tmp_path / "out" / "clip_overlay.mp4" and outputs.labels == tmp_path / "out" / "clip"
    assert sorted(p.name for p in outputs.labels.iterdir()) == [f"{i:06d}.png" for i in range(FRAMES)]
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == []  # no partial file left
    frames = read_frames(clip)
    overlay_frames = read_frames(outputs.overlay)
    assert len(frames) == len(overlay_frames) == FRAMES
    for index, frame in enumerate(frames):
        with Image.open(outputs.labels / f"{index:06d}.png") as written:
            assert written.mode == "P" and written.size == (WIDTH, HEIGHT)
            labels = np.asarray(written)
        assert np.array_equal(labels, segmenter.predict(frame)), f"frame {index}"
        # alpha 1: the overlay frame is the colour map, up to the video codec's loss
        colours = segmenter.colorize(labels).astype(np.float32)
        assert np.abs(overlay_frames[index].astype(np.float32) - colours).mean() < 20


def test_probabilities_per_frame_and_a_name(segmenter, tmp_path):
    clip = write_test_video(tmp_path / "clip.mp4", frames=3)
    outputs = predict_video(segmenter, clip, tmp_path / "out", name="sub/renamed", probabilities=True)
    assert outputs.overlay == tmp_path / "out" / "sub" / "renamed_overlay.mp4" and outputs.overlay.is_file()
    probabilities = np.load(outputs.labels / "000002_probs.npy")
    assert probabilities.shape == (150, HEIGHT, WIDTH) and probabilities.dtype == np.float16


def test_confidence_per_frame_and_the_frames_least_confident_first(segmenter, tmp_path):
    import csv

    clip = write_test_video(tmp_path / "clip.mp4", frames=4)  # 10 frames per second
    outputs = predict_video(segmenter, clip, tmp_path / "out", batch_size=3, confidence=True)
    means = {}
    for index, frame in enumerate(read_frames(clip)):
        _, confidence = segmenter.predict_with_confidence(frame)
        with Image.open(outputs.labels / f"{index:06d}_confidence.png") as written:
            assert written.mode == "L" and np.array_equal(np.asarray(written), np.round(confidence * 255))
        means[index] = 100 * confidence.mean()
    order = sorted(means, key=means.get)
    assert [row[0] for row in outputs.least_confident] == order
    assert [row[1] for row in outputs.least_confident] == pytest.approx([frame / 10 for frame in order])
    assert [row[2] for row in outputs.least_confident] == pytest.approx([means[frame] for frame in order])
    assert outputs.confidence_table == outputs.labels / "confidence.csv"
    with open(outputs.confidence_table, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["frame"] for row in rows] == [f"{frame:06d}" for frame in order]
    assert [float(row["confidence"]) for row in rows] == pytest.approx([means[f] for f in order], abs=0.006)


def test_unsure_pixels_are_left_unlabelled_in_every_frame(segmenter, tmp_path):
    clip = write_test_video(tmp_path / "clip.mp4", frames=3)
    frames = read_frames(clip)
    _, confidence = segmenter.predict_with_confidence(frames[0])
    below = float(np.median(confidence))
    outputs = predict_video(segmenter, clip, tmp_path / "out", batch_size=2, unsure_below=below)
    for index, frame in enumerate(frames):
        labels, confidence = segmenter.predict_with_confidence(frame)
        with Image.open(outputs.labels / f"{index:06d}.png") as written:
            assert np.array_equal(np.asarray(written), np.where(confidence < below, 255, labels)), f"frame {index}"
    assert (np.asarray(Image.open(outputs.labels / "000000.png")) == 255).mean() > 0.3
    assert not list(outputs.labels.glob("*_confidence.png")) and outputs.confidence_table is None


def test_motion_jpeg_where_opencv_has_no_mpeg4_encoder(segmenter, tmp_path, monkeypatch):
    clip = write_test_video(tmp_path / "clip.avi", frames=3, fourcc="MJPG")
    real_writer, mp4v = cv2.VideoWriter, cv2.VideoWriter_fourcc(*"mp4v")

    def without_mpeg4(path, fourcc, *args):
        return real_writer() if fourcc == mp4v else real_writer(path, fourcc, *args)  # an unopened writer

    monkeypatch.setattr(cv2, "VideoWriter", without_mpeg4)
    outputs = predict_video(segmenter, clip, tmp_path / "out")
    monkeypatch.undo()
    assert outputs.overlay == tmp_path / "out" / "clip_overlay.avi" and len(read_frames(outputs.overlay)) == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip", "clip_overlay.avi"]


def test_unreadable_videos_are_named(segmenter, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    with pytest.raises(ValueError, match="broken.mp4: OpenCV cannot open this video"):
        predict_video(segmenter, broken, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        predict_video(segmenter, tmp_path / "missing.mp4", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_without_opencv_the_error_says_how_to_get_it(segmenter, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ValueError, match=r"needs the opencv-python-headless package: pip install 'segnext\[opencv\]'"):
        predict_video(segmenter, tmp_path / "clip.mp4", tmp_path / "out")


def test_a_stream_whose_resolution_changes_midway(segmenter, tmp_path, monkeypatch):
    """Frames of the new size start a batch of their own; each gets its own labels at its size, and
    the overlay video keeps the first size (a video has one)."""
    clip = write_test_video(tmp_path / "clip.avi", frames=7, fourcc="MJPG")
    real_capture = cv2.VideoCapture

    class ResolutionChange:  # frames 3-5 come at 80x60, as from a stream that switched resolution
        def __init__(self, path):
            self.capture, self.index = real_capture(path), 0

        def read(self):
            ok, bgr = self.capture.read()
            if ok and 3 <= self.index <= 5:
                bgr = cv2.resize(bgr, (80, 60))
            self.index += 1
            return ok, bgr

        def __getattr__(self, name):
            return getattr(self.capture, name)

    frames = [cv2.resize(f, (80, 60)) if 3 <= i <= 5 else f for i, f in enumerate(read_frames(clip))]
    monkeypatch.setattr(cv2, "VideoCapture", ResolutionChange)
    outputs = predict_video(segmenter, clip, tmp_path / "out", batch_size=4)
    monkeypatch.undo()
    assert outputs.frames == 7
    for index, frame in enumerate(frames):
        with Image.open(outputs.labels / f"{index:06d}.png") as written:
            assert written.size == (frame.shape[1], frame.shape[0])
            assert np.array_equal(np.asarray(written), segmenter.predict(frame)), f"frame {index}"
    overlay_frames = read_frames(outputs.overlay)
    assert len(overlay_frames) == 7 and {f.shape for f in overlay_frames} == {(HEIGHT, WIDTH, 3)}
