"""Videos through a `Segmenter`: an overlay video and a label PNG per frame.

    from segnext.inference.video import predict_video
    outputs = predict_video(segmenter, "clip.mp4", "predictions/")
    # predictions/clip_overlay.mp4, predictions/clip/000000.png, 000001.png, ...

Frames are read with OpenCV (`pip install 'segnext[opencv]'`) in a background thread, predicted
`batch_size` at a time in this thread (the frames of a video share a size, so a batch is one
forward pass per scale; each frame gets the labels it gets alone), and written in order by another
background thread: reading, the model and writing overlap. The overlay video is written at the
input's frame rate as MPEG-4 (`mp4v`, in every OpenCV built with FFmpeg, as the pip wheels are),
else as Motion-JPEG in an .avi (OpenCV's own encoder, in every build), under a temporary name
that is renamed when the video is complete.
"""

from __future__ import annotations

import math
import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from ..constants import IGNORE_INDEX
from ..data.io import write_image, write_label
from ..data.palette import overlay
from ..utils import progress_bar, require, user_path, write_csv
from .segmenter import UNSURE_BELOW, Segmenter, confidence_greyscale, confidence_summary, leave_unsure

DEFAULT_FPS = 25.0  # when the container does not say
OVERLAY_FORMATS = ((".mp4", "mp4v"), (".avi", "MJPG"))  # (suffix, fourcc), the first one that opens
_END = object()  # the reader's last item


@dataclass
class VideoOutputs:
    frames: int
    overlay: Path  # the overlay video
    labels: Path  # the folder of per-frame label PNGs
    confidence_table: Optional[Path] = None  # with confidence: each frame's mean confidence, least confident first
    least_confident: List[Tuple[int, float, float, float]] = field(default_factory=list)  # its rows: frame,
    # seconds into the video, mean confidence and share of unsure pixels (percent)


def opencv():
    """The cv2 module, or an error that says how to install it."""
    return require("cv2", "opencv", "Segmenting videos", package="opencv-python-headless")


def predict_video(segmenter: Segmenter, path: Union[str, Path], out_dir: Union[str, Path], *,
                  name: Optional[Union[str, Path]] = None, batch_size: int = 8, alpha: float = 0.5,
                  probabilities: bool = False, confidence: bool = False, unsure_below: Optional[float] = None,
                  progress: bool = False) -> VideoOutputs:
    """Segment every frame of the video at `path`.

    Writes OUT/<name>_overlay.mp4 (the frames with the label colours blended in, weight `alpha`;
    .avi where OpenCV has no MPEG-4 encoder)
    and OUT/<name>/<frame>.png (palettised label maps, frames numbered from 000000); with
    `probabilities` also OUT/<name>/<frame>_probs.npy (float16, num_classes x H x W); with
    `confidence` OUT/<name>/<frame>_confidence.png (each pixel's confidence, as
    `Segmenter.predict_with_confidence`, 255 = certain) and OUT/<name>/confidence.csv (each frame's
    mean confidence, least confident first: the frames to label next). unsure_below: the pixels
    whose confidence is under it are left unlabelled (255, uncoloured; `leave_unsure`). name: the video's file name
    without its suffix unless given. progress: a progress bar over frames. A stream whose resolution
    changes midway is followed: each frame's label map has its own size, and the overlay video the
    first frame's (later frames are resized to it).
    """
    cv2 = opencv()
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    path, out_dir = user_path(path), user_path(out_dir)
    name = Path(name) if name is not None else Path(path.stem)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: OpenCV cannot open this video (corrupt, or a format its FFmpeg lacks); "
                         f"convert it, e.g. ffmpeg -i {path.name} -c:v libx264 converted.mp4")
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
    frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    labels_dir = out_dir / name

    frames: queue.Queue = queue.Queue(maxsize=2 * batch_size)
    stop = threading.Event()
    reader = threading.Thread(target=_read_frames, args=(cv2, capture, segmenter, frames, stop), daemon=True)
    writer = _OverlayWriter(cv2, out_dir / name.parent / f"{name.name}_overlay", fps)
    bar = progress_bar(frame_count if frame_count > 0 else None, enabled=progress, unit="frame", desc=path.name[-30:],
                       leave=False)
    written = 0
    summaries: list = []  # (frame, mean confidence, unsure share), filled by the saving thread
    outputs_asked = dict(with_probabilities=probabilities, with_confidence=confidence or unsure_below is not None,
                         probabilities_in_bands=probabilities)
    written_asked = dict(confidence=confidence, unsure_below=unsure_below)
    try:
        reader.start()
        with ThreadPoolExecutor(max_workers=1) as saver:  # one thread: frames are written in order
            pending: deque = deque()

            def predict(batch: list) -> None:
                nonlocal written
                outputs = segmenter.predict_group([image for _, image in batch], **outputs_asked)
                pending.append(saver.submit(_write_frames, batch, outputs, segmenter.palette, alpha, labels_dir,
                                            writer, outputs_asked, summaries, **written_asked))
                bar.update(len(batch))
                written += len(batch)
                while len(pending) > 2:  # bound the frames held in memory
                    pending.popleft().result()

            batch: list = []
            while True:
                item = _get(frames, reader)
                if isinstance(item, BaseException):
                    raise item
                # a batch holds frames of one size: where a stream's resolution changes, a new one starts
                if batch and (item is _END or item[1].group_key != batch[0][1].group_key):
                    predict(batch)
                    batch = []
                if item is _END:
                    break
                batch.append(item)
                if len(batch) == batch_size:
                    predict(batch)
                    batch = []
            while pending:
                pending.popleft().result()
        if written == 0:
            raise ValueError(f"{path}: no frame could be decoded; the file may be corrupt or empty")
        overlay_path = writer.finish()
        table, least_confident = None, []
        if confidence:
            least_confident = sorted(((frame, frame / fps, mean, unsure) for frame, mean, unsure in summaries),
                                     key=lambda row: (row[2], row[0]))
            table = write_csv(labels_dir / "confidence.csv", ["frame", "seconds", "confidence", "unsure_pixels"],
                              ([f"{frame:06d}", f"{seconds:.3f}", f"{mean:.2f}", f"{unsure:.2f}"]
                               for frame, seconds, mean, unsure in least_confident))
    finally:
        stop.set()
        if reader.ident is not None:
            reader.join()  # before the capture is released: the reader may be decoding a frame
        capture.release()
        writer.discard()
        bar.close()
    return VideoOutputs(frames=written, overlay=overlay_path, labels=labels_dir, confidence_table=table,
                        least_confident=least_confident)


