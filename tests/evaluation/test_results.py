"""What an evaluation leaves behind: each image's class areas in the results JSON, and each group's
scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segnext.evaluation import areas_for_json, areas_from_json, group_scores, image_scores


def test_the_areas_survive_json():
    areas = torch.zeros(3, 3, 5, dtype=torch.int64)
    areas[0, :, 1] = torch.tensor([4, 6, 5])
    areas[0, :, 4] = torch.tensor([0, 0, 7])  # predicted where it is not
    areas[2, :, 0] = torch.tensor([0, 9, 0])  # labelled, never predicted
    rows = areas_for_json(areas)
    assert rows == [[1, 4, 6, 5, 4, 0, 0, 7], [], [0, 0, 9, 0]]
    assert torch.equal(areas_from_json(rows, 5), areas)
    with pytest.raises(ValueError, match="results.json: image 0's areas are not"):
        areas_from_json([[7, 1, 1, 1]], 5, where="results.json")
    with pytest.raises(ValueError, match="image 1's areas"):
        areas_from_json([[], [1, 2, 3]], 5)


def test_each_group_is_scored_as_a_split_of_its_own_images():
    areas = torch.from_numpy(np.random.default_rng(5).integers(0, 500, (4, 3, 5)).cumsum(1))
    rows = group_scores(areas, ["b", "a", "b", None])
    assert [(row["group"], row["images"]) for row in rows] == [("b", 2), ("a", 1)]  # in order of appearance
    assert rows[0]["mIoU"] == pytest.approx(image_scores(areas[0] + areas[2])["mIoU"])
    assert rows[1]["IoU"] == pytest.approx(image_scores(areas[1])["IoU"])
    assert group_scores(areas, ["a", "a", None, None]) == [] and group_scores(areas, None) == []
