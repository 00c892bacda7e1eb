"""Shared fixtures: the read-only ../shared folder (data and weights) when it exists."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with the reason when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: the shared data/weights folder is absent on this machine")
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models run fastest on one thread; on a shared 2-core machine extra threads only
    spin against other jobs (measured: 75 s vs 4 s for the training tests)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def _device_params():
    cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine "
                              "(scripts/gpu_check.sh runs these on a GPU)")
    return [pytest.param("cpu"), pytest.param("cuda", marks=cuda)]


@pytest.fixture(params=_device_params())
def device(request) -> torch.device:
    """The device a test runs on: every test that takes it runs on the CPU, and on CUDA when there is one."""
    return torch.device(request.param)


@pytest.fixture(scope="module")
def compress_data(tmp_path_factory):
    """Compression data (`dualsr.compress.common.load_data`, x4, 64px HR patches) from four smooth
    72x72 images: the tiny training set of the search, pruning and fine-tuning tests."""
    import numpy as np
    from PIL import Image

    from dualsr.compress.common import load_data

    folder = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(0)
    for i in range(4):
        coarse = rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((72, 72), Image.BICUBIC).save(folder / f"img{i}.png")
    return load_data(folder, 4, gt_size=64)
