"""Published weights by name: the table, the cache, and downloads from a local HTTP server
(good file, hash mismatch, truncated transfer, server down, killed download). Nothing here
reaches the internet: SEGNEXT_WEIGHTS_URL points at 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import segnext
from segnext.models import download
from segnext.models.download import DownloadError, fetch
from segnext.models.pretrained import PRETRAINED, PretrainedWeights, pretrained_weights

REPO_ROOT = Path(__file__).resolve().parents[2]


class _Server:
    """Serves files from a folder on 127.0.0.1; `mode` decides how a file is sent."""

    def __init__(self, root: Path):
        self.root, self.mode, self.requests = root, "whole", []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if server.mode == "whole":
                    self.wfile.write(data)
                elif server.mode == "truncated":  # promise the whole file, send half, hang up
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif server.mode == "stall":  # send a little, then keep the connection open
                    self.wfile.write(data[:1000])
                    self.wfile.flush()
                    time.sleep(30)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGNEXT_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "checkpoints"


@pytest.fixture()
def server(tmp_path, monkeypatch):
    served = _Server(tmp_path / "served")
    monkeypatch.setenv("SEGNEXT_WEIGHTS_URL", served.url)
    yield served
    served.close()


def _publish(server: _Server, weights, source: Path) -> None:
    target = server.root / weights.path
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)


def _with_hash_of(monkeypatch, name: str, path: Path):
    """Make the table entry `name` describe `path` (its SHA-256 prefix), as if it were the published file."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    weights = dataclasses.replace(PRETRAINED[name], sha256_prefix=digest[:8])
    monkeypatch.setitem(PRETRAINED, name, weights)
    return weights


def _leftovers(cache: Path):
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


def _dead_url() -> str:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ------------------------------------------------------------------------------------------------ table


def test_table_holds_the_published_files():
    downloaded = [weights for weights in PRETRAINED.values() if not weights.bundled]  # the others ship inside
    assert [weights.name for weights in downloaded] == [f"segnext_{v}.{tag}" for tag in ("ade20k", "imagenet")
                                                         for v in "tsbl"]
    assert segnext.list_pretrained() == list(PRETRAINED)
    for weights in downloaded:
        assert weights.file_name.endswith(f"-{weights.sha256_prefix}.pth") and len(weights.sha256_prefix) == 8
    t = pretrained_weights("segnext_t", "ade20k")
    assert download.url_of(t) == ("https://download.openmmlab.com/mmsegmentation/v0.5/segnext/"
                                  "segnext_mscan-t_1x16_512x512_adamw_160k_ade20k/"
                                  "segnext_mscan-t_1x16_512x512_adamw_160k_ade20k_20230210_140244-05bd8466.pth")
    assert (t.num_classes, t.miou, t.miou_ms_flip) == (150, 41.5, 42.59)
    assert [PRETRAINED[f"segnext_{v}.ade20k"].miou for v in "sbl"] == [44.16, 48.03, 50.99]
    assert download.url_of(PRETRAINED["segnext_l.imagenet"]).endswith("/pretrain/segnext/mscan_l_20230227-cef260d4.pth")
    assert PRETRAINED["segnext_b.imagenet"].encoder_only


def test_unknown_names_are_errors_with_suggestions():
    with pytest.raises(ValueError, match=r"No published weights 'ade20'.*Did you mean 'ade20k'"):
        segnext.create_model("segnext_t", pretrained="ade20")
    with pytest.raises(ValueError, match=r"'camvid' is published for segnext_t only. Available for segnext_s: ade20k, "
                                         r"imagenet \("):
        segnext.create_model("segnext_s", pretrained="camvid")
    with pytest.raises(ValueError, match="needs the model name"):
        segnext.create_model(pretrained="ade20k")
    with pytest.raises(ValueError, match="encoder only: give num_classes"):
        segnext.create_model("segnext_t", pretrained="imagenet")


# ------------------------------------------------------------------------------------------- downloads


def test_download_checks_the_hash_then_the_cache_needs_no_network(server, cache, checkpoint_path, monkeypatch):
    weights = _with_hash_of(monkeypatch, "segnext_t.ade20k", checkpoint_path)
    _publish(server, weights, checkpoint_path)
    model = segnext.create_model("segnext_t", pretrained="ade20k")
    assert server.requests == ["/" + weights.path]
    assert _leftovers(cache) == [weights.file_name]  # nothing else: no temporary file left
    reference = segnext.create_model(checkpoint=checkpoint_path)
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert model.config.class_names == reference.config.class_names
    monkeypatch.setenv("SEGNEXT_WEIGHTS_URL", _dead_url())  # the cached file is used: no request at all
    segnext.create_model("segnext_t", pretrained="ade20k")
    assert len(server.requests) == 1


