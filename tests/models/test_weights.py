"""Checkpoint reading/writing: every supported format loads to the same model, every unsupported or
mismatching file fails with a CheckpointError that says what is wrong, and no pickled code runs."""

from __future__ import annotations

import json

import pytest
import torch

import segnext
from segnext import CheckpointError, read_checkpoint, save_model


@pytest.fixture(scope="module")
def official(checkpoint_path):
    return torch.load(checkpoint_path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def reference(checkpoint_path):
    return segnext.create_model("segnext_t", 150, checkpoint=checkpoint_path).eval()


@pytest.fixture(scope="module")
def probe(io_data):
    return io_data["odd_input"], io_data["odd_bases"]


def _logits(model, probe):
    x, bases = probe
    with torch.no_grad():
        return model.eval()(x, nmf_bases=bases)


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# ---------------------------------------------------------------------------------------------- formats


def test_official_0x_file(checkpoint_path, official, reference, io_data):
    loaded = read_checkpoint(checkpoint_path)
    assert loaded.kind == "segmentor" and len(loaded.state_dict) == 550
    state = reference.state_dict()
    for key, value in official["state_dict"].items():
        assert torch.equal(state[key], value), key
    assert state["backbone.patch_embed1.proj.1.num_batches_tracked"].item() == 160000
    c = reference.config
    assert c.variant == "segnext_t" and c.num_classes == 150
    assert c.class_names == list(official["meta"]["CLASSES"]) and c.class_names[:2] == ["wall", "building"]
    assert c.palette == [list(p) for p in official["meta"]["PALETTE"]]
    with torch.no_grad():
        logits = reference.forward_logits(io_data["odd_input"], nmf_bases=io_data["odd_bases"])
    torch.testing.assert_close(logits, io_data["odd_decode_logits"], atol=1e-4, rtol=1e-4)


def test_name_and_classes_read_from_official_file(checkpoint_path, reference):
    model = segnext.create_model(checkpoint=checkpoint_path)
    assert model.config.variant == "segnext_t" and model.num_classes == 150
    _same_weights(model, reference)


def test_mmseg_1x_naming(tmp_path, official, reference, probe):
    renamed = {k.replace(".mlp.dwconv.dwconv.", ".mlp.dwconv."): v for k, v in official["state_dict"].items()}
    assert sum(".mlp.dwconv.dwconv." in k for k in official["state_dict"]) == 26
    assert not any(".mlp.dwconv.dwconv." in k for k in renamed)
    meta = {"dataset_meta": {"classes": official["meta"]["CLASSES"], "palette": official["meta"]["PALETTE"]}}
    torch.save({"meta": meta, "state_dict": renamed}, tmp_path / "v1.pth")
    loaded = read_checkpoint(tmp_path / "v1.pth")
    assert any("1.x" in note for note in loaded.notes)
    model = segnext.create_model("segnext_t", 150, checkpoint=tmp_path / "v1.pth")
    _same_weights(model, reference)
    assert model.config.class_names == reference.config.class_names
    assert torch.equal(_logits(model, probe), _logits(reference, probe))


def test_fp16_copy(tmp_path, official, reference, probe):
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in official["state_dict"].items()}
    torch.save({"meta": official["meta"], "state_dict": half}, tmp_path / "half.pth")
    model = segnext.create_model("segnext_t", 150, checkpoint=tmp_path / "half.pth")
    state = model.state_dict()
    for key, value in half.items():
        assert state[key].dtype == (torch.float32 if value.is_floating_point() else value.dtype), key
        assert torch.equal(state[key], value.float() if value.is_floating_point() else value), key
    assert all(p.dtype == torch.float32 for p in model.parameters())
    # fp16 rounding of the weights moves the logits only a little.
    assert (_logits(model, probe) - _logits(reference, probe)).abs().max() < 0.05


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_a_state_dict_saved_from_a_wrapped_model(tmp_path, official, reference, prefix):
    """DistributedDataParallel / DataParallel prefix every key with "module.", torch.compile with "_orig_mod."."""
    prefixed = {prefix + k: v for k, v in official["state_dict"].items()}
    torch.save({"state_dict": prefixed}, tmp_path / "wrapped.pth")
    model = segnext.create_model("segnext_t", 150, checkpoint=tmp_path / "wrapped.pth")
    _same_weights(model, reference)


def test_bare_state_dict(tmp_path, official, reference):
    torch.save(official["state_dict"], tmp_path / "bare.pth")
    _same_weights(segnext.create_model("segnext_t", 150, checkpoint=tmp_path / "bare.pth"), reference)


