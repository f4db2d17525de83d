"""Reference pictures: load, remove the background, centre and resize for the image encoder.

Output convention (matches the training renders): RGB composited on white plus alpha,
(4, S, S) float in [0, 1].
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from .errors import BAD_IMAGE, KilnError

KEY_TOLERANCE = 0.12     # colour-key distance (0..1 per channel, max-norm) to the corner colour
MARGIN = 0.1             # padding around the object after cropping, fraction of its size
MAX_SIDE = 2048          # pictures are shrunk to this on opening (the encoder sees far less)
DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # more than 8 bits per pixel


def _read(image) -> np.ndarray:
    """A path or an array -> (H, W, 4) float32 in [0, 1]."""
    if isinstance(image, (str, Path)):
        array = np.asarray(_open(Path(image).expanduser()))
    else:
        array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 8:
        raise KilnError(BAD_IMAGE, f"The image has shape {array.shape}; expected height x width "
                        "x 3 or 4 channels, at least 8 pixels a side.")
    array = array.astype(np.float32) / (255.0 if array.dtype == np.uint8 else 1.0)
    if array.shape[2] == 3:
        array = np.concatenate([array, np.ones_like(array[..., :1])], axis=2)
    return np.clip(array, 0.0, 1.0)


def _open(path: Path):
    """The picture at `path` as an 8-bit RGBA PIL image at most MAX_SIDE pixels a side,
    shrunk right after opening (JPEGs decode at 1/2 to 1/8 size), before any conversion."""
    from PIL import Image, UnidentifiedImageError
    if not path.is_file():
        raise KilnError(BAD_IMAGE, f"Cannot read the image {path}: no such file. Pick an "
                        "existing PNG or JPEG.")
    try:
        with Image.open(path) as im:
            picture = _eight_bit(im) if im.mode in DEEP_MODES else im
            if picture.mode in ("P", "PA", "1"):        # palettes resize without blending
                picture = picture.convert("RGBA")
            picture.thumbnail((MAX_SIDE, MAX_SIDE))
            return picture.convert("RGBA")
    except Image.DecompressionBombError as exc:
        raise KilnError(BAD_IMAGE, f"The image {path} is too large to read safely "
                        f"({_pixels(exc)}; Kiln reads up to {_bomb_limit()} pixels): resize "
                        f"it to at most {MAX_SIDE} pixels a side and try again.") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise KilnError(BAD_IMAGE, f"Cannot read the image {path}: it is not a picture "
                        f"Pillow can open ({exc.__class__.__name__}). Save it as PNG or "
                        "JPEG and try again.") from exc


def _eight_bit(im):
    """A 16-bit (or 32-bit, float) greyscale picture as 8-bit "L", or "LA" when one grey
    value is transparent: convert("RGBA") would clip every value above 255 to white."""
    from PIL import Image
    values = np.asarray(im, dtype=np.float32)
    grey = np.clip(values * (255.0 / _full_scale(im.mode, values)) + 0.5, 0, 255)
    grey = grey.astype(np.uint8)
    clear = im.info.get("transparency")
    if isinstance(clear, (int, float)):
        alpha = np.where(values == clear, 0, 255).astype(np.uint8)
        return Image.fromarray(np.stack([grey, alpha], axis=2))
    return Image.fromarray(grey)


def _full_scale(mode: str, values: np.ndarray) -> float:
    """The value that means white: 65535 for 16-bit pictures ("I" ones too, as 16-bit
    PNG and TIFF open as "I" in older Pillows, unless every value fits in 8 bits)."""
    peak = float(values.max(initial=0.0))
    if mode.startswith("I;16") or peak > 255:
        return 65535.0
    return 1.0 if mode == "F" and peak <= 1 else 255.0


def _pixels(exc: Exception) -> str:
    """"N pixels" from Pillow's DecompressionBombError message, if it says."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{int(found.group(1)):,} pixels" if found else "too many pixels"


def _bomb_limit() -> str:
    from PIL import Image
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)     # Pillow refuses above twice its limit
    return f"{limit:,}"


