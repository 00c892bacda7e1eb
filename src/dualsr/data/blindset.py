"""Blind test sets that regenerate bit for bit: HR images + degraded LR + kernels + a manifest.

`make_blind_set(data, out, scale, degradation, seed)` writes

    OUT/HR/<name>.png               the modcropped HR image (8-bit; gray stays gray)
    OUT/LR/X<s>/<name>x<s>.png      its LR image (blur, MATLAB bicubic x1/s, uint8; stages if any)
    OUT/kernels/<name>.npy          the kernel used (float64, sums to 1)
    OUT/manifest.json               the degradation options, the seed, and one row per image:
                                    file, index, sigma_x, sigma_y, theta, seed, sha256 of the LR

Image i (sorted by name) draws its kernel (and noise / JPEG quality) from
numpy.random.default_rng([seed, i]), so `check_blind_set(OUT)` re-derives every kernel and LR
image from the HR images and the manifest and compares them (sha256 of the uint8 pixels, H x W x 3
row-major; kernels exactly). The whole folder is built under a temporary name beside OUT and
renamed at the end: a failure leaves nothing behind. `dualsr test --data OUT` reads the LR images
from OUT/LR/X<s> (see `dualsr.data.benchmark`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from dualsr.data.degrade import Degradation, load_kernel, modcrop, parse_degradation, save_kernel
from dualsr.data.imageio import ImageReadError, is_image_name, read_image, write_array
from dualsr.fileio import current_umask, write_text_atomic

MANIFEST = "manifest.json"
FORMAT = "dualsr-blind-set/1"


class BlindSetError(Exception):
    """A problem with the inputs or the folder; a one-line message."""


def pixels_sha256(image: torch.Tensor) -> str:
    """sha256 of a (3, H, W) 0-255 image as uint8 H x W x 3 row-major bytes (values are rounded first)."""
    array = torch.floor(image.detach().cpu().double().clamp(0, 255) + 0.5).to(torch.uint8).permute(1, 2, 0)
    return hashlib.sha256(np.ascontiguousarray(array.numpy()).tobytes()).hexdigest()


def _to_hwc_uint8(image: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(
        torch.floor(image.double().clamp(0, 255) + 0.5).to(torch.uint8).permute(1, 2, 0).numpy())


def source_images(data: str | os.PathLike) -> list[Path]:
    """The image files of a set folder (its HR/ subfolder if any); a non-image file is an error."""
    root = Path(data)
    if not root.exists():
        raise BlindSetError(f"{root}: no such folder")
    if not root.is_dir():
        raise BlindSetError(f"{root}: not a folder")
    folder = root / "HR" if (root / "HR").is_dir() else root
    files = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.is_dir():
            continue
        if not is_image_name(entry):
            raise BlindSetError(f"{entry}: not an image file (unknown extension); remove it or point --data "
                                "at a folder of images only")
        files.append(entry)
    if not files:
        raise BlindSetError(f"{folder}: no image files in this folder")
    return files


def _read_hr(path: Path, scale: int, degradation: Degradation) -> tuple[torch.Tensor, bool]:
    try:
        loaded = read_image(path)
    except ImageReadError as exc:
        raise BlindSetError(f"{exc.path}: {exc.reason}") from None
    hr = torch.floor(modcrop(loaded.rgb, scale).double().clamp(0, 255) + 0.5)
    h, w = hr.shape[-2:]
    need = max(degradation.size, 2 * scale)
    if min(h, w) < need or (degradation.size > 1 and min(h, w) <= degradation.size // 2):
        raise BlindSetError(f"{path}: {loaded.width}x{loaded.height} pixels is smaller than the "
                            f"{degradation.size}x{degradation.size} kernel (or x{scale} needs more)")
    return hr, bool(loaded.grayscale)


def _degrade_one(hr: torch.Tensor, degradation: Degradation, scale: int, seed: int, index: int):
    rng = np.random.default_rng([seed, index])
    kernels, params = degradation.sample_kernels(rng, 1)
    lr = degradation.apply(hr[None], kernels, scale, rng)[0]
    return lr, kernels[0], params[0]


def make_blind_set(data: str | os.PathLike, out: str | os.PathLike, scale: int,
                   degradation: Degradation | dict | str, seed: int = 0, progress=None) -> dict:
    """Write a blind set (see the module docstring) and return its manifest."""
    if not isinstance(degradation, Degradation):
        degradation = parse_degradation(degradation)
    if degradation.is_bicubic:
        raise BlindSetError("a blind set needs a blur kernel (aniso, iso, bd or delta), not bicubic")
    if int(scale) != scale or scale < 2:
        raise BlindSetError(f"--scale must be an integer >= 2, got {scale}")
    out = Path(out)
    if out.exists():
        raise BlindSetError(f"{out}: already exists; choose another --out or remove it")
    files = source_images(data)
    # read and check every image before writing anything
    images = [(path, *_read_hr(path, scale, degradation)) for path in files]
    stems = [p.stem for p in files]
    if len(set(stems)) != len(stems):
        raise BlindSetError(f"{data}: two images share a name ({', '.join(sorted({s for s in stems if stems.count(s) > 1}))})")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part"))
    try:
        lr_dir = tmp / "LR" / f"X{scale}"
        for sub in (tmp / "HR", lr_dir, tmp / "kernels"):
            sub.mkdir(parents=True)
        rows = []
        for index, (path, hr, gray) in enumerate(images):
            lr, kernel, params = _degrade_one(hr, degradation, scale, seed, index)
            name = path.stem
            array = _to_hwc_uint8(hr)
            write_array(tmp / "HR" / f"{name}.png", array[:, :, :1] if gray else array)
            write_array(lr_dir / f"{name}x{scale}.png", _to_hwc_uint8(lr))
            save_kernel(kernel, tmp / "kernels" / f"{name}.npy")
            rows.append({"file": f"HR/{name}.png", "lr": f"LR/X{scale}/{name}x{scale}.png",
                         "kernel": f"kernels/{name}.npy", "index": index, "source": path.name,
                         "sigma_x": params["sigma_x"], "sigma_y": params["sigma_y"], "theta": params["theta"],
                         "seed": seed, "sha256": pixels_sha256(lr), "hr_sha256": pixels_sha256(hr)})
            if progress is not None:
                progress(index + 1, len(images), name)
        manifest = {"format": FORMAT, "scale": int(scale), "seed": int(seed), "degradation": degradation.options,
                    "rng": "numpy.random.default_rng([seed, index])", "source": str(Path(data)),
                    "sha256": "of the uint8 pixels, H x W x 3 row-major", "images": rows}
        write_text_atomic(tmp / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        os.chmod(tmp, 0o777 & ~current_umask())
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def read_manifest(folder: str | os.PathLike) -> dict:
    path = Path(folder) / MANIFEST
    if not Path(folder).is_dir():
        raise BlindSetError(f"{folder}: no such folder")
    if not path.is_file():
        raise BlindSetError(f"{folder}: no {MANIFEST} (not a folder written by `dualsr degrade`)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BlindSetError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BlindSetError(f"{path}: not a {FORMAT} manifest")
    return manifest


def check_blind_set(folder: str | os.PathLike) -> tuple[int, list[str]]:
    """(images checked, problems): re-derive every kernel and LR image from HR + manifest and compare."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    degradation = parse_degradation(manifest["degradation"])
    scale, problems = int(manifest["scale"]), []
    for row in manifest["images"]:
        try:
            hr = torch.floor(read_image(folder / row["file"]).rgb.double() + 0.5)
            on_disk = read_image(folder / row["lr"]).rgb
            saved_kernel = load_kernel(folder / row["kernel"])
        except (ImageReadError, OSError, ValueError) as exc:
            problems.append(f"{row['file']}: cannot read ({getattr(exc, 'reason', exc)})")
            continue
        if pixels_sha256(hr) != row["hr_sha256"]:
            problems.append(f"{row['file']}: HR pixels differ from the manifest")
            continue
        lr, kernel, params = _degrade_one(hr, degradation, scale, int(row["seed"]), int(row["index"]))
        if not torch.equal(kernel, saved_kernel):
            problems.append(f"{row['kernel']}: the kernel re-derived from the manifest differs")
        if any(abs(params[k] - row[k]) > 0 for k in ("sigma_x", "sigma_y", "theta")):
            problems.append(f"{row['file']}: kernel parameters differ from the manifest")
        if pixels_sha256(lr) != row["sha256"]:
            problems.append(f"{row['lr']}: the LR re-derived from HR and the manifest differs (sha256)")
        if pixels_sha256(on_disk) != row["sha256"]:
            problems.append(f"{row['lr']}: the LR file differs from the manifest (sha256)")
    return len(manifest["images"]), problems


__all__ = ["BlindSetError", "MANIFEST", "check_blind_set", "make_blind_set", "pixels_sha256", "read_manifest",
           "source_images"]
