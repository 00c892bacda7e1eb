"""What must hold on every device: each test takes `device` and runs on the CPU, and on CUDA too
where there is one (scripts/gpu_check.sh runs the suite on a GPU machine)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dualsr.data.resize import imresize
from dualsr.evaluate import evaluate
from dualsr.inference import FORMAT_UINT8, Upscaler
from dualsr.models import create_dual, create_model
from dualsr.models.spec import sr_image
from dualsr.objective import model_loss

# small architectures of each family: the device behaviour, not the size, is under test
SMALL = {
    "drn-t": {"n_blocks": 1, "n_feats": 4},
    "rlfn": {"n_feats": 8, "n_blocks": 2, "esa_width": 4},
    "swinir-light": {"embed_dim": 12, "depths": [2], "num_heads": [2], "img_size": 16},
}


def _model(name: str, scale: int = 4):
    torch.manual_seed(0)
    return create_model(name, scale, **SMALL[name]).eval()


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    planes = [127 + 100 * np.sin(0.21 * yy + 0.13 * xx + c) + rng.normal(0, 8, (h, w)) for c in range(3)]
    return torch.from_numpy(np.stack(planes).clip(0, 255).round().astype(np.float32))


def test_imresize_matches_the_cpu_result(device):
    x = torch.rand(2, 3, 37, 29, dtype=torch.float64) * 255
    for scale in (0.25, 0.5, 3):
        ref = imresize(x, scale)
        got = imresize(x.to(device), scale).cpu()
        assert torch.allclose(got, ref, atol=1e-9), scale


@pytest.mark.parametrize("name", sorted(SMALL))
def test_models_give_the_cpu_output(name, device):
    model = _model(name)
    x = _image(20, 24)[None]
    with torch.inference_mode():
        ref = sr_image(model, x)
        got = sr_image(model.to(device), x.to(device)).cpu()
    assert got.shape == ref.shape
    assert (got - ref).abs().max() < 1e-2  # TF32/cuDNN algorithm differences, on the 0-255 scale


@pytest.mark.parametrize("name", ["drn-t", "rlfn"])
def test_tiled_upscale_on_device_equals_untiled_cpu(name, device):
    model = _model(name)
    rgb = _image(40, 36)
    reference = Upscaler(model=model, device="cpu", tile=None).upscale_planes(rgb, fmt=FORMAT_UINT8)
    upscaler = Upscaler(model=_model(name), device=device, tile=16)
    with pytest.warns(UserWarning) if not upscaler.exact_tiling else _no_warning():
        tiled = upscaler.upscale_planes(rgb, fmt=FORMAT_UINT8)
    difference = np.abs(tiled.astype(int) - reference.astype(int)).max()
    if upscaler.exact_tiling:
        assert difference <= 1
    else:  # approximate models: only that tiling runs on the device and stays in range
        assert tiled.shape == reference.shape


class _no_warning:
    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_upscale_is_finite_and_close(dtype, device):
    if device.type == "cpu" and dtype == torch.float16:
        pytest.skip("float16 is a CUDA precision (`upscale --half` refuses the CPU)")
    rgb = _image(24, 20)
    full = Upscaler(model=_model("drn-t"), device=device).upscale_planes(rgb, fmt=FORMAT_UINT8)
    reduced = Upscaler(model=_model("drn-t"), device=device, dtype=dtype).upscale_planes(rgb, fmt=FORMAT_UINT8)
    assert reduced.max() > 0, "a black image"
    assert np.abs(reduced.astype(int) - full.astype(int)).mean() < 3


def test_dual_regression_step_on_device(device):
    model = create_model("drn-t", 4, n_blocks=1, n_feats=4).to(device)
    duals = create_dual(model).to(device)
    hr = _image(32, 32)[None].to(device)
    pyramid = [imresize(hr, 1 / 4), imresize(hr, 1 / 2), hr]
    loss = model_loss(model, duals, pyramid)["total"]
    loss.backward()
    grads = [p.grad for p in [*model.parameters(), *duals.parameters()]]
    assert torch.isfinite(loss) and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_evaluation_on_device_gives_the_cpu_figures(tmp_path, device):
    for i in range(2):
        Image.fromarray(_image(32, 28, seed=i).permute(1, 2, 0).numpy().astype(np.uint8)).save(tmp_path / f"{i}.png")
    model = _model("drn-t")
    (ref,) = evaluate(model, [tmp_path], 4, device="cpu")
    (got,) = evaluate(_model("drn-t"), [tmp_path], 4, device=device)
    assert abs(got.psnr - ref.psnr) < 0.01 and abs(got.ssim - ref.ssim) < 1e-4


def test_training_runs_a_few_iterations_with_bf16_and_channels_last(tmp_path, device):
    from dualsr.config import load_config
    from dualsr.train.trainer import Trainer
    from test_train import REPO, make_images, tiny_overrides

    data = make_images(tmp_path / "data")
    overrides = [o for o in tiny_overrides(data, tmp_path / "runs", total=4) if not o.startswith("device=")]
    config = load_config(REPO / "configs" / "drn_t_x4.yaml",
                         overrides + [f"device={device.type}", "train.amp=bf16", "train.channels_last=true"])
    trainer = Trainer(config)
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    assert next(trainer.step_module.parameters()).device.type == device.type
    assert summary is not None