def remove_background(rgba_hxwx4: np.ndarray) -> np.ndarray:
    """Keep a real alpha channel; otherwise key out the colour of the four corners."""
    alpha = rgba_hxwx4[..., 3]
    if alpha.min() < 0.99:
        return rgba_hxwx4
    rgb = rgba_hxwx4[..., :3]
    corners = np.stack([rgb[0, 0], rgb[0, -1], rgb[-1, 0], rgb[-1, -1]])
    key = np.median(corners, axis=0)
    keep = np.abs(rgb - key).max(axis=2) > KEY_TOLERANCE
    out = rgba_hxwx4.copy()
    out[..., 3] = keep.astype(np.float32)
    return out


def _crop_square(rgba: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(rgba[..., 3] > 0.5)
    if len(ys) == 0:
        raise KilnError(BAD_IMAGE, "The image is empty after background removal: use a picture "
                        "with the object on a plain background or with transparency.")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = int(max(y1 - y0, x1 - x0) * (1 + 2 * MARGIN)) + 1
    canvas = np.zeros((side, side, 4), np.float32)
    oy, ox = (side - (y1 - y0)) // 2, (side - (x1 - x0)) // 2
    canvas[oy:oy + y1 - y0, ox:ox + x1 - x0] = rgba[y0:y1, x0:x1]
    return canvas


def read_picture(image) -> np.ndarray:
    """A path or (H, W, 3|4) array -> (H, W, 4) float in [0, 1], background removed."""
    return remove_background(_read(image))


def _on_white(rgba_hxwx4: np.ndarray, size: int) -> torch.Tensor:
    """RGBA -> (4, size, size): RGB composited on white, alpha; area-resized."""
    alpha = rgba_hxwx4[..., 3:]
    on_white = np.concatenate([rgba_hxwx4[..., :3] * alpha + (1 - alpha), alpha], axis=2)
    t = torch.from_numpy(np.ascontiguousarray(on_white)).permute(2, 0, 1)[None]
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="area")[0]
    return t.clamp(0, 1)


def load_reference(image, size: int) -> torch.Tensor:
    """A path or (H, W, 3|4) array -> (4, size, size): RGB on white, alpha."""
    return _on_white(_crop_square(read_picture(image)), size)


def _extent(rgba_hxwx4: np.ndarray, index: int, count: int):
    """Centre (y, x) of the object's bounding box in pixels and its reach: the largest
    distance from that centre to an object pixel's far corner, as a fraction of the
    picture's longer side."""
    ys, xs = np.nonzero(rgba_hxwx4[..., 3] > 0.5)
    if len(ys) == 0:
        raise KilnError(BAD_IMAGE, f"Picture {index + 1} of {count} is empty after "
                        "background removal: use a picture with the object on a plain "
                        "background or with transparency.")
    cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
    far = np.sqrt((np.abs(ys + 0.5 - cy) + 0.5) ** 2 + (np.abs(xs + 0.5 - cx) + 0.5) ** 2)
    return (cy, cx), float(far.max()) / max(rgba_hxwx4.shape[:2])


def _window(rgba_hxwx4: np.ndarray, centre, side: int) -> np.ndarray:
    """The square of `side` pixels centred at `centre` (transparent outside the picture)."""
    h, w = rgba_hxwx4.shape[:2]
    y0, x0 = int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2))
    out = np.zeros((side, side, 4), np.float32)
    sy, sx = max(0, -y0), max(0, -x0)
    ey, ex = min(side, h - y0), min(side, w - x0)
    if ey > sy and ex > sx:
        out[sy:ey, sx:ex] = rgba_hxwx4[y0 + sy:y0 + ey, x0 + sx:x0 + ex]
    return out


def frame_alike(pictures, size: int, reach: float) -> torch.Tensor:
    """Pictures of one object (paths or arrays) -> (V, 4, size, size), RGB on white and
    alpha, each with the object's bounding-box centre in the middle and one scale for all:
    the picture where the object reaches farthest from its centre gets that reach at
    `reach` of the frame side (the others keep their sizes relative to it, as pictures
    taken alike with one camera do). A picture's scale is measured against its longer
    side, so pictures of different resolutions from one camera frame alike too."""
    rgbas = [read_picture(p) for p in pictures]
    extents = [_extent(r, i, len(rgbas)) for i, r in enumerate(rgbas)]
    widest = max(e[1] for e in extents)
    framed = []
    for rgba, (centre, _) in zip(rgbas, extents):
        side = max(8, int(round(max(rgba.shape[:2]) * widest / reach)))
        framed.append(_on_white(_window(rgba, centre, side), size))
    return torch.stack(framed)