def test_hash_mismatch_discards_the_file(server, cache, checkpoint_path):
    weights = PRETRAINED["segnext_t.ade20k"]  # the real prefix: the fixture file does not have it
    _publish(server, weights, checkpoint_path)
    with pytest.raises(DownloadError) as info:
        fetch(weights, progress=False)
    message = str(info.value)
    assert download.url_of(weights) in message and "SHA-256" in message and weights.sha256_prefix in message
    assert _leftovers(cache) == []


def test_truncated_transfer_leaves_no_file(server, cache, checkpoint_path, monkeypatch):
    weights = _with_hash_of(monkeypatch, "segnext_t.ade20k", checkpoint_path)
    _publish(server, weights, checkpoint_path)
    server.mode = "truncated"
    with pytest.raises(DownloadError, match="truncated|broke off") as info:
        fetch(weights, progress=False)
    assert download.url_of(weights) in str(info.value)
    assert _leftovers(cache) == []


def test_server_down_fails_fast_and_says_where_to_put_the_file(cache, monkeypatch):
    url = _dead_url()
    monkeypatch.setenv("SEGNEXT_WEIGHTS_URL", url)
    weights = PRETRAINED["segnext_s.imagenet"]
    start = time.perf_counter()
    with pytest.raises(DownloadError) as info:
        segnext.create_model("segnext_s", num_classes=19, pretrained="imagenet")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert f"{url}/{weights.path}" in message and str(cache / weights.file_name) in message
    assert "SEGNEXT_WEIGHTS_URL" in message
    assert _leftovers(cache) == []


def test_killed_download_leaves_nothing_that_looks_complete(server, cache, checkpoint_path, monkeypatch):
    weights = _with_hash_of(monkeypatch, "segnext_t.ade20k", checkpoint_path)
    _publish(server, weights, checkpoint_path)
    server.mode = "stall"
    code = (f"import dataclasses; from segnext.models.download import fetch; "
            f"from segnext.models.pretrained import PRETRAINED; "
            f"fetch(dataclasses.replace(PRETRAINED['segnext_t.ade20k'], sha256_prefix={weights.sha256_prefix!r}))")
    process = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not server.requests and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the first bytes are written
    process.kill()
    process.wait()
    assert server.requests, "the download never started"
    assert not (cache / weights.file_name).exists()
    leftovers = _leftovers(cache)
    assert all(name.startswith(".") for name in leftovers)  # at most a hidden temporary file
    # The next download removes that temporary once it is stale, and only then: a younger one may be
    # another process's download still under way.
    server.mode = "whole"
    killed = cache / f".{weights.file_name}.dead.tmp"
    killed.write_bytes(b"partial")
    running = cache / f".{weights.file_name}.live.tmp"
    running.write_bytes(b"partial")
    stale = time.time() - download.STALE_SECONDS - 60
    os.utime(killed, (stale, stale))
    for name in leftovers:
        os.utime(cache / name, (stale, stale))
    fetch(weights, progress=False)
    assert _leftovers(cache) == sorted([running.name, weights.file_name])


# ---------------------------------------------------------------------------------------------- the cache


def test_a_file_in_the_cache_is_used_as_it_is(cache, monkeypatch, backbone_path, checkpoint_path):
    monkeypatch.setenv("SEGNEXT_WEIGHTS_URL", _dead_url())
    weights = PRETRAINED["segnext_t.imagenet"]
    cache.mkdir(parents=True)
    shutil.copy(backbone_path, cache / weights.file_name)  # not the published bytes: no re-hash, no network
    model = segnext.create_model("segnext_t", num_classes=19, pretrained="imagenet")
    reference = segnext.create_model(checkpoint=checkpoint_path)
    for key, value in reference.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    assert model.num_classes == 19


