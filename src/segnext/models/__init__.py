"""SegNeXt model components: MSCAN encoder, LightHamHead decoder with NMF, the segmentor."""

from .config import VARIANTS, SegNeXtConfig, list_models
from .factory import DEFAULT_NMF_SEED, create_model
from .segnext import SegNeXt

__all__ = ["VARIANTS", "SegNeXtConfig", "list_models", "create_model", "DEFAULT_NMF_SEED", "SegNeXt"]