def _read_frames(cv2, capture, segmenter: Segmenter, frames: queue.Queue, stop: threading.Event) -> None:
    """Decode, convert to RGB and resize for the test, frame after frame, into `frames`."""
    try:
        index = 0
        while not stop.is_set():
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if not _put(frames, (index, segmenter.prepare(rgb, keep_image=True)), stop):
                return
            index += 1
        _put(frames, _END, stop)
    except Exception as error:  # handed to the main thread, which raises it
        _put(frames, error, stop)


def _put(frames: queue.Queue, item, stop: threading.Event) -> bool:
    """Put `item`, waiting while the queue is full, unless the consumer has stopped."""
    while not stop.is_set():
        try:
            frames.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(frames: queue.Queue, reader: threading.Thread):
    """The next item; an error if the reader died without saying so."""
    while True:
        try:
            return frames.get(timeout=1.0)
        except queue.Empty:
            if not reader.is_alive() and frames.empty():
                return RuntimeError("the video reader stopped unexpectedly")


class _OverlayWriter:
    """cv2.VideoWriter opened at the first frame (its size is the frames' size) in the first of
    OVERLAY_FORMATS that OpenCV can write, under a temporary name until `finish`."""

    def __init__(self, cv2, stem: Path, fps: float):
        self.cv2, self.stem, self.fps = cv2, stem, fps
        self.video = self.partial = self.final = None
        self.size: Optional[Tuple[int, int]] = None  # (width, height) of the video, set by the first frame

    def write(self, rgb: np.ndarray) -> None:
        cv2 = self.cv2
        if self.video is None:
            self._open(width=rgb.shape[1], height=rgb.shape[0])
            self.size = (rgb.shape[1], rgb.shape[0])
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            # a video has one frame size (a writer drops frames of another without a word): a stream
            # whose resolution changes midway keeps its first size, the later frames resized to it
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_LINEAR)
        self.video.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def _open(self, width: int, height: int) -> None:
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        for suffix, fourcc in OVERLAY_FORMATS:
            partial = self.stem.with_name(f".{self.stem.name}.partial{suffix}")  # the container follows the suffix
            video = self.cv2.VideoWriter(str(partial), self.cv2.VideoWriter_fourcc(*fourcc), self.fps, (width, height))
            if video.isOpened():
                self.video, self.partial, self.final = video, partial, self.stem.with_name(self.stem.name + suffix)
                return
            video.release()
            if partial.exists():
                partial.unlink()
        raise ValueError(f"OpenCV cannot write a video to {self.stem.parent} (no MPEG-4 or Motion-JPEG encoder "
                         f"in its build, or the folder is not writable)")

    def finish(self) -> Path:
        """Close the video and give it its final name."""
        self.video.release()
        self.video = None
        self.partial.replace(self.final)
        return self.final

    def discard(self) -> None:
        """Close and remove an unfinished video (nothing to do after `finish`)."""
        if self.video is not None:
            self.video.release()
            self.video = None
        if self.partial is not None and self.partial.exists():
            self.partial.unlink()


def _write_frames(batch, outputs, palette, alpha: float, labels_dir: Path, writer: _OverlayWriter,
                  asked: dict, summaries: list, confidence: bool, unsure_below: Optional[float]) -> None:
    """Write a batch's frames: label PNGs, overlay frames, and the probabilities `asked` for
    (`predict_group`'s options), the confidence maps with `confidence` (each frame's summary into
    `summaries`); with `unsure_below`, the labels under that confidence left out."""
    for (index, image), output in zip(batch, outputs):
        labels, *scores = output if asked["with_probabilities"] or asked["with_confidence"] else (output,)
        probabilities = scores.pop(0) if asked["with_probabilities"] else None
        pixel_confidence = scores.pop(0) if asked["with_confidence"] else None
        unlabelled = None  # a class 255 keeps its colour
        if unsure_below is not None:
            labels, unlabelled = leave_unsure(labels, pixel_confidence, unsure_below), IGNORE_INDEX
        write_label(labels_dir / f"{index:06d}.png", labels, palette)
        writer.write(overlay(image.rgb, labels, palette, alpha, ignore_index=unlabelled))
        if probabilities is not None:
            probabilities.save(labels_dir / f"{index:06d}_probs.npy", np.float16)  # a band of rows at a time
        if confidence:
            write_image(labels_dir / f"{index:06d}_confidence.png", confidence_greyscale(pixel_confidence))
            summaries.append((index, *confidence_summary(pixel_confidence, unsure_below or UNSURE_BELOW)))
