"""One picture of many results: their thumbnails in a grid, each captioned (a prompt
list's contact-sheet.png, a morph's strip).

Each tile is a result's 128 px thumbnail (engine/render/thumbnail.py) over white with
its caption beneath; the grid is as square as the count allows unless `columns` is
given. The PNG carries Kiln's text chunk, so a picture of the user's at that path is
never taken for Kiln's (engine/io/outputs.py).
"""

from __future__ import annotations

import io
import math

import numpy as np

from ..io.outputs import THUMB_KEY, THUMB_VALUE
from .thumbnail import THUMB_PX

CAPTION_PX = 14              # the strip under each tile that holds its caption
GAP_PX = 4                   # white between tiles
CAPTION_CHARS = 22           # PIL's default font: about 6 px a character


def grid_columns(count: int) -> int:
    """Columns of the squarest grid that holds `count` tiles."""
    return max(1, math.ceil(math.sqrt(count)))


def contact_sheet_rgb(tiles_rgba: list[np.ndarray], captions: list[str],
                      columns: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8: each (S, S, 4) tile over white with its caption below it."""
    from PIL import Image, ImageDraw
    columns = columns or grid_columns(len(tiles_rgba))
    rows = math.ceil(len(tiles_rgba) / columns)
    cell_w, cell_h = THUMB_PX + GAP_PX, THUMB_PX + CAPTION_PX + GAP_PX
    sheet = Image.new("RGB", (columns * cell_w + GAP_PX, rows * cell_h + GAP_PX), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (tile_rgba, caption) in enumerate(zip(tiles_rgba, captions)):
        x, y = GAP_PX + (i % columns) * cell_w, GAP_PX + (i // columns) * cell_h
        tile = Image.fromarray(tile_rgba, "RGBA").resize((THUMB_PX, THUMB_PX))
        sheet.paste(tile, (x, y), tile)
        text = caption if len(caption) <= CAPTION_CHARS else caption[:CAPTION_CHARS - 1] + "~"
        text = text.encode("latin-1", "replace").decode("latin-1")   # the bitmap font's
        draw.text((x + 2, y + THUMB_PX + 1), text, fill=(40, 40, 40))
    return np.asarray(sheet)


def contact_sheet_png(tiles_rgba: list[np.ndarray], captions: list[str],
                      columns: int | None = None) -> bytes:
    """The sheet as PNG bytes, marked as Kiln's."""
    from PIL import Image, PngImagePlugin
    info = PngImagePlugin.PngInfo()
    info.add_text(THUMB_KEY, THUMB_VALUE)
    out = io.BytesIO()
    Image.fromarray(contact_sheet_rgb(tiles_rgba, captions, columns)).save(
        out, format="PNG", pnginfo=info)
    return out.getvalue()
