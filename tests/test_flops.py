"""MAC counts against the paper's (counted with torchprofile on the official code)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segnext.flops import count_macs, model_complexity

# (variant, classes, height, width) -> GMACs of the official code
PAPER_GMACS = {
    ("segnext_t", 150, 512, 512): 6.59, ("segnext_s", 150, 512, 512): 15.85,
    ("segnext_b", 150, 512, 512): 34.90, ("segnext_l", 150, 512, 512): 69.96,
    ("segnext_t", 19, 1024, 2048): 50.54, ("segnext_s", 19, 1024, 2048): 124.62,
    ("segnext_b", 19, 1024, 2048): 275.65, ("segnext_l", 19, 1024, 2048): 553.70,
}
PAPER_PARAMS = {("segnext_t", 150): 4_263_414, ("segnext_s", 150): 13_932_886, ("segnext_b", 150): 27_636_310,
                ("segnext_l", 150): 48_926_550, ("segnext_t", 19): 4_229_747, ("segnext_s", 19): 13_899_219,
                ("segnext_b", 19): 27_569_107, ("segnext_l", 19): 48_792_275}


# Every variant at 512x512 and SegNeXt-T at 1024x2048 by default; the larger ones at 1024x2048 (the
# same counting rules on other sizes, seconds each) with -m slow.
@pytest.mark.parametrize("key", [pytest.param(key, marks=pytest.mark.slow) if key[2] == 1024 and key[0] != "segnext_t"
                                 else key for key in PAPER_GMACS], ids=lambda k: f"{k[0]}-{k[2]}x{k[3]}")
def test_macs_match_the_paper_within_one_percent(key):
    name, classes, height, width = key
    result = model_complexity(name, height, width, num_classes=classes)
    assert result.params == PAPER_PARAMS[(name, classes)]
    assert abs(result.gmacs / PAPER_GMACS[key] - 1) < 0.01, (result.gmacs, PAPER_GMACS[key])


def test_counting_rules_on_a_tiny_network():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.depthwise = nn.Conv2d(8, 8, 5, padding=2, groups=8)
            self.norm = nn.BatchNorm2d(8)
            self.linear = nn.Linear(8, 4)

        def forward(self, x):
            x = self.norm(self.depthwise(self.conv(x))) * 2.0
            x = nn.functional.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
            return self.linear(x.permute(0, 2, 3, 1))

    macs, by_kind = count_macs(Tiny().eval(), 10, 10)
    conv = 8 * 10 * 10 * 3 * 9 + 8 * 10 * 10 * 1 * 25
    assert by_kind["conv"] == conv
    assert by_kind["norm"] == 800 and by_kind["mul"] == 800
    assert by_kind["resize"] == 4 * 8 * 20 * 20
    assert by_kind["matmul"] == 20 * 20 * 8 * 4
    assert macs == sum(by_kind.values())


def test_count_leaves_the_model_usable(checkpoint_path):
    import segnext

    model = segnext.create_model(checkpoint=checkpoint_path).eval()
    count_macs(model, 64, 64)
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, 64, 64))).all()


def test_the_papers_ablations_are_counted_as_the_command_gives_them(capsys):
    """`segnext flops --option`: the fields of SegNeXtConfig, as in a config's model.options. Without
    its strip branches, each block loses two depthwise strip convs (k + 1 weights and bias per channel)
    for k = 7, 11 and 21; the attention product has no parameters, only its multiplications."""
    import json

    from segnext.cli.main import main

    assert main(["flops", "segnext_t", "--shape", "64", "64", "--option", "strip_kernel_sizes=[]", "--json"]) == 0
    ablated = json.loads(capsys.readouterr().out)[0]
    full = model_complexity("segnext_t", 64, 64)
    blocks = 3 * 32 + 3 * 64 + 5 * 160 + 2 * 256  # depth x width, summed over the stages
    assert ablated["options"] == {"strip_kernel_sizes": []}
    assert full.params - ablated["params"] == blocks * 2 * (8 + 12 + 22)
    assert ablated["macs"] < full.macs
    ungated = model_complexity("segnext_t", 64, 64, attention_gating=False)
    assert ungated.params == full.params and ungated.macs_by_kind["mul"] < full.macs_by_kind["mul"]
    assert main(["flops", "segnext_t", "--option", "atention_gating=false"]) == 1
    assert "Did you mean 'attention_gating'?" in capsys.readouterr().err
