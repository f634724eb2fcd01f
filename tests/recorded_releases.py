"""The recordings the parity tests compare with (the official code's, in the shared fixtures, and
MMSegmentation's, tests/fixtures/mmseg_reference.safetensors) were made with PyTorch 2.13. Other
releases draw the same random numbers, but F.normalize's float32 reduction may round the last bit
of an NMF basis differently, and their Dropout/DropPath draw other masks."""

from __future__ import annotations

import pytest
import torch

from segnext.compat import torch_version

RECORDED_WITH = (2, 13)
SAME_RELEASE = torch_version() == RECORDED_WITH

recorded_random_streams = pytest.mark.skipif(
    not SAME_RELEASE, reason=f"the recording holds PyTorch {'.'.join(map(str, RECORDED_WITH))}'s Dropout and "
                             f"DropPath masks; PyTorch {torch.__version__} draws others")


def assert_same_draw(drawn: torch.Tensor, recorded: torch.Tensor) -> None:
    """Bit-identical on the recording's release; elsewhere within a few units in the last place."""
    assert drawn.dtype == recorded.dtype and drawn.shape == recorded.shape
    if SAME_RELEASE:
        assert torch.equal(drawn, recorded)
    else:
        torch.testing.assert_close(drawn, recorded, rtol=2.0 ** -21, atol=0)
