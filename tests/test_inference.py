"""Upscaler: tiled == untiled, image kinds round trip (mode, size, bit depth), default weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import dualsr.inference as inference
from dualsr.checkpoint import save_weights
from dualsr.data.resize import imresize
from dualsr.inference import FORMAT_FLOAT255, Upscaler, iter_tiles
from dualsr.models import create_model
from dualsr.models.drn import ChannelAttention

SCALE = 4


@pytest.fixture(scope="module")
def tiny_drn() -> torch.nn.Module:
    """A random drn-t small enough for tests; channel attention and U-Net as in the real model.

    At default init the attention's single squeezed unit is often dead (ReLU), making the gates
    constant; these weights keep them content-dependent, as in a trained model.
    """
    torch.manual_seed(0)
    model = create_model("drn-t", SCALE, n_blocks=1, n_feats=4).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, ChannelAttention):
                squeeze, excite = module.conv_du[0], module.conv_du[2]
                squeeze.weight.normal_(0, 1.0 / squeeze.in_channels)
                squeeze.bias.fill_(1.0)
                excite.weight.normal_(0, 1.0)
                excite.bias.zero_()
    return model


def smooth_image(height: int, width: int, seed: int = 1) -> torch.Tensor:
    """A (3, H, W) 0-255 test image with structure at several scales and a dark half."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, height // 6), max(2, width // 6), generator=g) * 255
    image = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
    image = image + 20 * torch.rand(3, height, width, generator=g)
    image[:, : height // 2] *= 0.4
    return image.clamp(0, 255)


@pytest.mark.parametrize("size", [(24, 24), (29, 21), (13, 40)])
def test_tiled_equals_untiled_within_one_level(tiny_drn, size):
    image = smooth_image(*size)
    untiled = Upscaler(tiny_drn).upscale_planes(image).astype(int)
    tiled_upscaler = Upscaler(tiny_drn, tile=12)
    assert len(list(iter_tiles(*size, 12, tiled_upscaler.tile_pad))) > 1
    tiled = tiled_upscaler.upscale_planes(image).astype(int)
    assert tiled.shape == untiled.shape == (size[0] * SCALE, size[1] * SCALE, 3)
    assert np.abs(tiled - untiled).max() <= 1


def test_tiled_matches_untiled_floats_thanks_to_whole_image_attention_means(tiny_drn):
    # Per-tile channel-attention means drift by ~4e-3 even on this random model; the whole-image
    # means computed in the statistics passes bring tiles to float rounding of the untiled output.
    image = smooth_image(29, 21)
    untiled = Upscaler(tiny_drn).upscale_planes(image, fmt=FORMAT_FLOAT255)
    exact = Upscaler(tiny_drn, tile=12).upscale_planes(image, fmt=FORMAT_FLOAT255)
    with pytest.warns(UserWarning, match="per-tile attention means"):
        local = Upscaler(tiny_drn, tile=12, global_stats=False).upscale_planes(image, fmt=FORMAT_FLOAT255)
    exact_err, local_err = np.abs(exact - untiled).max(), np.abs(local - untiled).max()
    assert exact_err < 1e-3
    assert local_err > 10 * exact_err


def test_exact_tiling_flag_reports_approximations(tiny_drn):
    assert Upscaler(tiny_drn, tile=16).exact_tiling
    assert not Upscaler(tiny_drn, tile=16, global_stats=False).exact_tiling
    assert not Upscaler(tiny_drn, tile=16, tile_pad=0).exact_tiling


def test_tiling_a_model_with_grid_dependent_layers_warns():
    # RLFN's ESA pools with stride 3 and interpolates to the input size: not exactly tileable
    torch.manual_seed(0)
    rlfn = create_model("rlfn", SCALE).eval()
    upscaler = Upscaler(rlfn, tile=8, tile_pad=2)
    assert not upscaler.exact_tiling
    with pytest.warns(UserWarning, match="approximates"):
        upscaler.upscale_planes(smooth_image(12, 12))


def test_alpha_is_resized_with_matlab_bicubic_by_tiles(tiny_drn):
    rgb = smooth_image(30, 26)
    alpha = smooth_image(30, 26, seed=5)[:1]
    out = Upscaler(tiny_drn, tile=8).upscale_planes(rgb, alpha)
    expected = imresize(alpha.double(), SCALE, round_uint8=True)[0].numpy()
    assert out.shape == (120, 104, 4)
    assert np.abs(out[:, :, 3].astype(int) - expected.astype(int)).max() <= 1


def test_auto_tile_follows_free_memory(tiny_drn, monkeypatch):
    upscaler = Upscaler(tiny_drn, tile="auto")
    monkeypatch.setattr(inference.memory, "available_memory", lambda device: 10**12)
    assert upscaler.tile_for(500, 500) is None
    monkeypatch.setattr(inference.memory, "available_memory", lambda device: 64 * 1024**2)
    tile = upscaler.tile_for(4000, 4000)
    assert tile is not None and 32 <= tile < 4000
    # the planned window fits the budget it was planned for
    window = tile + 2 * upscaler.tile_pad
    assert window * window * upscaler.bytes_per_lr_pixel <= 64 * 1024**2 * inference.upscaler._AUTO_MEMORY_FRACTION * 1.1


def test_pil_rgba_keeps_mode_and_alpha(tiny_drn):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (12, 10, 4), dtype=np.uint8), "RGBA")
    out = Upscaler(tiny_drn).upscale(image)
    assert out.mode == "RGBA" and out.size == (40, 48)
    alpha = torch.from_numpy(np.asarray(image)[:, :, 3].astype(np.float64))[None]
    expected = imresize(alpha, SCALE, round_uint8=True)[0].numpy()
    assert np.abs(np.asarray(out)[:, :, 3].astype(int) - expected).max() <= 1


