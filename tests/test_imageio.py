"""The shared image reader/writer: modes, EXIF orientation, one-line errors, atomic writes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dualsr.data.imageio import ImageReadError, ImageWriteError, list_images, read_image, write_array, write_image

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8)


def _chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.astype(np.float32)).permute(2, 0, 1)


def test_rgb_and_rgba_keep_values_and_alpha(tmp_path):
    Image.fromarray(PIXELS).save(tmp_path / "rgb.png")
    rgba = np.dstack([PIXELS, PIXELS[:, :, :1]])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    plain = read_image(tmp_path / "rgb.png")
    assert torch.equal(plain.rgb, _chw(PIXELS)) and plain.alpha is None and not plain.grayscale
    with_alpha = read_image(tmp_path / "rgba.png")
    assert torch.equal(with_alpha.rgb, _chw(PIXELS))
    assert torch.equal(with_alpha.alpha, _chw(PIXELS[:, :, :1])) and with_alpha.mode == "RGBA"


def test_gray_modes_are_replicated_and_flagged(tmp_path):
    Image.fromarray(PIXELS[:, :, 0]).save(tmp_path / "l.png")
    Image.fromarray(PIXELS[:, :, :2]).save(tmp_path / "la.png")  # (H, W, 2) uint8 -> LA
    gray = read_image(tmp_path / "l.png")
    assert gray.grayscale and gray.rgb.shape == (3, 6, 7)
    assert all(torch.equal(gray.rgb[c], torch.from_numpy(PIXELS[:, :, 0]).float()) for c in range(3))
    gray_alpha = read_image(tmp_path / "la.png")
    assert gray_alpha.grayscale and gray_alpha.mode == "LA"
    assert torch.equal(gray_alpha.alpha[0], torch.from_numpy(PIXELS[:, :, 1]).float())


def test_palette_expands_to_rgb_or_rgba(tmp_path):
    palette = Image.fromarray(PIXELS).convert("P")
    palette.save(tmp_path / "p.png")
    expected = _chw(np.asarray(palette.convert("RGB")))
    loaded = read_image(tmp_path / "p.png")
    assert loaded.mode == "P" and loaded.alpha is None and torch.equal(loaded.rgb, expected)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "pt.png", transparency=0)
    assert read_image(tmp_path / "pt.png").alpha is not None


def test_cmyk_jpeg_reads_as_rgb(tmp_path):
    Image.fromarray(PIXELS).convert("CMYK").save(tmp_path / "c.jpg")
    loaded = read_image(tmp_path / "c.jpg")
    assert loaded.mode == "CMYK" and loaded.rgb.shape == (3, 6, 7) and loaded.alpha is None


def test_16bit_gray_png_keeps_precision_on_the_255_scale(tmp_path):
    values = np.array([[0, 65535, 257], [1000, 30000, 12345]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    loaded = read_image(tmp_path / "g16.png")
    assert loaded.bit_depth == 16 and loaded.grayscale
    torch.testing.assert_close(loaded.rgb[0] * 257, torch.from_numpy(values.astype(np.float32)))
    write_image(tmp_path / "out16.png", loaded.rgb, bit_depth=16, grayscale=True)
    again = Image.open(tmp_path / "out16.png")
    assert again.mode == "I;16" and np.array_equal(np.asarray(again), values)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(PIXELS)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.png", exif=exif)
    loaded = read_image(tmp_path / "rotated.png")
    assert loaded.rgb.shape == (3, 7, 6)
    assert torch.equal(loaded.rgb, _chw(np.rot90(PIXELS, k=-1)))


@pytest.mark.parametrize("make,reason", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_text("hello, not a picture"), "not an image file"),
    (lambda p: p.mkdir(), "is a folder"),
])
def test_unreadable_inputs_raise_one_line_errors(tmp_path, make, reason):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert reason in message and str(path) in message and "\n" not in message


def test_truncated_png_is_detected_at_read_time(tmp_path):
    full = tmp_path / "full.png"
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        read_image(truncated)


def test_write_image_round_trips_rgba_and_leaves_no_temporary(tmp_path):
    rgb, alpha = _chw(PIXELS), _chw(PIXELS[:, :, 2:])
    write_image(tmp_path / "out.png", rgb + 0.4, alpha)
    back = read_image(tmp_path / "out.png")
    assert torch.equal(back.rgb, rgb) and torch.equal(back.alpha, alpha)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_failed_write_leaves_neither_target_nor_temporary(tmp_path, monkeypatch):
    def broken_save(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageWriteError, match="No space left"):
        write_image(tmp_path / "out.png", _chw(PIXELS))
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_alpha_in_jpeg_and_missing_folders(tmp_path):
    with pytest.raises(ImageWriteError, match="alpha"):
        write_array(tmp_path / "x.jpg", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ImageWriteError, match="does not exist"):
        write_array(tmp_path / "nowhere" / "x.png", np.zeros((4, 4, 3), np.uint8))


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16bit_colour_and_alpha_pngs_keep_every_bit_both_ways(tmp_path, channels):
    values = (np.arange(2 * 3 * channels, dtype=np.uint16).reshape(2, 3, channels) * 3001 + 7)
    write_array(tmp_path / "c16.png", values)
    opened = Image.open(tmp_path / "c16.png")
    assert opened.tile[0][3].endswith(";16B")  # a true 16-bit PNG, which Pillow would read as 8-bit
    loaded = read_image(tmp_path / "c16.png")
    assert loaded.bit_depth == 16 and not loaded.warnings and loaded.grayscale == (channels == 2)
    planes = torch.cat([loaded.rgb[:1] if channels == 2 else loaded.rgb] +
                       ([loaded.alpha] if loaded.alpha is not None else []))
    assert np.array_equal(np.floor(planes.numpy().transpose(1, 2, 0) * 257 + 0.5).astype(np.uint16), values)


def test_list_images_expands_folders_and_globs_and_reports_the_rest(tmp_path):
    for name in ("b.png", "a.jpg", "notes.txt", ".hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    found = list_images([tmp_path, str(tmp_path / "*.png"), tmp_path / "missing.png"])
    assert [p.name for p in found.files] == ["a.jpg", "b.png"]
    reasons = {p.name: r for p, r in found.skipped}
    assert "not an image" in reasons["notes.txt"] and "no such file" in reasons["missing.png"]


def test_unsupported_mode_is_a_one_line_error(tmp_path):
    Image.fromarray(np.zeros((4, 5), np.float32)).save(tmp_path / "float.tif")  # mode "F"
    with pytest.raises(ImageReadError, match="unsupported image mode 'F'") as info:
        read_image(tmp_path / "float.tif")
    assert "\n" not in str(info.value) and "float.tif" in str(info.value)
