"""SegNeXt model components: MSCAN encoder, LightHamHead decoder with NMF, the segmentor, its
weights (official and project formats) and `create_model`."""

from .configuration import VARIANTS, SegNeXtConfig, list_models
from .factory import DEFAULT_NMF_SEED, create_model
from .segnext import SegNeXt, segmentation_loss
from .weights import CheckpointError, read_checkpoint, save_model

__all__ = ["VARIANTS", "SegNeXtConfig", "list_models", "create_model", "DEFAULT_NMF_SEED", "SegNeXt",
           "segmentation_loss", "CheckpointError", "read_checkpoint", "save_model"]