def test_grayscale_round_trip_is_channel_mean_of_rgb_run(tiny_drn):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (11, 13), dtype=np.uint8)
    upscaler = Upscaler(tiny_drn)
    out = upscaler.upscale(Image.fromarray(gray, "L"))
    assert out.mode == "L" and out.size == (52, 44)
    out_np = upscaler.upscale(gray)
    assert out_np.shape == (44, 52) and out_np.dtype == np.uint8
    rgb = torch.from_numpy(gray.astype(np.float32))[None].expand(3, -1, -1)
    colour = upscaler.upscale_planes(rgb, fmt=FORMAT_FLOAT255)
    expected = np.floor(np.clip(colour.mean(axis=2), 0, 255) + 0.5)
    assert np.abs(out_np.astype(int) - expected).max() <= 1
    assert np.array_equal(np.asarray(out), out_np)


def test_16bit_round_trip_keeps_depth_and_precision(tiny_drn):
    rng = np.random.default_rng(2)
    deep = rng.integers(0, 65536, (9, 12), dtype=np.uint16)
    upscaler = Upscaler(tiny_drn)
    out = upscaler.upscale(deep)
    assert out.dtype == np.uint16 and out.shape == (36, 48)
    # the same image at 8 bits gives the same picture within the 8-bit quantisation
    via8 = upscaler.upscale(np.round(deep / 257).astype(np.uint8)).astype(float) * 257
    assert np.abs(out.astype(float) - via8).mean() < 257 * 2
    assert len(np.unique(out % 257)) > 10  # not merely 8-bit values scaled up
    pil16 = upscaler.upscale(Image.fromarray(deep))
    assert pil16.mode in ("I;16", "I") and pil16.size == (48, 36)
    assert np.array_equal(np.asarray(pil16).astype(np.uint16), out)


def test_pil_numpy_and_tensor_inputs_agree(tiny_drn):
    rng = np.random.default_rng(3)
    array = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    upscaler = Upscaler(tiny_drn)
    from_numpy = upscaler.upscale(array)
    from_pil = np.asarray(upscaler.upscale(Image.fromarray(array)))
    tensor = torch.from_numpy(array).permute(2, 0, 1).float()
    from_tensor = upscaler.upscale(tensor)
    from_uint8_tensor = upscaler.upscale(torch.from_numpy(array).permute(2, 0, 1).contiguous())
    from_batch = upscaler.upscale(torch.stack([tensor, tensor]))
    from_float01 = upscaler.upscale(array.astype(np.float32) / 255)
    assert from_numpy.shape == (40, 56, 3) and from_numpy.dtype == np.uint8
    assert np.array_equal(from_numpy, from_pil)
    assert from_tensor.shape == (3, 40, 56) and from_tensor.dtype == torch.float32
    assert np.abs(from_tensor.permute(1, 2, 0).numpy() - from_numpy).max() <= 0.5 + 1e-4
    assert from_uint8_tensor.dtype == torch.uint8
    assert np.array_equal(from_uint8_tensor.permute(1, 2, 0).numpy(), from_numpy)
    assert from_batch.shape == (2, 3, 40, 56) and torch.equal(from_batch[0], from_tensor)
    assert from_float01.dtype == np.float32 and np.abs(from_float01 * 255 - from_numpy).max() <= 0.5 + 1e-3