def test_other_classes_reinitialise_only_the_classifier(cache, monkeypatch, checkpoint_path, caplog):
    monkeypatch.setenv("SEGNEXT_WEIGHTS_URL", _dead_url())
    cache.mkdir(parents=True)
    shutil.copy(checkpoint_path, cache / PRETRAINED["segnext_t.ade20k"].file_name)
    model, reports = segnext.create_model("segnext_t", num_classes=11, pretrained="ade20k", output_loading_info=True)
    reference = segnext.create_model(checkpoint=checkpoint_path).state_dict()
    state = model.state_dict()
    assert reports[0].reinitialised == ["decode_head.conv_seg.weight", "decode_head.conv_seg.bias"]
    assert state["decode_head.conv_seg.weight"].shape == (11, 256, 1, 1)
    for key, value in reference.items():
        if not key.startswith("decode_head.conv_seg."):
            assert torch.equal(state[key], value), key
    assert "re-initialised for 11 classes (the checkpoint has 150)" in reports[0].summary()
    assert model.config.class_names is None  # the ADE20K names do not fit 11 classes
    with caplog.at_level("WARNING", logger="segnext"):
        segnext.create_model("segnext_t", num_classes=11, pretrained="ade20k")
    assert "decode_head.conv_seg.weight" in caplog.text and "11 classes" in caplog.text


def test_command_lists_the_published_weights(cache, capsys):
    from segnext.cli.main import main

    assert main(["models", "--pretrained"]) == 0
    out = capsys.readouterr().out
    assert "segnext_b.ade20k" in out and "48.03" in out and "mscan_t_20230227-119e8c9f.pth" in out
    assert str(cache) in out
    assert ("trained on val too" in out) == any(w.miou is None and not w.encoder_only for w in PRETRAINED.values())


