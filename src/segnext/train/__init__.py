"""Training: config, the official optimiser/schedule, the loop, checkpoints, DDP, reports.

    from segnext.train import load_config, train
    config = load_config("segnext_t_ade20k_512x512_160k", ["data.root=data/ade/ADEChallengeData2016"])
    result = train(config, "work_dirs/segnext_t_ade20k")
"""

from .config import Config, ConfigError, list_configs, load_config
from .loop import TrainResult, train
from .optim import build_optimizer, lr_factor, parameter_settings
from .step import TrainingDiverged, train_step

__all__ = ["Config", "ConfigError", "list_configs", "load_config", "train", "train_step", "TrainResult",
           "TrainingDiverged", "build_optimizer", "lr_factor", "parameter_settings"]
