"""A segmentation model over HTTP (`segnext serve`; `pip install 'segnext[serve]'`): see `app.py`."""

from .app import SegmentationService, create_app
from .worker import ModelWorker

__all__ = ["ModelWorker", "SegmentationService", "create_app"]
