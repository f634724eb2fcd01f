"""Fine-tuning on new classes: `ignore_mismatched_sizes`, `reset_classifier`, the encoder of a
whole checkpoint, and what the loading reports say."""

from __future__ import annotations

import pytest
import torch

import segnext
from segnext import CheckpointError, save_model

CLASSIFIER = ("decode_head.conv_seg.weight", "decode_head.conv_seg.bias")


@pytest.fixture(scope="module")
def reference(checkpoint_path):
    return segnext.create_model(checkpoint=checkpoint_path)


@pytest.fixture(scope="module")
def folder(reference, tmp_path_factory):
    return save_model(reference, tmp_path_factory.mktemp("folder") / "model")


def _same_except_classifier(model, reference):
    _same_except(model, reference, *CLASSIFIER)


def _same_except(model, reference, *keys):
    state = model.state_dict()
    for key, value in reference.state_dict().items():
        if key not in keys:
            assert torch.equal(state[key], value), key


@pytest.mark.parametrize("source", ["file", "folder"])
def test_new_classes_need_the_flag_and_then_keep_everything_but_the_classifier(source, checkpoint_path, folder,
                                                                               reference):
    checkpoint = checkpoint_path if source == "file" else folder
    with pytest.raises(CheckpointError) as info:
        segnext.create_model(checkpoint=checkpoint, num_classes=11)
    message = str(info.value)
    assert "trained for 150 classes but num_classes=11" in message and "ignore_mismatched_sizes=True" in message
    names = [f"c{i}" for i in range(11)]
    model, reports = segnext.create_model(checkpoint=checkpoint, num_classes=11, ignore_mismatched_sizes=True,
                                          class_names=names, output_loading_info=True)
    assert model.num_classes == 11 and model.config.class_names == names and model.config.palette is None
    assert model.decode_head.conv_seg.weight.shape == (11, 256, 1, 1)
    _same_except_classifier(model, reference)
    report = reports[0]
    assert report.reinitialised == list(CLASSIFIER) and report.new == list(CLASSIFIER)
    assert len(report.loaded) == len(reference.state_dict()) - 2
    summary = report.summary()
    assert f"loaded {len(report.loaded)} of the model's {len(report.loaded) + 2} tensors" in summary
    assert "re-initialised for 11 classes (the checkpoint has 150)" in summary
    # The new classifier is drawn as the official one: N(0, 0.01), zero bias.
    assert model.decode_head.conv_seg.bias.abs().max() == 0 and 0.005 < model.decode_head.conv_seg.weight.std() < 0.02
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 11, 64, 64)


def test_classes_the_checkpoint_names_too_start_from_its_classifier_rows(checkpoint_path, reference):
    ade = [name.strip() for name in reference.config.class_names]
    names = ["Car", "a new class", " sky", "person"]  # matched with case and spacing aside
    model, [report] = segnext.create_model(checkpoint=checkpoint_path, num_classes=4, ignore_mismatched_sizes=True,
                                           class_names=names, output_loading_info=True)
    weight, bias = model.decode_head.conv_seg.weight, model.decode_head.conv_seg.bias
    trained_weight, trained_bias = reference.decode_head.conv_seg.weight, reference.decode_head.conv_seg.bias
    for row, name in ((0, "car"), (2, "sky"), (3, "person")):
        assert torch.equal(weight[row], trained_weight[ade.index(name)]), name
        assert torch.equal(bias[row], trained_bias[ade.index(name)]), name
    assert bias[1] == 0 and 0.003 < weight[1].std() < 0.02  # the new class: the official initialisation
    assert report.kept_classes == ["Car", " sky", "person"] and report.reinitialised == list(CLASSIFIER)
    assert "except the rows of the 3 classes the checkpoint has too, copied from it: Car,  sky, person" in \
        report.summary()
    plain, [plain_report] = segnext.create_model(checkpoint=checkpoint_path, num_classes=4, class_names=names,
                                                 ignore_mismatched_sizes=True, match_class_names=False,
                                                 output_loading_info=True)
    assert plain_report.kept_classes == [] and plain.decode_head.conv_seg.bias.abs().max() == 0
    unnamed, [unnamed_report] = segnext.create_model(checkpoint=checkpoint_path, num_classes=4,
                                                     ignore_mismatched_sizes=True, output_loading_info=True)
    assert unnamed_report.kept_classes == []  # no class names given: nothing to match


