"""torch.hub: the repository's hubconf.py loads every variant, with published weights from the cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from segnext.models.pretrained import PRETRAINED

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_torch_hub_load_from_a_local_checkout(tmp_path, monkeypatch, checkpoint_path):
    monkeypatch.setenv("SEGNEXT_HOME", str(tmp_path))
    monkeypatch.setenv("SEGNEXT_WEIGHTS_URL", "http://127.0.0.1:9")  # nothing is downloaded: the file is cached
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(checkpoint_path, tmp_path / "checkpoints" / PRETRAINED["segnext_t.ade20k"].file_name)
    model = torch.hub.load(str(REPO_ROOT), "segnext_t", source="local", pretrained="ade20k")
    reference = torch.load(checkpoint_path, map_location="cpu", weights_only=True)["state_dict"]
    assert model.config.variant == "segnext_t" and model.num_classes == 150
    for key, value in reference.items():
        assert torch.equal(model.state_dict()[key], value), key
    small = torch.hub.load(str(REPO_ROOT), "segnext_s", source="local", num_classes=19)
    assert small.config.variant == "segnext_s" and small.num_classes == 19
    camvid = torch.hub.load(str(REPO_ROOT), "segnext_t", source="local", pretrained="camvid")  # in the package
    assert camvid.num_classes == 11 and camvid.config.class_names[0] == "Sky"
