"""`segnext models` and `segnext convert`, run in-process through segnext.cli.main.main."""

from __future__ import annotations

import json

import pytest
import torch

import segnext
from segnext.cli.main import main

COUNTS = {  # the paper's Table 2 and the official code: total / backbone / head (150 classes), total (19 classes)
    "segnext_t": ("4,263,414", "3,903,584", "359,830", 4_229_747),
    "segnext_s": ("13,932,886", "13,450,176", "482,710", 13_899_219),
    "segnext_b": ("27,636,310", "26,277,824", "1,358,486", 27_569_107),
    "segnext_l": ("48,926,550", "44,636,864", "4,289,686", 48_792_275),
}


def test_models_table(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("segnext_")}
    assert list(rows) == list(COUNTS)
    for name, (total, backbone, head, _) in COUNTS.items():
        assert rows[name][1:4] == [total, backbone, head], rows[name]
    assert "150 classes" in out


def test_models_json_19_classes(capsys):
    assert main(["models", "--num-classes", "19", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(COUNTS)
    for row in rows:
        assert row["params"] == COUNTS[row["name"]][3]
        assert row["backbone_params"] == int(COUNTS[row["name"]][1].replace(",", ""))
        assert row["params"] == row["backbone_params"] + row["head_params"]


def test_convert_official_checkpoint(tmp_path, capsys, checkpoint_path, io_data):
    dst = tmp_path / "segnext_t_ade"
    assert main(["convert", str(checkpoint_path), str(dst)]) == 0
    out = capsys.readouterr().out
    assert "segnext_t" in out and "4,263,414" in out and "150" in out and "wall" in out
    assert (dst / "config.json").is_file() and (dst / "model.safetensors").is_file()
    converted = segnext.create_model(checkpoint=dst).eval()
    official = segnext.create_model("segnext_t", 150, checkpoint=checkpoint_path).eval()
    assert converted.config.class_names[0] == "wall"
    # The folder says how it is tested: here ADE20K's official settings (the source carries none).
    settings = converted.config.test_settings
    assert settings["img_scale"] == [2048, 512] and settings["size_divisor"] == 32 and settings["mode"] == "whole"
    assert "(the official settings of its dataset)" in out and (dst / "README.md").is_file()
    converted.config.test_settings = None
    assert converted.config == official.config
    x = io_data["odd_input"]
    with torch.no_grad():
        assert torch.equal(converted(x), official(x))
        logits = converted.forward_logits(x, nmf_bases=io_data["odd_bases"])
    torch.testing.assert_close(logits, io_data["odd_decode_logits"], atol=1e-4, rtol=1e-4)


def test_convert_of_a_model_folder_keeps_what_it_trained_on(tmp_path, checkpoint_path):
    from segnext.models import recorded_training_data

    trained_on = {"dataset": "camvid", "split": "train", "groups": {"0001TP": 62, "0016E5": 204}}
    folder = segnext.save_model(segnext.create_model(checkpoint=checkpoint_path), tmp_path / "model",
                                training_data=trained_on)
    assert main(["convert", str(folder), str(tmp_path / "half"), "--half"]) == 0
    assert recorded_training_data(str(tmp_path / "half")) == trained_on
    assert main(["convert", str(checkpoint_path), str(tmp_path / "official")]) == 0
    assert recorded_training_data(str(tmp_path / "official")) is None  # an official file says nothing of it


def test_convert_1x_fp16_copy_reports_notes(tmp_path, capsys, checkpoint_path):
    official = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    state = {k.replace(".mlp.dwconv.dwconv.", ".mlp.dwconv."): (v.half() if v.is_floating_point() else v)
             for k, v in official["state_dict"].items()}
    torch.save({"state_dict": state}, tmp_path / "v1_half.pth")
    assert main(["convert", str(tmp_path / "v1_half.pth"), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "1.x" in out and "half precision" in out and "no class names" in out
    assert "whole, img_scale (2048, 512), sides rounded up to a multiple of 32 (the official settings" in out
    assert segnext.create_model(checkpoint=tmp_path / "out").num_classes == 150


def test_convert_backbone_file_fails_clearly(tmp_path, capsys, backbone_path):
    dst = tmp_path / "out"
    assert main(["convert", str(backbone_path), str(dst)]) == 1
    captured = capsys.readouterr()
    assert "segnext convert: error:" in captured.err and "only an encoder" in captured.err
    assert "Traceback" not in captured.err
    assert not dst.exists()


def test_info_says_what_a_checkpoint_holds_and_writes_nothing(tmp_path, capsys, checkpoint_path):
    import json

    assert main(["info", str(checkpoint_path)]) == 0
    out = capsys.readouterr().out
    for line in ("  variant      segnext_t (4,263,414 parameters)", "  classes      150 (wall, building, sky, floor, "
                 "tree, ...)", "  test         whole, img_scale (2048, 512), sides rounded up to a multiple of 32 "
                 "(the official settings of its dataset)", "  nmf seed     0", "format)"):
        assert line in out, out
    assert "trained on" not in out and "scores" not in out and "temperature" not in out and "normalised" not in out
    model = segnext.create_model("segnext_t", 3, class_names=["a", "b", "c"], logit_temperature=0.8, in_channels=4,
                                 attention_gating=False)
    model.config.test_settings = segnext.TestConfig(img_scale=None, mean=(100, 110, 120, 1830.5),
                                                    std=(50, 55, 60, 612.25)).to_dict()
    folder = segnext.save_model(model, tmp_path / "model", training_data={"dataset": "folder", "split": "train",
                                                                          "groups": {"x": 3, "y": 2}},
                                metrics={"mIoU": 50.0, "aAcc": 80.0, "mAcc": 60.0, "dataset": "folder", "split": "val",
                                         "num_images": 7})
    before = sorted(p.name for p in folder.iterdir())
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    for line in ("  architecture not the published one: `in_channels` 4 (the variant's: 3), `attention_gating` false",
                 "  classes      3 (a, b, c)", "  input        4 channels (not RGB)",
                 "  normalised   (pixel - mean) / std, mean [100, 110, 120, 1830.5], std [50, 55, 60, 612.25]",
                 "  temperature  0.800", "  trained on   folder train (5 images in 2 groups)",
                 "  scores       mIoU 50.00, aAcc 80.00, mAcc 60.00 on folder val (7 images)"):
        assert line in out, out
    assert sorted(p.name for p in folder.iterdir()) == before
    assert main(["info", str(folder), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["in_channels"] == 4 and facts["logit_temperature"] == 0.8 and facts["metrics"]["mIoU"] == 50.0
    assert facts["training_data"]["groups"] == {"x": 3, "y": 2} and facts["format"] == "project"
    assert main(["info", str(tmp_path / "nope.pth")]) == 1
    assert "Checkpoint " in capsys.readouterr().err
    assert main(["info", "camvid"]) == 0  # published weights by name: the one in the package
    assert "  trained on   camvid train (367 images in 3 groups)" in capsys.readouterr().out


def test_convert_missing_source(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nope.pth"), str(tmp_path / "out")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "models" in capsys.readouterr().out


def test_unknown_command_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["modelz"])
    assert info.value.code == 2
