"""The all-MLP decoder of the paper's ablation (`decoder="mlp"`): SegFormer's head as MMSegmentation's
`SegformerHead` computes it, with SegNeXt's GroupNorm, through every path a SegNeXt takes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import segnext
from segnext.inference import Segmenter, TestConfig


def _model(**options):
    torch.manual_seed(0)
    return segnext.create_model("segnext_t", 6, decoder="mlp", head_in_stages=(0, 1, 2, 3), **options).eval()


def test_the_head_projects_resizes_concatenates_fuses_and_classifies():
    model = _model()
    head = model.decode_head
    images = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        features = model.backbone(images)
        projected = [F.relu(conv.gn(conv.conv(feature))) for conv, feature in zip(head.convs, features)]
        size = features[0].shape[2:]  # stride 4: the first stage's
        resized = [F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in projected]
        fused = F.relu(head.fusion_conv.gn(head.fusion_conv.conv(torch.cat(resized, dim=1))))
        expected = head.conv_seg(fused)
        torch.testing.assert_close(model.forward_logits(images), expected, atol=1e-5, rtol=1e-5)
    assert model.forward_logits(images).shape == (2, 6, 24, 32)
    keys = {key for key in model.state_dict() if key.startswith("decode_head.")}
    assert {"decode_head.convs.3.conv.weight", "decode_head.convs.0.gn.bias", "decode_head.fusion_conv.conv.weight",
            "decode_head.conv_seg.bias"} <= keys and not any("hamburger" in key or "squeeze" in key for key in keys)
    # the decoder's parameters: four 1x1 projections to 256 (no bias) and their GroupNorms, the fusion, the classifier
    widths = (32, 64, 160, 256)
    expected_count = sum(width * 256 + 2 * 256 for width in widths) + 1024 * 256 + 2 * 256 + 256 * 6 + 6
    assert sum(p.numel() for p in head.parameters()) == expected_count


def test_no_nmf_nothing_random_and_each_image_as_alone():
    model = _model(nmf_seed=3)
    assert model.nmf is None and model.nmf_seed == 3
    model.nmf_seed = None  # kept, as the Hamburger's would be, though nothing is drawn
    assert model.nmf_seed is None
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        together = model(images)
        alone = torch.cat([model(images[index:index + 1]) for index in range(3)])
        assert torch.allclose(together, alone, atol=1e-5) and torch.equal(model(images), together)


def test_it_segments_saves_loads_and_exports_as_a_segnext(tmp_path):
    """Labels through the memory-efficient path (its stride-4 logits upsampled) equal the plain resize
    + argmax; the model folder keeps the decoder and its card names it; ONNX gives its logits."""
    model = _model()
    image = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    config = TestConfig(img_scale=None)
    exact = Segmenter(model, config, memory_efficient=False).predict(image)
    assert np.array_equal(Segmenter(model, config, memory_efficient=True).predict(image), exact)
    assert np.array_equal(Segmenter(segnext.optimize_for_inference(model), config).predict(image), exact)
    segnext.save_model(model, tmp_path / "mlp")
    assert "all-MLP (SegFormer's, the paper's ablation) decoder" in (tmp_path / "mlp" / "README.md").read_text()
    loaded = segnext.create_model(checkpoint=tmp_path / "mlp").eval()
    assert loaded.config.decoder == "mlp" and loaded.config.head_in_stages == (0, 1, 2, 3)
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'segnext[onnx]')")
    pytest.importorskip("onnx", reason="onnx is not installed (pip install 'segnext[onnx]')")
    path = segnext.export_onnx(loaded, tmp_path / "mlp.onnx", 64, 96)
    images = torch.randn(1, 3, 72, 80)
    (logits,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None,
                                                                                        {"images": images.numpy()})
    with torch.no_grad():
        assert np.abs(logits - loaded(images).numpy()).max() < 1e-3


def test_a_checkpoint_of_the_other_decoder_is_refused_with_what_to_do(tmp_path):
    """Published weights (the Hamburger's) give an all-MLP model their encoder only: as a whole
    checkpoint they are refused, naming both decoders and backbone_checkpoint=, which loads."""
    torch.manual_seed(0)
    segnext.save_model(segnext.create_model("segnext_t", 6), tmp_path / "ham")
    with pytest.raises(Exception, match=r"Its decoder is the LightHamHead \(Hamburger\) and the model's the all-MLP "
                                        r"decoder \(decoder='mlp'\): load its encoder alone with backbone_checkpoint="):
        segnext.create_model("segnext_t", 6, decoder="mlp", checkpoint=tmp_path / "ham")
    model = segnext.create_model("segnext_t", 6, decoder="mlp", backbone_checkpoint=tmp_path / "ham")
    reference = segnext.create_model(checkpoint=tmp_path / "ham")
    assert all(torch.equal(value, reference.backbone.state_dict()[key])
               for key, value in model.backbone.state_dict().items())