@pytest.mark.parametrize("flag", [True, False])
def test_the_same_classes_in_another_order_get_their_own_rows(checkpoint_path, reference, flag):
    """A dataset that lists the checkpoint's classes in its own order: each class predicts with its
    own row from the first step (positional loading would give "wall" the row of "flag")."""
    names = list(reference.config.class_names)
    order = names[::-1]
    model, [report] = segnext.create_model(checkpoint=checkpoint_path, num_classes=150, class_names=order,
                                           ignore_mismatched_sizes=flag, output_loading_info=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        logits, expected = model.eval()(x), reference.eval()(x)
    assert torch.allclose(logits, expected.flip(1), atol=1e-5)  # class i of the model is class 149 - i of the file
    _same_except_classifier(model, reference)
    assert report.moved_classes == order and report.new_classes == [] and report.reinitialised == []
    assert "classifier rows put in the model's class order by name (150 classes from another index" in report.summary()


def test_a_class_renamed_in_place_keeps_its_row_and_a_moved_one_leaves_a_new_class_a_fresh_row(checkpoint_path,
                                                                                                reference, caplog):
    names = list(reference.config.class_names)
    renamed = ["partition"] + names[1:]  # "wall" renamed in place
    model, [report] = segnext.create_model(checkpoint=checkpoint_path, class_names=renamed, output_loading_info=True)
    assert torch.equal(model.decode_head.conv_seg.weight, reference.decode_head.conv_seg.weight)
    assert report.renamed_classes == ["partition (wall)"] and report.moved_classes == report.new_classes == []
    assert "classifier rows kept at their index for 1 class that the checkpoint names otherwise: partition (wall)" \
        in report.summary()
    swapped = [names[1], "a new class"] + names[2:]  # "building" moved to row 0, "wall" gone
    with caplog.at_level("WARNING", logger="segnext"):
        model = segnext.create_model(checkpoint=checkpoint_path, class_names=swapped)
    weight, bias = model.decode_head.conv_seg.weight, model.decode_head.conv_seg.bias
    assert torch.equal(weight[0], reference.decode_head.conv_seg.weight[1])
    assert bias[1] == 0 and 0.003 < weight[1].std() < 0.02  # the official initialisation
    assert torch.equal(weight[2:], reference.decode_head.conv_seg.weight[2:])
    assert "Re-initialised the classifier rows of a new class" in caplog.text
    unnamed = segnext.create_model(checkpoint=checkpoint_path, class_names=list("x" * 150), match_class_names=False)
    assert torch.equal(unnamed.decode_head.conv_seg.weight, reference.decode_head.conv_seg.weight)


def test_same_classes_with_the_flag_load_everything(checkpoint_path, reference):
    model, reports = segnext.create_model(checkpoint=checkpoint_path, num_classes=150, ignore_mismatched_sizes=True,
                                          output_loading_info=True)
    assert reports[0].new == [] and reports[0].reinitialised == []
    _same_except_classifier(model, reference)
    assert torch.equal(model.decode_head.conv_seg.weight, reference.decode_head.conv_seg.weight)


def test_other_mismatches_stay_errors_with_the_flag(checkpoint_path):
    with pytest.raises(CheckpointError, match="different variant.*Create the model as segnext_t"):
        segnext.create_model("segnext_s", checkpoint=checkpoint_path, num_classes=11, ignore_mismatched_sizes=True)


def test_reset_classifier(reference):
    model = segnext.create_model("segnext_t", 150)
    model.load_state_dict(reference.state_dict())
    model.reset_classifier(5, class_names=list("abcde"))
    assert model.num_classes == 5 == model.config.num_classes and model.config.class_names == list("abcde")
    _same_except_classifier(model, reference)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 48)).shape == (1, 5, 32, 48)


def test_backbone_checkpoint_takes_the_encoder_of_a_model_folder(folder, reference):
    """A whole checkpoint as backbone_checkpoint= (the advice that used to go in a circle)."""
    model, reports = segnext.create_model("segnext_t", 3, backbone_checkpoint=folder, output_loading_info=True)
    for key, value in reference.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    assert all(name.startswith("decode_head.") for name in reports[0].new) and len(reports[0].new) == 13
    assert "the decoder (13 tensors, decode_head.*)" in reports[0].summary()


