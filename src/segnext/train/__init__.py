"""Training: config, the official optimiser/schedule/loss, the loop, checkpoints, DDP, reports.

    from segnext.train import load_config, train
    config = load_config("segnext_t_ade20k_512x512_160k", ["data.root=data/ade/ADEChallengeData2016"])
    result = train(config, "work_dirs/segnext_t_ade20k")
"""

from .config import Config, ConfigError, list_configs, load_config
from .loop import TrainingDiverged, TrainResult, train
from .loss import segmentation_loss
from .optim import build_optimizer, lr_factor, parameter_settings

__all__ = ["Config", "ConfigError", "list_configs", "load_config", "train", "TrainResult", "TrainingDiverged",
           "segmentation_loss", "build_optimizer", "lr_factor", "parameter_settings"]
