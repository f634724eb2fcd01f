"""TestConfig refuses settings no test could run with, naming the setting and an example."""

from __future__ import annotations

import math

import pytest

from segnext import TestConfig
from segnext.inference.settings import MS_RATIOS, OFFICIAL_TEST_CONFIGS


@pytest.mark.parametrize("settings,message", [
    ({"mode": "sliding"}, "test mode must be 'whole' or 'slide'"),
    ({"mode": "slide", "crop_size": (512, 512)}, "slide inference needs crop_size and stride"),
    ({"img_scale": (0, 512)}, "img_scale must be two positive integers, e.g. (2048, 512); got (0, 512)"),
    ({"img_scale": (2048,)}, "img_scale must be two positive integers"),
    ({"mode": "slide", "crop_size": (512, -1), "stride": (256, 256)}, "crop_size must be two positive integers"),
    ({"mode": "slide", "crop_size": (512, 512), "stride": (0, 0)}, "stride must be two positive integers"),
    ({"size_divisor": 0}, "size_divisor must be a positive integer (e.g. 32) or None, got 0"),
    ({"scales": ()}, "scales must hold at least one ratio"),
    ({"scales": (1.0, -0.5)}, "scales must be positive ratios, e.g. (0.75, 1.0, 1.25); got (1.0, -0.5)"),
    ({"scales": (math.nan,)}, "scales must be positive ratios"),
    ({"std": (58.4, 0.0, 57.4)}, "mean and std must be one value per input channel each (three for RGB), std positive"),
    ({"mean": (123.7, 116.3)}, "mean and std must be one value per input channel each"),
    ({"mean": (), "std": ()}, "mean and std must be one value per input channel each"),
    ({"bands": "yes"}, "bands must be true or false, got 'yes'"),
])
def test_settings_no_test_could_run_with_are_refused(settings, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        TestConfig(**settings)


def test_valid_settings_are_normalised_to_tuples():
    config = TestConfig(img_scale=[2048, 512], mode="slide", crop_size=[512, 512], stride=[341, 341], scales=[1])
    assert config.img_scale == (2048, 512) and config.crop_size == (512, 512) and config.scales == (1.0,)
    assert TestConfig.from_dict(config.to_dict()) == config


def test_images_are_read_as_bands_for_other_channels_than_three_or_when_asked():
    assert not TestConfig().reads_bands and TestConfig(bands=True).reads_bands
    assert TestConfig(mean=(0.0,) * 4, std=(1.0,) * 4).reads_bands
    saved = TestConfig(mean=(1150.0,) * 3, std=(70.0,) * 3, bands=True).to_dict()
    assert saved["bands"] is True and TestConfig.from_dict(saved).reads_bands
    del saved["bands"]  # settings saved before the key existed: RGB
    assert not TestConfig.from_dict(saved).bands


@pytest.mark.parametrize("config,line", [
    (OFFICIAL_TEST_CONFIGS["ade20k"], "whole, img_scale (2048, 512), sides rounded up to a multiple of 32"),
    (OFFICIAL_TEST_CONFIGS["cityscapes"], "slide 1024x1024 windows, stride 768x768, img_scale (2048, 1024)"),
    (TestConfig(img_scale=None, scales=(1.5,), flip=True), "whole, original size, scale 1.5, flip"),
    (TestConfig(img_scale=(2048, 512), scales=MS_RATIOS, flip=True),
     "whole, img_scale (2048, 512), multi-scale 0.5, 0.75, 1, 1.25, 1.5, 1.75, flip"),
])
def test_describe_names_every_setting_that_changes_the_result(config, line):
    """The line `segnext predict`, `eval` and `convert` print: a single scale other than 1 is named too."""
    assert config.describe() == line