def test_nothing_that_matches_is_refused(tmp_path):
    torch.save({"state_dict": {"encoder.layer1.weight": torch.zeros(3), "classifier.bias": torch.zeros(2)}},
               tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="None of its 2 tensors has a name the model knows"):
        segnext.create_model("segnext_t", 19, backbone_checkpoint=tmp_path / "other.pth")


def test_checkpoint_and_backbone_checkpoint_together_are_refused(checkpoint_path, backbone_path):
    with pytest.raises(ValueError, match="not both"):
        segnext.create_model(checkpoint=checkpoint_path, backbone_checkpoint=backbone_path)


def test_a_calibrated_temperature_stays_with_its_classifier_only(reference, tmp_path):
    """`segnext calibrate`'s logit_temperature belongs to the classifier it was fitted to: loading the
    same classes keeps it, a new classifier (other classes, reset_classifier) starts at 1."""
    calibrated = segnext.create_model("segnext_t", 150)
    calibrated.load_state_dict(reference.state_dict())
    calibrated.config.logit_temperature = 0.8
    path = save_model(calibrated, tmp_path / "calibrated")
    assert segnext.create_model(checkpoint=path).config.logit_temperature == 0.8
    tuned = segnext.create_model(checkpoint=path, num_classes=5, ignore_mismatched_sizes=True)
    assert tuned.config.logit_temperature == 1.0
    assert segnext.create_model(checkpoint=path).reset_classifier(3).config.logit_temperature == 1.0


@pytest.mark.parametrize("channels", [1, 4, 6])
def test_rgb_weights_load_into_a_model_of_other_input_channels(reference, checkpoint_path, channels):
    """in_channels: the stem's RGB weights summed (1 channel) or repeated and scaled (more), reported;
    a grey image then gives what its RGB copy gave, and so does an RGB image repeated over 6 channels."""
    model, reports = segnext.create_model(checkpoint=checkpoint_path, in_channels=channels, output_loading_info=True)
    stem = "backbone.patch_embed1.proj.0.weight"
    assert model.state_dict()[stem].shape[1] == channels and model.config.in_channels == channels
    _same_except(model, reference, stem)
    how = "summed" if channels == 1 else f"repeated, scaled by 3/{channels}"
    assert f"the first convolution's weights for 3 input channels adapted to {channels} ({how})" in reports[0].summary()
    images = torch.randn(1, 3, 32, 48)
    model.eval()
    with torch.no_grad():
        if channels == 1:
            grey = images[:, :1]
            torch.testing.assert_close(model(grey), reference(grey.expand(-1, 3, -1, -1)), atol=1e-4, rtol=1e-4)
        elif channels == 6:
            torch.testing.assert_close(model(torch.cat([images, images], 1)), reference(images), atol=1e-4, rtol=1e-4)
        with pytest.raises(ValueError, match=f"this SegNeXt takes a batch of normalised images of {channels} channels"):
            model(torch.randn(1, channels + 1, 32, 48))


def test_an_imagenet_encoder_loads_into_a_model_of_other_input_channels(backbone_path):
    model, reports = segnext.create_model("segnext_t", 5, backbone_checkpoint=backbone_path, in_channels=4,
                                          output_loading_info=True)
    rgb = segnext.create_model("segnext_t", 5, backbone_checkpoint=backbone_path)
    stem = "backbone.patch_embed1.proj.0.weight"
    torch.testing.assert_close(model.state_dict()[stem], rgb.state_dict()[stem][:, [0, 1, 2, 0]] * 0.75)
    assert "adapted to 4 (repeated, scaled by 3/4)" in reports[0].summary()


def test_a_model_of_other_input_channels_saves_and_loads_as_it_is(tmp_path):
    model = segnext.create_model("segnext_t", 3, in_channels=4)
    folder = save_model(model, tmp_path / "rgbn")
    again, reports = segnext.create_model(checkpoint=folder, output_loading_info=True)
    assert again.config.in_channels == 4 and "adapted" not in reports[0].summary()
    torch.save(model.state_dict(), tmp_path / "plain.pth")  # weights alone: the channels read off the stem
    assert segnext.create_model(checkpoint=tmp_path / "plain.pth").config.in_channels == 4
    with pytest.raises(CheckpointError, match="patch_embed1.proj.0.weight: checkpoint \\(16, 4, 3, 3\\)"):
        segnext.create_model(checkpoint=tmp_path / "plain.pth", in_channels=3)  # never narrowed silently
