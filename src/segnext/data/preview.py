"""A contact sheet of a split's images with their labels laid over them (`segnext data preview`):
the look that tells whether a conversion went right (the classes where they belong, nothing shifted
or missing) before any training. MMSegmentation's `browse_dataset.py` does this one image at a time.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..constants import IGNORE_INDEX
from .bands import display_rgb
from .palette import overlay

TILE_WIDTH = 400
CAPTION, LEGEND_ROW, SWATCH = 14, 16, 12


def spread_indices(length: int, count: int) -> List[int]:
    """`count` indices spread evenly over 0..length-1 (neighbouring frames of a video look alike)."""
    count = min(count, length)
    return sorted(set(np.linspace(0, length - 1, count).round().astype(int).tolist())) if count else []


def _tile(image: np.ndarray, label: np.ndarray, palette, alpha: float, caption: str) -> Image.Image:
    blended = overlay(display_rgb(image), label, palette, alpha)
    height = max(1, round(blended.shape[0] * TILE_WIDTH / blended.shape[1]))
    tile = Image.new("RGB", (TILE_WIDTH, height + CAPTION), "white")
    tile.paste(Image.fromarray(blended).resize((TILE_WIDTH, height), Image.BILINEAR), (0, 0))
    ImageDraw.Draw(tile).text((2, height + 1), caption[-60:], fill="black", font=ImageFont.load_default())
    return tile


def preview_sheet(samples: Sequence[Tuple[np.ndarray, np.ndarray, str]], class_names: Sequence[str], palette,
                  alpha: float = 0.5, columns: int = 4) -> np.ndarray:
    """One RGB image (H, W, 3) of `samples` ((image, label, caption) each) in rows of `columns`, each
    image with its label's colours blended in (`alpha`: their weight; ignored pixels keep the
    image's), then a legend of the classes they show, with their pixel shares. Images of other
    channels than RGB are drawn as `display_rgb`'s pictures of their bands."""
    if not samples:
        raise ValueError("no samples to show")
    tiles = [_tile(image, label, palette, alpha, caption) for image, label, caption in samples]
    columns = min(columns, len(tiles))
    rows = [tiles[i:i + columns] for i in range(0, len(tiles), columns)]
    row_heights = [max(tile.height for tile in row) for row in rows]
    pixels = np.bincount(np.concatenate([label.ravel() for _, label, _ in samples]), minlength=256)
    shown = [k for k in range(len(class_names)) if pixels[k]]
    labelled = max(1, int(pixels[: len(class_names)].sum()))
    per_row = max(1, columns * TILE_WIDTH // 200)
    legend = [f"{class_names[k]} {100 * pixels[k] / labelled:.1f}%" for k in shown]
    if pixels[IGNORE_INDEX]:
        legend.append(f"no label (255): {int(pixels[IGNORE_INDEX]):,} px, shown as the image")
    legend_height = LEGEND_ROW * (-(-len(legend) // per_row))
    sheet = Image.new("RGB", (columns * TILE_WIDTH, sum(row_heights) + legend_height + 4), "white")
    top = 0
    for row, height in zip(rows, row_heights):
        for column, tile in enumerate(row):
            sheet.paste(tile, (column * TILE_WIDTH, top))
        top += height
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for position, text in enumerate(legend):
        x, y = (position % per_row) * 200 + 2, top + 2 + (position // per_row) * LEGEND_ROW
        if position < len(shown):
            draw.rectangle([x, y, x + SWATCH, y + SWATCH], fill=tuple(palette[shown[position]]), outline="black")
        draw.text((x + SWATCH + 4, y), text, fill="black", font=font)
    return np.asarray(sheet)