def test_project_format_round_trip(tmp_path, reference, probe):
    out = save_model(reference, tmp_path / "ckpt")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    meta = json.loads((out / "config.json").read_text())
    assert meta["format"] == "segnext" and meta["config"]["variant"] == "segnext_t"
    model = segnext.create_model(checkpoint=tmp_path / "ckpt")  # no name, no num_classes
    assert model.config == reference.config
    assert model.config.class_names == reference.config.class_names and len(model.config.palette) == 150
    _same_weights(model, reference)
    x, _ = probe
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reference.eval()(x))
    # Also through the safetensors file path and save_pretrained.
    assert segnext.create_model(checkpoint=out / "model.safetensors").config.variant == "segnext_t"
    model.save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


def test_project_format_with_overrides_and_mismatch(tmp_path, reference):
    save_model(reference, tmp_path / "ckpt")
    model = segnext.create_model(checkpoint=tmp_path / "ckpt", drop_path_rate=0.0)
    assert model.config.drop_path_rate == 0.0
    with pytest.raises(CheckpointError, match=r"150 classes but num_classes=19"):
        segnext.create_model(checkpoint=tmp_path / "ckpt", num_classes=19)
    with pytest.raises(CheckpointError, match=r"holds segnext_t, not segnext_b"):
        segnext.create_model("segnext_b", checkpoint=tmp_path / "ckpt")


def test_backbone_checkpoint_accepts_a_full_segmentation_file(checkpoint_path, reference):
    model = segnext.create_model("segnext_t", 19, backbone_checkpoint=checkpoint_path)
    for key, value in reference.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


# ----------------------------------------------------------------------------------------------- errors


def test_wrong_variant(checkpoint_path):
    with pytest.raises(CheckpointError) as info:
        segnext.create_model("segnext_s", 150, checkpoint=checkpoint_path)
    message = str(info.value)
    assert "different variant" in message and "segnext_t" in message and "segnext_s" in message
    assert "Create the model as segnext_t" in message


def test_wrong_num_classes(checkpoint_path):
    with pytest.raises(CheckpointError) as info:
        segnext.create_model("segnext_t", 19, checkpoint=checkpoint_path)
    message = str(info.value)
    assert "trained for 150 classes but num_classes=19 was asked" in message
    assert "ignore_mismatched_sizes=True" in message and "decode_head.conv_seg.weight" in message


