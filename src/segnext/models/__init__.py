"""SegNeXt model components: MSCAN encoder, LightHamHead decoder with NMF (or the all-MLP decoder of
the paper's ablation), the segmentor, its weights (official, JSeg and project formats; published
weights by name; the Hugging Face Hub) and `create_model`."""

from ..constants import DEFAULT_NMF_SEED
from .configuration import VARIANTS, SegNeXtConfig, list_models
from .download import DownloadError
from .factory import create_model, model_record, recorded_training_data
from .loading import LoadReport
from .pretrained import PRETRAINED, list_pretrained
from .segnext import SegNeXt, dice_loss, segmentation_loss
from .weights import CheckpointError, read_checkpoint, save_model

__all__ = ["VARIANTS", "SegNeXtConfig", "list_models", "DownloadError", "create_model", "model_record",
           "recorded_training_data",
           "DEFAULT_NMF_SEED", "LoadReport", "PRETRAINED", "list_pretrained", "SegNeXt", "segmentation_loss",
           "dice_loss", "CheckpointError", "read_checkpoint", "save_model"]