def test_a_model_trained_on_val_is_listed_without_a_val_score(bundled, capsys, monkeypatch):
    from segnext.cli.main import main

    monkeypatch.setitem(PRETRAINED, "segnext_t.camvid", dataclasses.replace(PRETRAINED["segnext_t.camvid"], miou=None))
    assert main(["models", "--pretrained"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("segnext_t.camvid"))
    assert row.split()[4:6] == ["-", "-"] and "('-': trained on val too" in out


@pytest.fixture()
def bundled(tmp_path, monkeypatch):
    """A model shipped in the package the way pretrained="camvid" will be: a float16 model folder below
    segnext/weights/, registered with the whole SHA-256 of its weights."""
    model = segnext.create_model("segnext_t", 11, class_names=[f"c{i}" for i in range(11)])
    model.config.test_settings = segnext.TestConfig(img_scale=None, scales=(1.5,), flip=True).to_dict()
    folder = segnext.save_model(model, tmp_path / "weights" / "segnext_t_camvid-test", half=True)
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    weights = PretrainedWeights("segnext_t", "camvid", folder.name, digest, num_classes=11, miou=60.0, bundled=True)
    monkeypatch.setattr(download, "bundled_dir", lambda: tmp_path / "weights")
    monkeypatch.setitem(PRETRAINED, weights.name, weights)
    monkeypatch.setenv("SEGNEXT_WEIGHTS_URL", "http://127.0.0.1:9/nothing")  # no network is used
    return model, folder


def test_bundled_weights_load_offline_by_every_name(bundled, tmp_path):
    model, folder = bundled
    expected = {k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    for loaded in (segnext.create_model("segnext_t", pretrained="camvid"),
                   segnext.create_model(checkpoint="camvid"), segnext.create_model(checkpoint="segnext_t.camvid"),
                   segnext.SegNeXt.from_pretrained("camvid")):  # Hugging Face's name for it
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())
        assert loaded.config.class_names[0] == "c0" and loaded.state_dict()["decode_head.conv_seg.weight"].dtype \
            == torch.float32
    segmenter = segnext.Segmenter.from_checkpoint("camvid", device="cpu")
    assert segmenter.test_config.scales == (1.5,) and segmenter.test_config.flip
    fine_tuned = segnext.create_model("segnext_t", num_classes=3, pretrained="camvid")  # a new classifier
    assert fine_tuned.num_classes == 3
    from segnext.cli.main import main

    image = tmp_path / "road.png"
    Image.fromarray(np.zeros((36, 48, 3), np.uint8)).save(image)
    assert main(["predict", "--checkpoint", "camvid", str(image), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    assert (tmp_path / "out" / "road.png").is_file()


def test_what_a_model_folder_says_it_trained_on_is_read_back_by_path_and_by_published_name(bundled, tmp_path):
    from segnext.models import recorded_training_data

    model, _ = bundled
    assert recorded_training_data("camvid") is None  # this stand-in records nothing
    trained_on = {"dataset": "camvid", "split": "train", "groups": {"0001TP": 62, "0016E5": 204}}
    folder = segnext.save_model(model, tmp_path / "weights" / "segnext_t_camvid-test", half=True,
                                training_data=trained_on)
    assert recorded_training_data(str(folder)) == trained_on
    assert recorded_training_data("camvid") == trained_on  # the published name of a bundled folder
    assert recorded_training_data("segnext_t.ade20k") is None  # a downloaded file: no model folder
    assert recorded_training_data(str(tmp_path / "absent")) is None


def test_a_damaged_bundled_file_is_refused(bundled):
    _, folder = bundled
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(segnext.CheckpointError, match="is not the file published as segnext_t.camvid.*Reinstall"):
        segnext.create_model("segnext_t", pretrained="camvid")
    (folder / "model.safetensors").unlink()
    with pytest.raises(segnext.CheckpointError, match="should ship with segnext"):
        segnext.create_model(checkpoint="camvid")


def test_a_folder_named_like_published_weights_says_how_to_get_them(bundled, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "camvid").mkdir()  # e.g. the dataset, in the working folder
    with pytest.raises(segnext.CheckpointError, match="camvid is not a segnext model folder.* pass 'segnext_t.camvid'"):
        segnext.create_model(checkpoint="camvid")
    assert segnext.create_model(checkpoint="segnext_t.camvid").num_classes == 11
    (tmp_path / "ade20k").mkdir()  # a tag of several variants: no hint to give
    with pytest.raises(segnext.CheckpointError, match="ade20k is not a segnext model folder"):
        segnext.create_model(checkpoint="ade20k")


def test_a_tag_of_several_variants_is_not_a_checkpoint_name():
    with pytest.raises(ValueError, match="several variants: segnext_t.ade20k, segnext_s.ade20k"):
        segnext.create_model(checkpoint="ade20k")
    with pytest.raises(FileNotFoundError):
        segnext.create_model(checkpoint="no-such-model")


SHIPPED = [weights for weights in PRETRAINED.values() if weights.bundled]


def model_classes(folder: Path) -> int:
    return len(json.loads((folder / "config.json").read_text())["id2label"])


@pytest.mark.parametrize("weights", SHIPPED or [None], ids=lambda weights: weights.name if weights else "none")
def test_every_shipped_model_is_the_published_file_and_segments_its_dataset(weights, shared_dir):
    """A model in segnext/weights: its file is the one the table names (whole SHA-256), its card and
    the table give the same val mIoU (the table none where the model trained on val), and on the first
    val images of its dataset it scores far above labelling every pixel with the most frequent class."""
    if weights is None:
        pytest.skip("no model ships in segnext/weights yet (the CamVid one is trained by "
                    "benchmarks/gpu/camvid_gpu.sh final and added by benchmarks/package_camvid.py --ship)")
    from segnext.data import build_dataset
    from segnext.evaluation import evaluate
    from segnext.inference import test_config_for

    folder = download.bundled_dir() / weights.path
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == weights.sha256_prefix
    metrics = json.loads((folder / "config.json").read_text())["metrics"]  # what its card reports
    table_miou = None if metrics.get("seen_in_training") else pytest.approx(metrics["mIoU"], abs=0.01)
    assert weights.miou == table_miou and weights.num_classes == model_classes(folder)
    model = segnext.create_model(weights.variant, pretrained=weights.tag)
    root = shared_dir / "datasets" / weights.tag
    if not root.is_dir():
        pytest.skip(f"{weights.tag} not found at {root}: set SEGNEXT_SHARED to the folder that holds "
                    f"datasets/{weights.tag}")
    results = evaluate(model, build_dataset(weights.tag, root, "val"), test_config_for(model), max_images=2)
    assert results["mIoU"] > results["majority_class_mIoU"] + 30, results


@pytest.mark.parametrize("weights", SHIPPED or [None], ids=lambda weights: weights.name if weights else "none")
def test_every_shipped_card_is_the_one_save_model_writes(weights):
    """The card beside a shipped file is what `save_model` writes from its config.json, so a card edited
    by hand cannot say something the folder's own metadata does not (or drift from newer cards)."""
    if weights is None:
        pytest.skip("no model ships in segnext/weights yet")
    from segnext.models.card import model_card

    folder = download.bundled_dir() / weights.path
    meta = json.loads((folder / "config.json").read_text())
    model = segnext.create_model(checkpoint=folder)
    expected = model_card(model.config, sum(p.numel() for p in model.parameters()), meta.get("source"),
                          meta.get("metrics"))
    assert (folder / "README.md").read_text() == expected
