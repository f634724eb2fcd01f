"""Config files: validation with helpful errors, overrides, _base_, and the shipped recipes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from train_helpers import tiny_config, write_config

from segnext.train.config import CONFIG_DIR, Config, ConfigError, list_configs, load_config


def test_unknown_key_names_the_file_and_suggests_the_closest(tmp_path, scenes):
    raw = tiny_config(scenes)
    raw["train"]["max_iter"] = 10
    path = write_config(tmp_path / "typo.yaml", raw)
    with pytest.raises(ConfigError) as error:
        load_config(str(path))
    message = str(error.value)
    assert str(path) in message and "'train.max_iter'" in message and "Did you mean 'train.max_iters'?" in message


def test_unknown_section_and_nested_keys(tmp_path, scenes):
    raw = tiny_config(scenes)
    raw["optimiser"] = {"lr": 1.0}
    with pytest.raises(ConfigError, match="Did you mean 'optimizer'"):
        load_config(str(write_config(tmp_path / "a.yaml", raw)))
    raw = tiny_config(scenes, model={"options": {"drop_path_rat": 0.0}})
    with pytest.raises(ConfigError, match="Did you mean 'drop_path_rate'"):
        load_config(str(write_config(tmp_path / "b.yaml", raw)))
    raw = tiny_config(scenes, model={"name": "segnext_s", "pretrained": "camvid"})
    with pytest.raises(ConfigError, match="model.pretrained.*'camvid' is published for segnext_t only"):
        load_config(str(write_config(tmp_path / "d.yaml", raw)))
    raw = tiny_config(scenes, optimizer={"custom_keys": {"head": {"lr_mul": 10.0}}})
    with pytest.raises(ConfigError, match="Did you mean 'lr_mult'"):
        load_config(str(write_config(tmp_path / "c.yaml", raw)))


@pytest.mark.parametrize("override, meant", [
    ("data.batch_size=4", "train.batch_size"),          # the same name in another section
    ("train.lr=0.1", "optimizer.lr"),
    ("evaluation.interval=100", "train.eval_interval"),  # MMSegmentation 0.x's name
    ("train.epochs=3", "train.max_iters"),               # other trainers' names
    ("model.classes=3", "model.num_classes"),
    ("train.max_iter=5", "train.max_iters"),             # a close name in its own section
    ("loss.weight=[1]", "loss.class_weight"),            # a name holding it as a word
])
def test_a_mistyped_key_is_suggested_the_key_meant_from_any_section(override, meant):
    with pytest.raises(ConfigError, match=f"Did you mean '{meant}'") as error:
        load_config("camvid/segnext_t_camvid_cpu_60min", [override])
    assert "Valid keys here" in str(error.value)


def test_overrides_are_yaml_values_and_checked(tmp_path, scenes):
    path = write_config(tmp_path / "c.yaml", tiny_config(scenes))
    config = load_config(str(path), ["train.max_iters=7", "data.crop_size=[32, 48]", "optimizer.lr=1e-4",
                                     "evaluation.size_divisor=null", "model.options.drop_path_rate=0.0"])
    assert config.train.max_iters == 7 and config.data.crop_size == (32, 48)
    assert config.optimizer.lr == 1e-4  # "1e-4" is text to PyYAML; accepted as a number
    assert config.evaluation.size_divisor is None and config.model.options == {"drop_path_rate": 0.0}
    with pytest.raises(ConfigError, match="Did you mean 'train.max_iters'"):
        load_config(str(path), ["train.max_iter=5"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(str(path), ["train.max_iters"])
    with pytest.raises(ConfigError, match="train.max_iters must be an integer"):
        load_config(str(path), ["train.max_iters=many"])
    with pytest.raises(ConfigError, match="data.crop_size must be a list of 2"):
        load_config(str(path), ["data.crop_size=[1,2,3]"])
    with pytest.raises(ConfigError, match="multiple of train.micro_batch_size"):
        load_config(str(path), ["train.batch_size=3"])
    with pytest.raises(ConfigError, match="'all_pixels'"):
        load_config(str(path), ["loss.reduction=mean"])
    with pytest.raises(ConfigError, match="Did you mean 'segnext_t'"):
        load_config(str(path), ["model.name=segnext_tt"])
    with pytest.raises(ConfigError, match=r"data.num_workers must be 0 or more .* or null .* got -1"):
        load_config(str(path), ["data.num_workers=-1"])
    assert load_config(str(path), ["data.num_workers=null"]).data.num_workers is None
    with pytest.raises(ConfigError, match=r"loss.class_weight must hold weights of 0 or more, not all 0, got "
                                          r"\[1.0, -2.0\]"):
        load_config(str(path), ["loss.class_weight=[1,-2]"])


def test_class_weights_of_another_number_of_classes_stop_the_run_before_it_starts(tmp_path, scenes):
    from segnext.train import train

    path = write_config(tmp_path / "c.yaml", tiny_config(scenes, loss={"class_weight": [1.0, 2.0, 3.0]}))
    with pytest.raises(ConfigError, match=r"loss.class_weight has 3 values but the folder dataset has 8 classes "
                                          r"\(sky, building, .*\): give one per class, in that order"):
        train(load_config(str(path)), tmp_path / "run", progress=False)
    assert not list((tmp_path / "run" / "checkpoints").glob("*.pt"))


def test_base_files_merge_key_by_key(tmp_path, scenes):
    write_config(tmp_path / "base.yaml", tiny_config(scenes))
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\ntrain:\n  max_iters: 3\n")
    config = load_config(str(tmp_path / "child.yaml"))
    assert config.train.max_iters == 3 and config.train.batch_size == 2 and config.data.root == str(scenes)
    (tmp_path / "loop.yaml").write_text("_base_: loop.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(str(tmp_path / "loop.yaml"))


def test_missing_config_suggests_a_shipped_one():
    with pytest.raises(FileNotFoundError, match="segnext_t_ade20k_512x512_160k"):
        load_config("segnext_t_ade20k_512x512_16k")


def test_round_trip_through_yaml(tmp_path, scenes):
    config = load_config(str(write_config(tmp_path / "c.yaml", tiny_config(scenes))))
    again = load_config(str(write_config(tmp_path / "d.yaml", yaml.safe_load(config.to_yaml()))))
    assert again == config


# The paper and official configs, per dataset: crop, total batch, iterations, train img_scale, test settings.
RECIPES = {
    "ade20k": dict(crop=(512, 512), batch=16, iters=160000, scale=(2048, 512), test_scale=(2048, 512), divisor=32,
                   mode="whole", classes=150),
    "cityscapes": dict(crop=(1024, 1024), batch=8, iters=160000, scale=(2048, 1024), test_scale=(2048, 1024),
                       divisor=None, mode="slide", classes=19),
    "coco_stuff": dict(crop=(512, 512), batch=16, iters=80000, scale=(2048, 512), test_scale=(2048, 512), divisor=32,
                       mode="whole", classes=171),
    "voc_aug": dict(crop=(512, 512), batch=16, iters=80000, scale=(2048, 512), test_scale=(2048, 512), divisor=None,
                    mode="whole", classes=21),
    "pascal_context_59": dict(crop=(480, 480), batch=16, iters=80000, scale=(520, 520), test_scale=(520, 520),
                              divisor=None, mode="slide", classes=59),
    "isaid": dict(crop=(896, 896), batch=16, iters=160000, scale=(896, 896), test_scale=(896, 896), divisor=None,
                  mode="whole", classes=16),
    "camvid": dict(crop=(360, 480), batch=16, iters=20000, scale=(480, 360), test_scale=(480, 360), divisor=None,
                   mode="whole", classes=11),
}


# Our recipes, not the paper's: time budgets from scratch, fine-tuning a folder dataset from ADE20K.
OWN_RECIPES = ("_cpu_60min", "_gpu_8min", "_folder_512x512_8k")


def test_shipped_configs_cover_every_variant_and_dataset_with_the_official_recipe():
    names = list_configs()
    paper = [n for n in names if not n.startswith("demo/") and not n.endswith(OWN_RECIPES)]
    assert len(paper) == 28
    for dataset, recipe in RECIPES.items():
        for variant in ("t", "s", "b", "l"):
            [name] = [n for n in paper if n.startswith(f"{dataset}/segnext_{variant}_")]
            config = load_config(name)
            assert config.model.name == f"segnext_{variant}" and config.data.dataset == dataset
            assert config.model.num_classes == recipe["classes"]
            assert config.model.pretrained == "imagenet" and config.model.backbone_checkpoint is None
            assert (config.data.crop_size, config.train.batch_size, config.train.max_iters) == \
                (recipe["crop"], recipe["batch"], recipe["iters"]), name
            assert config.data.img_scale == recipe["scale"] and config.data.ratio_range == (0.5, 2.0)
            assert config.evaluation.img_scale == recipe["test_scale"]
            assert (config.evaluation.size_divisor, config.evaluation.mode) == (recipe["divisor"], recipe["mode"])
            assert config.optimizer == Config().optimizer and config.schedule == Config().schedule
            assert config.loss.reduction == "all_pixels" and not config.train.amp
            if dataset == "cityscapes":
                assert config.evaluation.crop_size == (1024, 1024) and config.evaluation.stride == (768, 768)
            if dataset in ("voc_aug", "pascal_context_59", "isaid", "camvid"):
                assert "NO official config" in config.description  # says where the schedule comes from


def test_shipped_files_are_yaml_in_the_package():
    files = sorted(CONFIG_DIR.rglob("*.yaml"))
    assert len(files) >= 30
    for path in files:
        assert isinstance(yaml.safe_load(path.read_text()), dict)


def test_shipped_configs_are_a_base_per_dataset_and_a_short_file_per_variant():
    for name in list_configs():
        if name.startswith("demo/"):
            continue
        text = (CONFIG_DIR / f"{name}.yaml").read_text()
        assert text.startswith("_base_: ../_base_/"), name
        if not name.endswith(OWN_RECIPES):
            assert len(text.splitlines()) <= 10, name
    assert not any(n.startswith("_base_/") for n in list_configs())


def test_base_may_name_a_shipped_config(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("_base_: segnext_t_ade20k_512x512_160k\ntrain:\n  max_iters: 10\n")
    config = load_config(str(path))
    assert config.model.name == "segnext_t" and config.data.dataset == "ade20k" and config.train.max_iters == 10
    path.write_text("_base_: ade20k/segnext_s_ade20k_512x512_160k\n")
    assert load_config(str(path)).model.name == "segnext_s"
    path.write_text("_base_: segnext_q_ade20k\n")
    with pytest.raises(ConfigError, match="neither a file .* nor a shipped config"):
        load_config(str(path))


def test_evaluation_takes_the_normalisation_of_the_data_section(tmp_path):
    config = load_config("segnext_t_ade20k_512x512_160k", ["data.mean=[1.0,2.0,3.0]"])
    assert config.evaluation.mean == (1.0, 2.0, 3.0) and config.evaluation.std == config.data.std
    saved = tmp_path / "run.yaml"
    saved.write_text(config.to_yaml())  # a run's config.yaml loads back as it was
    assert load_config(str(saved)) == config
    with pytest.raises(ConfigError, match="evaluation.mean .* differs from data.mean"):
        load_config("segnext_t_ade20k_512x512_160k", ["evaluation.mean=[0.0,0.0,0.0]"])


def test_resolved_config_is_written_in_block_style():
    text = load_config("segnext_t_ade20k_512x512_160k").to_yaml()
    assert [line for line in text.splitlines() if "{" in line] == ["  options: {}", "  logger_options: {}"]  # empty
    assert "train:\n  max_iters: 160000\n" in text


def test_a_config_that_would_run_code_is_refused(tmp_path, scenes, capsys):
    """YAML is read with the safe loader: a !!python tag is refused with a clear message, and nothing runs."""
    from segnext.cli.main import main

    marker = tmp_path / "ran"
    attack = f'!!python/object/apply:os.system ["touch {marker}"]'
    path = write_config(tmp_path / "c.yaml", tiny_config(scenes))
    path.write_text(path.read_text() + f"description: {attack}\n")
    with pytest.raises(ConfigError) as error:
        load_config(str(path))
    message = str(error.value)
    assert str(path) in message and "refused the tag !!python/object/apply:os.system" in message
    with pytest.raises(ConfigError, match="Override 'model.name=.*refused the tag !!python/object/apply"):
        load_config(str(write_config(tmp_path / "d.yaml", tiny_config(scenes))), [f"model.name={attack}"])
    base = tmp_path / "base.yaml"
    base.write_text("train: !!python/object/new:dict {}\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\n")
    with pytest.raises(ConfigError, match=f"{base}, line 1: refused the tag !!python/object/new:dict"):
        load_config(str(tmp_path / "child.yaml"))
    assert main(["train", str(path), "--print-config"]) == 1
    assert "refused the tag" in capsys.readouterr().err
    assert not marker.exists()


def test_a_bad_section_names_every_override_that_built_it():
    with pytest.raises(ConfigError, match=r"^overrides 'evaluation.mode=slide', 'evaluation.crop_size=\[0,5\]', "
                                          r"'evaluation.stride=\[4,4\]': evaluation: crop_size must be two positive"):
        load_config("camvid/segnext_t_camvid_cpu_60min",
                    ["evaluation.mode=slide", "evaluation.crop_size=[0,5]", "evaluation.stride=[4,4]"])
    with pytest.raises(ConfigError, match=r"^override 'evaluation.scales=\[-1\]': evaluation: scales must be positive"):
        load_config("camvid/segnext_t_camvid_cpu_60min", ["evaluation.scales=[-1]"])


def test_copy_paste_classes_are_named_as_the_datasets_and_checked():
    config = load_config("camvid/segnext_t_camvid_cpu_60min", ["data.copy_paste_classes=[Pole, Bicyclist]",
                                                               "data.copy_paste_prob=0.25"])
    names = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
             "Bicyclist"]
    paste = config.data.class_paste(names)
    assert paste.class_ids == (2, 10) and paste.probability == 0.25
    assert load_config("camvid/segnext_t_camvid_cpu_60min", ["data.copy_paste_classes=[]"]).data.class_paste(
        names) is None
    with pytest.raises(ConfigError, match="'Bicycle' is not a class of the camvid dataset. Did you mean 'Bicyclist'"):
        load_config("camvid/segnext_t_camvid_cpu_60min", ["data.copy_paste_classes=[Bicycle]"]).data.class_paste(names)
    with pytest.raises(ConfigError, match="data.copy_paste_prob must be a probability from 0 to 1, got 2.0"):
        load_config("camvid/segnext_t_camvid_cpu_60min", ["data.copy_paste_prob=2"])


def test_class_selection_carries_the_shipped_configs_class_settings_along(tmp_path):
    """data.classes on a config written for all of CamVid's classes: the number of classes, the
    class weights and the pasted classes follow the selection, each change said; merged classes
    have no weight to take."""
    from types import SimpleNamespace

    from segnext.data import classes as C
    from segnext.data.selection import SelectedLabels, selection_table

    def selected(selection):
        names, new_id, members = selection_table(C.CAMVID_CLASSES, selection)
        label_map = SelectedLabels(lambda raw: raw, new_id, tuple(C.CAMVID_CLASSES), tuple(map(tuple, members)))
        return SimpleNamespace(label_map=label_map, class_names=names, num_classes=len(names), name="camvid")

    config = load_config("camvid/segnext_t_camvid_cpu_60min")
    weights = list(config.loss.class_weight)
    notes = config.follow_class_selection(selected(["Car", "Road", "Pedestrian"]))
    assert config.model.num_classes == 3 and config.loss.class_weight == [weights[8], weights[3], weights[9]]
    assert config.data.copy_paste_classes == ["Pedestrian"] and len(notes) == 3
    assert "model.num_classes 11 -> 3: data.classes selects Car, Road, Pedestrian" in notes[0]
    merged = load_config("camvid/segnext_t_camvid_cpu_60min")
    with pytest.raises(ConfigError, match="class_weight weighs the dataset's 11 classes, but data.classes makes 2"):
        merged.follow_class_selection(selected({"vehicle": ["Car", "Bicyclist"], "other": "*"}))
    assert load_config("camvid/segnext_t_camvid_cpu_60min").follow_class_selection(
        SimpleNamespace(label_map=None)) == []


def test_training_from_a_calibrated_model_starts_from_its_raw_logits(tmp_path):
    """A model folder written by `segnext calibrate` divides its logits by a temperature fitted to those
    weights; training changes them (and the loss wants the logits as they are): it restarts at 1, logged."""
    import segnext
    from segnext.train.config import ModelSection

    names = [f"class{i}" for i in range(4)]
    model = segnext.create_model("segnext_t", 4, class_names=names, logit_temperature=0.8)
    folder = segnext.save_model(model, tmp_path / "calibrated")

    class Dataset:
        num_classes, class_names, palette = 4, names, []

    built, lines = ModelSection(name="segnext_t", checkpoint=str(folder)).build(Dataset(), nmf_seed=0)
    assert built.config.logit_temperature == 1.0
    assert any("logit_temperature 0.800 (segnext calibrate's) is reset to 1 for training" in line for line in lines)
    kept, lines = ModelSection(name="segnext_t", checkpoint=str(folder),
                               options={"logit_temperature": 0.8}).build(Dataset(), nmf_seed=0)
    assert kept.config.logit_temperature == 0.8 and not any("reset" in line for line in lines)


def test_three_channels_read_as_bands_are_set_once_in_the_data_section(tmp_path):
    """data.bands (16-bit colour read at all its bits) is the evaluation's too, as data.mean/std
    are; such images go without the 8-bit photometric distortion and come from files."""
    def load(data, evaluation=None):
        raw = tiny_config(tmp_path)
        raw["data"].update(data)
        raw["evaluation"] = evaluation or {}
        return load_config(str(write_config(tmp_path / "c.yaml", raw)))

    wide = {"bands": True, "photometric": False, "mean": [1200, 1300, 1100], "std": [400, 420, 380]}
    config = load(wide)
    assert config.data.bands and config.evaluation.bands and config.evaluation.reads_bands
    assert not load({}).evaluation.reads_bands
    with pytest.raises(ConfigError, match="data.photometric is true: .* is 8-bit RGB's, and the images are read as "
                                          "bands \\(data.bands\\); set data.photometric=false"):
        load({**wide, "photometric": True})
    with pytest.raises(ConfigError, match="evaluation.bands False differs from data.bands True; images are read as "
                                          "bands or not once, in data.bands"):
        load(wide, evaluation={"bands": False})
    with pytest.raises(ConfigError, match="data.dataset is huggingface, whose images are read as 8-bit RGB; images "
                                          "that are read as bands"):
        load({**wide, "dataset": "huggingface"})


def test_the_data_and_the_model_agree_on_the_image_channels(tmp_path):
    """data.mean/data.std say the images' channels; model.options.in_channels must take as many, and
    images of other channels than RGB go without the RGB photometric distortion."""
    def load(**sections):
        raw = tiny_config(tmp_path, **{name: values for name, values in sections.items() if name != "data"})
        raw["data"].update(sections.get("data", {}))
        return load_config(str(write_config(tmp_path / "c.yaml", raw)))

    four = {"mean": [100, 110, 120, 500], "std": [50, 55, 60, 200], "photometric": False}
    config = load(model={"name": "segnext_t", "options": {"in_channels": 4}}, data=four)
    assert config.data.mean == (100.0, 110.0, 120.0, 500.0) and config.evaluation.channels == 4
    with pytest.raises(ConfigError, match="model.options.in_channels is 4 and data.mean/data.std normalise 3 channels: "
                                          "give data.mean and data.std one value per input channel"):
        load(model={"name": "segnext_t", "options": {"in_channels": 4}})
    with pytest.raises(ConfigError, match="model.options.in_channels is 3 and data.mean/data.std normalise 4 channels"):
        load(data=four)
    with pytest.raises(ConfigError, match="data.photometric is true: the photometric distortion .* is 8-bit RGB's, "
                                          "and the images have 4 channels; set data.photometric=false"):
        load(model={"name": "segnext_t", "options": {"in_channels": 4}}, data={**four, "photometric": True})
    with pytest.raises(ConfigError, match="data.mean and data.std need one value per image channel each"):
        load(data={"mean": [100, 110, 120, 500], "std": [50, 55, 60]})
    with pytest.raises(ConfigError, match="data.dataset is huggingface, whose images are read as 8-bit RGB"):
        load(model={"name": "segnext_t", "options": {"in_channels": 4}}, data={**four, "dataset": "huggingface"})
    with pytest.raises(ConfigError, match="model.options.in_channels must be a positive number of image channels"):
        load(model={"name": "segnext_t", "options": {"in_channels": 0}})


def test_a_checkpoint_of_other_input_channels_needs_data_of_as_many(tmp_path):
    import segnext
    from segnext.train.config import ModelSection

    folder = segnext.save_model(segnext.create_model("segnext_t", 4, in_channels=4), tmp_path / "rgbn")

    class Dataset:
        num_classes, class_names, palette, channels = 4, [], [], 3

    with pytest.raises(ConfigError, match="rgbn takes 4 input channels, and data.mean/data.std normalise 3: give "
                                          "data.mean and data.std one value per input channel"):
        ModelSection(name="segnext_t", checkpoint=str(folder)).build(Dataset(), nmf_seed=0)
    Dataset.channels = 4
    model, _ = ModelSection(name="segnext_t", checkpoint=str(folder)).build(Dataset(), nmf_seed=0)
    assert model.config.in_channels == 4


def test_the_value_of_no_data_is_set_once_in_the_data_section(tmp_path):
    """data.nodata is the evaluation's too, as data.bands is; refused for 8-bit RGB pictures and where
    evaluation.nodata says otherwise."""
    def load(data, evaluation=None):
        raw = tiny_config(tmp_path)
        raw["data"].update(data)
        raw["evaluation"] = evaluation or {}
        if len(data.get("mean", [])) == 4:
            raw["model"].setdefault("options", {})["in_channels"] = 4
        return load_config(str(write_config(tmp_path / "c.yaml", raw)))

    bands = {"mean": [500.0] * 4, "std": [50.0] * 4, "photometric": False, "nodata": -9999}
    config = load(bands)
    assert config.data.nodata == -9999 and config.evaluation.nodata == -9999.0
    assert load({}).evaluation.nodata is None
    with pytest.raises(ConfigError, match="data.nodata -9999 marks no data in images read as bands"):
        load({"nodata": -9999})
    with pytest.raises(ConfigError, match="evaluation.nodata 0 differs from data.nodata -9999"):
        load(bands, evaluation={"nodata": 0})


def test_the_data_section_leaves_no_data_unlabelled_unless_told(tmp_path):
    """data.label_no_data reaches the datasets of training and evaluation: by default the pixels where
    every band is data.nodata are 255, with true the label map's classes."""
    from PIL import Image

    root = tmp_path / "dem"
    for folder in ("images/train", "labels/train"):
        (root / folder).mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"classes": ["low", "high"]}))
    bands = np.full((8, 10, 4), 500.0, np.float32)
    bands[:2] = -9999
    np.save(root / "images/train/t.npy", bands)
    Image.fromarray(np.ones((8, 10), np.uint8)).save(root / "labels/train/t.png")
    labels = []
    for keep in (False, True):
        raw = tiny_config(root, data={"mean": [500.0] * 4, "std": [50.0] * 4, "photometric": False,
                                      "nodata": -9999, "label_no_data": keep})
        raw["model"]["options"] = {"in_channels": 4}
        config = load_config(str(write_config(tmp_path / "c.yaml", raw)))
        assert config.data.label_no_data is keep
        labels.append(config.data.build("train").load(0)["label"])
    assert (labels[0][:2] == 255).all() and (labels[0][2:] == 1).all() and (labels[1] == 1).all()
