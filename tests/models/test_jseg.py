"""JSeg (Jittor) checkpoints: a file written the way JSeg's Runner.save and Jittor's jt.save write
one loads to the official model; a file that would run code, a corrupt and a truncated one are
refused with a clear error, and nothing in them runs."""

from __future__ import annotations

import hashlib
import pickle

import pytest
import torch

import segnext
from segnext import CheckpointError


def write_like_jseg(path, contents) -> None:
    """Jittor's safepickle: protocol-4 pickle, then its SHA-1, then b"HCAJSLHD"."""
    body = pickle.dumps(contents, 4)
    path.write_bytes(body + hashlib.sha1(body).digest() + b"HCAJSLHD")


@pytest.fixture(scope="module")
def official(checkpoint_path):
    return torch.load(checkpoint_path, map_location="cpu", weights_only=True)


def _as_jittor_state(state_dict, prefix=""):
    """A Jittor model's state dict: NumPy arrays, the same names, no BatchNorm num_batches_tracked."""
    return {prefix + k: v.numpy() for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}


def test_a_jseg_training_checkpoint_loads_to_the_official_model(tmp_path, official, checkpoint_path, io_data):
    contents = {
        "meta": {"jseg_version": "0.0.1", "epoch": 0, "iter": 160000, "max_iter": 160000, "max_epoch": None,
                 "save_time": "2022-09-20 12:00:00", "config": {"name": "segnext_tiny_512x512_ade_160k"}},
        "model": _as_jittor_state(official["state_dict"]),
        "scheduler": {"cur_lr": 0.0, "max_steps": 160000},
        "optimizer": {"defaults": {"lr": 6e-5, "betas": (0.9, 0.999)}, "param_groups": [{"lr": 6e-5}]},
    }
    write_like_jseg(tmp_path / "segnext_tiny_ade.pkl", contents)
    model = segnext.create_model(checkpoint=tmp_path / "segnext_tiny_ade.pkl").eval()
    reference = segnext.create_model(checkpoint=checkpoint_path).eval()
    assert model.config.variant == "segnext_t" and model.num_classes == 150
    for key, value in reference.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(model.state_dict()[key], value), key
    with torch.no_grad():
        logits = model.forward_logits(io_data["odd_input"], nmf_bases=io_data["odd_bases"])
    torch.testing.assert_close(logits, io_data["odd_decode_logits"], atol=1e-4, rtol=1e-4)


def test_a_jseg_encoder_loads_as_backbone(tmp_path, official, checkpoint_path):
    encoder = {k[len("backbone."):]: v for k, v in official["state_dict"].items() if k.startswith("backbone.")}
    contents = {**_as_jittor_state(encoder), "head.weight": torch.zeros(1000, 256).numpy()}
    write_like_jseg(tmp_path / "mscan_t.pkl", contents)
    model = segnext.create_model("segnext_t", 19, backbone_checkpoint=tmp_path / "mscan_t.pkl")
    reference = segnext.create_model(checkpoint=checkpoint_path)
    for key, value in reference.backbone.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(model.backbone.state_dict()[key], value), key


class _Payload:
    """Unpickling this creates the file `marker` (a stand-in for arbitrary code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, official):
    marker = tmp_path / "PWNED"
    contents = {"model": _as_jittor_state(official["state_dict"]), "meta": {"x": _Payload(marker)}}
    write_like_jseg(tmp_path / "hostile.pkl", contents)
    with pytest.raises(CheckpointError) as info:
        segnext.create_model(checkpoint=tmp_path / "hostile.pkl")
    message = str(info.value)
    assert "Refused" in message and "io.open" in message and "hostile.pkl" in message
    assert not marker.exists(), "loading ran pickled code"
    pickle.loads((tmp_path / "hostile.pkl").read_bytes()[:-28])  # the payload is live: plain pickle runs it
    assert marker.exists()


def test_corrupt_and_truncated_files_are_named(tmp_path, official):
    write_like_jseg(tmp_path / "good.pkl", {"model": _as_jittor_state(official["state_dict"])})
    data = (tmp_path / "good.pkl").read_bytes()
    (tmp_path / "flipped.pkl").write_bytes(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])
    with pytest.raises(CheckpointError, match=r"flipped\.pkl.*checksum does not match"):
        segnext.create_model(checkpoint=tmp_path / "flipped.pkl")
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pkl.*truncated or corrupt"):
        segnext.create_model(checkpoint=tmp_path / "cut.pkl")
