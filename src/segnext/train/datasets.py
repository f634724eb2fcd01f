"""The training and validation sets a config names (through `segnext.data.build_dataset`)."""

from __future__ import annotations

from pathlib import Path

from .config import Config, ConfigError


def _check_root(config: Config) -> None:
    root = config.data.root
    if not root:
        raise ConfigError(f"data.root is empty: set it to the {config.data.dataset} dataset directory, "
                          f"e.g. `segnext train CONFIG data.root=/path/to/data`.")
    if not Path(root).expanduser().exists():
        raise FileNotFoundError(f"data.root {root} does not exist. Point it at the {config.data.dataset} dataset "
                                f"(`data.root=/path/to/data` on the command line).")


def build_train_set(config: Config):
    from ..data import TrainTransform, build_dataset

    _check_root(config)
    data = config.data
    transform = TrainTransform(crop_size=tuple(data.crop_size), img_scale=tuple(data.img_scale),
                               ratio_range=tuple(data.ratio_range), cat_max_ratio=data.cat_max_ratio,
                               flip_prob=data.flip_prob, photometric=data.photometric, mean=tuple(data.mean),
                               std=tuple(data.std))
    return build_dataset(data.dataset, str(Path(data.root).expanduser()), data.train_split, transform=transform,
                         seed=config.train.seed)


def build_val_set(config: Config, split: str = None):
    """Without a transform: items are dict(image=uint8 HxWx3, label=uint8 HxW) at the original size."""
    from ..data import build_dataset

    _check_root(config)
    data = config.data
    return build_dataset(data.dataset, str(Path(data.root).expanduser()), split or data.val_split, transform=None,
                         seed=config.train.seed)