@pytest.mark.parametrize("kind,keys,other", [
    ("missing", ["decode_head.align.gn.weight", "backbone.block2.1.norm1.running_mean"], "unexpected"),
    ("unexpected", ["decode_head.extra.weight", "backbone.block1.0.gamma"], "missing"),
])
def test_missing_and_unexpected_keys_are_listed(tmp_path, official, kind, keys, other):
    state = dict(official["state_dict"])
    for key in keys:
        if kind == "missing":
            del state[key]
        else:
            state[key] = torch.zeros(3)
    torch.save({"state_dict": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as info:
        segnext.create_model("segnext_t", 150, checkpoint=tmp_path / "bad.pth")
    message = str(info.value)
    assert f"2 {kind} keys" in message and all(key in message for key in keys) and f"{other} keys" not in message


def test_failed_load_changes_nothing(tmp_path, official):
    state = dict(official["state_dict"])
    del state["decode_head.conv_seg.bias"]
    torch.save({"state_dict": state}, tmp_path / "partial.pth")
    from segnext.models.loading import load_into

    torch.manual_seed(0)
    model = segnext.create_model("segnext_t", 150)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError):
        load_into(model, read_checkpoint(tmp_path / "partial.pth"))
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


class _Payload:
    """Unpickling this creates the file `marker` (a stand-in for arbitrary code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("zip_format", [True, False])
def test_hostile_pickle_is_refused_without_running(tmp_path, official, zip_format):
    marker = tmp_path / "PWNED"
    path = tmp_path / "hostile.pth"
    torch.save({"state_dict": official["state_dict"], "meta": {"x": _Payload(marker)}}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError) as info:
        segnext.create_model("segnext_t", 150, checkpoint=path)
    assert not marker.exists(), "loading ran pickled code"
    message = str(info.value)
    assert "Refused" in message and "weights_only=True" in message and str(path) in message
    with pytest.raises(CheckpointError, match="Refused"):
        read_checkpoint(path)
    assert not marker.exists()
    # The payload is live: an unsafe load does run it (so the assertion above can fail).
    torch.load(path, map_location="cpu", weights_only=False)
    assert marker.exists()


def test_truncated_file(tmp_path, checkpoint_path):
    data = checkpoint_path.read_bytes()
    (tmp_path / "half.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        segnext.create_model("segnext_t", 150, checkpoint=tmp_path / "half.pth")
    message = str(info.value)
    assert "truncated" in message and "half.pth" in message
    assert "Refused" not in message


@pytest.mark.parametrize("content", [b"hello, this is not a checkpoint\n" * 10,
                                     b"\x89PNG\r\n\x1a\n" + bytes(range(256)), b""])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "file.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        segnext.create_model("segnext_t", 150, checkpoint=path)
    message = str(info.value)
    assert "not a PyTorch checkpoint" in message and str(path) in message
    assert "Refused" not in message  # not mistaken for a hostile pickle


def test_pickle_without_tensors(tmp_path):
    torch.save({"state_dict": {"a": 1}}, tmp_path / "none.pth")
    with pytest.raises(CheckpointError, match="holds no tensors"):
        segnext.create_model("segnext_t", 150, checkpoint=tmp_path / "none.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="holds a list"):
        segnext.create_model("segnext_t", 150, checkpoint=tmp_path / "list.pth")


def test_backbone_file_as_checkpoint(backbone_path):
    for kwargs in ({"name": "segnext_t", "num_classes": 150}, {}):
        with pytest.raises(CheckpointError) as info:
            segnext.create_model(checkpoint=backbone_path, **kwargs)
        message = str(info.value)
        assert "only an encoder" in message and "backbone_checkpoint=" in message


def test_backbone_file_for_wrong_variant(backbone_path):
    with pytest.raises(CheckpointError) as info:
        segnext.create_model("segnext_s", 150, backbone_checkpoint=backbone_path)
    message = str(info.value)
    assert "different variant" in message and "segnext_t" in message


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        segnext.create_model("segnext_t", 150, checkpoint=tmp_path / "nope.pth")


def test_incomplete_project_directory(tmp_path, reference):
    save_model(reference, tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        segnext.create_model(checkpoint=tmp_path / "ckpt")


def test_mmengine_training_log_beside_the_weights_is_skipped(tmp_path, official, reference, monkeypatch):
    """MMSegmentation 1.x files keep MMEngine's message hub (HistoryBuffer objects of NumPy arrays) next
    to the weights; they load without that class being importable, and nothing else is admitted."""
    import sys
    import types

    import numpy as np

    module = types.ModuleType("mmengine.logging.history_buffer")

    class HistoryBuffer:
        def __init__(self):
            self._log_history, self._count_history, self.max_length = np.ones(3), np.ones(3, np.int64), 1000000

    HistoryBuffer.__module__, HistoryBuffer.__qualname__ = module.__name__, "HistoryBuffer"
    module.HistoryBuffer = HistoryBuffer
    for name in ("mmengine", "mmengine.logging"):  # pickle imports the parents of the class's module
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    renamed = {k.replace(".mlp.dwconv.dwconv.", ".mlp.dwconv."): v for k, v in official["state_dict"].items()}
    meta = {"dataset_meta": {"classes": official["meta"]["CLASSES"], "palette": official["meta"]["PALETTE"]},
            "mmengine_version": "0.7.0", "iter": 160000}
    hub = {"log_scalars": {"train/loss": HistoryBuffer()}, "runtime_info": {"iter": 160000, "seed": 0}}
    torch.save({"meta": meta, "state_dict": renamed, "message_hub": hub, "param_schedulers": [{"eta_min": 0.0}]},
               tmp_path / "mmseg1x.pth")
    monkeypatch.delitem(sys.modules, "mmengine.logging.history_buffer")  # the class cannot be imported now
    if not hasattr(torch.serialization, "safe_globals"):  # PyTorch before 2.5 cannot admit it safely
        with pytest.raises(CheckpointError, match="Refused.*MMEngine's training log.*PyTorch 2.5 or newer"):
            segnext.create_model(checkpoint=tmp_path / "mmseg1x.pth")
        return
    model = segnext.create_model(checkpoint=tmp_path / "mmseg1x.pth")
    _same_weights(model, reference)
    assert model.config.class_names == reference.config.class_names
    # Any other class is still refused.
    torch.save({"state_dict": renamed, "message_hub": {"x": _Payload(tmp_path / "PWNED")}}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="Refused"):
        segnext.create_model(checkpoint=tmp_path / "bad.pth")
    assert not (tmp_path / "PWNED").exists()
