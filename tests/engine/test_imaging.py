"""engine/imaging.py: reference pictures Pillow opens oddly -- decompression bombs,
16-bit PNGs, huge pictures -- are refused in words or read right, and quickly."""

import struct
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from engine import imaging
from engine.errors import BAD_IMAGE, KilnError

SIZE = 32
RED = (200, 30, 30)


def _png16(array: np.ndarray) -> bytes:
    """A 16-bit PNG (grey, grey+alpha, RGB or RGBA by the channel count), which Pillow
    itself cannot write in colour."""
    h, w = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in array)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[channels], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def _square(value, background, channels=None) -> np.ndarray:
    """64 x 64 pixels of `background` with a centred square of `value`."""
    shape = (64, 64) if channels is None else (64, 64, channels)
    array = np.full(shape, background, np.uint16)
    array[16:48, 16:48] = value
    return array


def test_a_16_bit_grey_png_is_scaled_not_clipped_to_white(tmp_path):
    """Pillow opens it as "I;16"; convert("RGBA") used to clip every value above 255."""
    path = tmp_path / "grey16.png"
    Image.fromarray(_square(10000, 65535)).save(path)
    assert Image.open(path).mode == "I;16"
    ref = imaging.load_reference(path, SIZE)
    assert 0.3 < float(ref[3].mean()) < 0.8               # the square, not an empty picture
    assert ref[0].min() == pytest.approx(10000 / 65535, abs=0.02)


def test_a_16_bit_grey_png_keeps_its_transparent_value(tmp_path):
    path = tmp_path / "clear16.png"
    Image.fromarray(_square(20000, 40000)).save(path, transparency=40000)
    ref = imaging.load_reference(path, SIZE)
    assert ref[3, 0, 0] == 0 and ref[3].max() == 1
    assert ref[0][ref[3] > 0.99].mean() == pytest.approx(20000 / 65535, abs=0.02)


@pytest.mark.parametrize("channels", [2, 3, 4], ids=["grey-alpha", "rgb", "rgba"])
def test_16_bit_colour_pngs_are_read_at_their_true_brightness(tmp_path, channels):
    array = _square(20000, 65535, channels)
    if channels in (2, 4):
        array[..., -1] = 65535
    path = tmp_path / "colour16.png"
    path.write_bytes(_png16(array))
    ref = imaging.load_reference(path, SIZE)
    assert 0.3 < float(ref[3].mean()) < 0.8
    assert ref[0].min() == pytest.approx(20000 / 65535, abs=0.02)


def test_a_decompression_bomb_is_refused_with_the_limit_and_the_fix(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (100, 100), RED).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)   # 10,000 pixels > twice 1,000
    with pytest.raises(KilnError) as info:
        imaging.load_reference(path, SIZE)
    message = info.value.message
    assert info.value.code == BAD_IMAGE and str(path) in message
    assert "10,000 pixels" in message and "up to 2,000 pixels" in message
    assert f"resize it to at most {imaging.MAX_SIDE} pixels a side" in message


def test_a_huge_picture_is_shrunk_right_after_opening(tmp_path):
    """8000 x 6000 pixels used to become a 768 MB float array (and 12,000 square, 2.3 GB
    and 34 s); now the picture is shrunk before any conversion."""
    path = tmp_path / "huge.jpg"
    big = Image.new("RGB", (8000, 6000), "white")
    big.paste(RED, (2000, 1500, 6000, 4500))
    big.save(path, quality=85)
    del big
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        assert max(imaging._open(path).size) == imaging.MAX_SIDE
        tracemalloc.start()
        try:
            ref = imaging.load_reference(path, SIZE)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 300 << 20, f"{peak >> 20} MB"
    assert 0.5 < float(ref[3].mean()) < 0.9
    np.testing.assert_allclose(ref[:3, SIZE // 2, SIZE // 2], np.array(RED) / 255, atol=0.03)