def test_pil_exif_orientation_is_applied(tiny_drn):
    image = Image.fromarray(np.zeros((8, 12, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90: the upright image is 12 high, 8 wide
    image.info["exif"] = exif.tobytes()
    image = Image.open(_roundtrip_jpeg(image, exif))
    assert Upscaler(tiny_drn).upscale(image).size == (32, 48)


def _roundtrip_jpeg(image: Image.Image, exif):
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    buffer.seek(0)
    return buffer


def test_bfloat16_stays_close_to_float32(tiny_drn):
    image = smooth_image(12, 12)
    full = Upscaler(tiny_drn).upscale_planes(image).astype(int)
    tiny_bf16 = create_model("drn-t", SCALE, n_blocks=1, n_feats=4)
    tiny_bf16.load_state_dict(tiny_drn.state_dict())
    low = Upscaler(tiny_bf16, dtype="bf16").upscale_planes(image).astype(int)
    assert np.abs(full - low).mean() < 3


def test_weights_give_the_scale_and_architecture(tmp_path):
    torch.manual_seed(0)
    model = create_model("drn-t", 2, n_blocks=1, n_feats=4)
    path = save_weights(model, tmp_path / "t2.safetensors")
    upscaler = Upscaler("drn-t", weights=path)
    assert upscaler.scale == 2 and upscaler.model.n_blocks == 1
    x = smooth_image(6, 6)
    assert np.array_equal(upscaler.upscale_planes(x), Upscaler(model).upscale_planes(x))


def test_named_model_without_weights_is_refused():
    with pytest.raises(ValueError, match="needs weights"):
        Upscaler("drn-s")


def test_shipped_default_model_loads_strictly():
    from dualsr.weights import default_weights

    try:
        shipped = default_weights()
    except FileNotFoundError:
        pytest.skip("the default weights are not in this checkout yet")
    upscaler = Upscaler()  # loads strictly or raises
    assert upscaler.scale == shipped.scale
    assert shipped.path.stat().st_size < 2 * 1024**2
    out = upscaler.upscale(np.full((8, 8, 3), 128, np.uint8))
    assert out.shape == (8 * shipped.scale, 8 * shipped.scale, 3)


def test_default_weights_come_from_the_file_metadata(tmp_path, monkeypatch):
    import dualsr.weights as shipped_weights

    monkeypatch.setattr(shipped_weights, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="not installed"):
        shipped_weights.default_weights()
    save_weights(create_model("drn-t", SCALE, n_blocks=2, n_feats=4),
                 tmp_path / f"{shipped_weights.DEFAULTS[SCALE]}.safetensors")
    from_metadata = shipped_weights.default_weights()
    assert (from_metadata.model, from_metadata.scale) == ("drn-t", 4)
    assert from_metadata.config == {"n_blocks": 2, "n_feats": 4, "widths": None}
    upscaler = Upscaler()  # no model given: the shipped one, loaded strictly
    assert upscaler.name == "drn-t" and upscaler.model.n_blocks == 2


def test_default_model_is_chosen_by_scale(tmp_path, monkeypatch):
    import dualsr.weights as shipped_weights

    monkeypatch.setattr(shipped_weights, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(shipped_weights, "DEFAULTS", {4: "small_x4", 2: "small_x2"})
    save_weights(create_model("drn-t", 4, n_blocks=1, n_feats=4), tmp_path / "small_x4.safetensors")
    save_weights(create_model("drn-t", 2, n_blocks=2, n_feats=4), tmp_path / "small_x2.safetensors")
    assert Upscaler().scale == 4  # no scale asked for: x4
    x2 = Upscaler(scale=2)
    assert x2.scale == 2 and x2.model.n_blocks == 2
    assert Upscaler("drn-t", scale=2).model.n_blocks == 2  # a name that matches the default needs no weights
    with pytest.raises(FileNotFoundError, match="no default model ships for x3"):
        Upscaler(scale=3)
