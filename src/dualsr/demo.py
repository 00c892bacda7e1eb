"""`python -m dualsr.demo --out DIR`: the main job end to end on an image the demo draws itself.

The ground truth is procedural (text, stripes of rising frequency, circles, a colour gradient),
so the demo needs no dataset and no download. It is downscaled x4 with the MATLAB bicubic (the
degradation every SR paper uses), written as the LR input, upscaled by the default model through
the same code path as `dualsr upscale`, and compared with the ground truth: PSNR on Y with a
4-pixel border crop, the papers' convention. A side-by-side PNG shows input (nearest),
bicubic, the model and the ground truth with their PSNRs.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

SCALE = 4


def ground_truth(width: int = 384, height: int = 256) -> Image.Image:
    """A deterministic RGB test card: gradient, stripes, circles, a checkerboard and text."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    canvas = np.stack([
        60 + 150 * x / width,
        80 + 120 * y / height,
        200 - 140 * (x + y) / (width + height),
    ], axis=-1)
    # Stripes of rising frequency (a chirp from 0 to 1/4 cycle per HR pixel): the LR image can
    # hold the left half (below its Nyquist limit of 1/8), the right half aliases.
    band = (y >= 150) & (y < 200)
    chirp = 0.5 + 0.5 * np.cos(2 * math.pi * 0.25 * x**2 / (2 * width))
    canvas[band] = (40 + 200 * chirp[band])[:, None]
    # Checkerboard patch.
    checker = ((x // 8 + y // 8) % 2 == 0) & (x >= 300) & (y >= 20) & (y < 140) & (x < 372)
    canvas[checker] = (250, 250, 240)
    canvas[((x >= 300) & (y >= 20) & (y < 140) & (x < 372)) & ~checker] = (20, 30, 60)
    image = Image.fromarray(np.clip(canvas, 0, 255).round().astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for i, radius in enumerate((44, 32, 20, 8)):
        colour = [(230, 60, 40), (250, 220, 60), (30, 120, 220), (250, 250, 250)][i]
        draw.ellipse((70 - radius, 90 - radius, 70 + radius, 90 + radius), outline=colour, width=3)
    draw.line((130, 140, 280, 30), fill=(10, 10, 10), width=2)
    draw.line((130, 30, 280, 140), fill=(255, 255, 255), width=1)
    font = ImageFont.load_default(size=30)
    draw.text((140, 40), "dualsr", fill=(15, 15, 35), font=font)
    draw.text((140, 80), "x4 SR", fill=(240, 240, 255), font=ImageFont.load_default(size=22))
    draw.text((12, 212), "The quick brown fox jumps over the lazy dog 0123456789",
              fill=(0, 0, 0), font=ImageFont.load_default(size=13))
    draw.text((12, 232), "small text: dual regression closes the loop",
              fill=(255, 255, 230), font=ImageFont.load_default(size=10))
    return image


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1).contiguous()


def _to_image(tensor: torch.Tensor) -> Image.Image:
    array = torch.floor(tensor.clamp(0, 255) + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array, "RGB")


def side_by_side(panels: list[tuple[str, Image.Image]], title: str) -> Image.Image:
    """Panels in a row, each with its label above, and a title line on top."""
    font = ImageFont.load_default(size=14)
    width, height = panels[0][1].size
    gap, label_h, title_h = 8, 22, 26
    sheet = Image.new("RGB", (len(panels) * width + (len(panels) + 1) * gap, title_h + label_h + height + gap),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((gap, 5), title, fill=(0, 0, 0), font=font)
    for i, (label, image) in enumerate(panels):
        left = gap + i * (width + gap)
        draw.text((left, title_h), label, fill=(0, 0, 0), font=font)
        sheet.paste(image, (left, title_h + label_h))
    return sheet


def run_demo(out_dir: Path, model: str | None = None, weights: str | None = None) -> dict[str, float]:
    """Write the demo images under `out_dir`; return the PSNRs (dB) it measured."""
    from dualsr.data.imageio import write_image
    from dualsr.data.resize import imresize
    from dualsr.inference import Upscaler
    from dualsr.metrics import psnr
    from dualsr.weights import DefaultWeightsMissing

    out_dir.mkdir(parents=True, exist_ok=True)
    hr_image = ground_truth()
    hr = _to_tensor(hr_image)
    lr = imresize(hr.double(), 1 / SCALE, round_uint8=True).float()
    paths = {
        "ground truth": write_image(out_dir / "ground_truth.png", hr),
        "input": write_image(out_dir / "input_lr.png", lr),
    }
    bicubic = imresize(lr.double(), SCALE, round_uint8=True).float()
    scores = {"bicubic": psnr(bicubic, hr, crop_border=SCALE)}
    nearest = lr.repeat_interleave(SCALE, dim=1).repeat_interleave(SCALE, dim=2)
    panels = [("input (nearest x4)", _to_image(nearest)),
              (f"bicubic  {scores['bicubic']:.2f} dB", _to_image(bicubic))]
    try:
        upscaler = Upscaler(model=model, weights=weights, tile="auto")
    except DefaultWeightsMissing as exc:
        print(f"dualsr demo: the default model is not installed ({exc.args[0].split(': ', 1)[0]}); "
              "showing bicubic only", file=sys.stderr)
        upscaler = None
    if upscaler is not None:
        if upscaler.scale != SCALE:
            raise SystemExit(f"dualsr demo: needs a x{SCALE} model, got x{upscaler.scale}")
        # the same path as `dualsr upscale`: read the LR file, upscale, write atomically
        paths["upscaled"] = upscaler.upscale_file(paths["input"], out_dir / f"upscaled_x{SCALE}.png")
        sr = _to_tensor(Image.open(paths["upscaled"]))
        scores[upscaler.name] = psnr(sr, hr, crop_border=SCALE)
        panels.append((f"{upscaler.name}  {scores[upscaler.name]:.2f} dB", _to_image(sr)))
    else:
        paths["upscaled (bicubic)"] = write_image(out_dir / f"upscaled_x{SCALE}_bicubic.png", bicubic)
    panels.append(("ground truth", hr_image))
    title = f"x{SCALE} super-resolution of a {lr.shape[-1]}x{lr.shape[-2]} input; PSNR on Y, {SCALE}-pixel border crop"
    sheet_path = out_dir / "side_by_side.png"
    side_by_side(panels, title).save(sheet_path)
    paths["side by side"] = sheet_path
    for label, path in paths.items():
        print(f"{label:>20}: {path}")
    for label, value in scores.items():
        print(f"{'PSNR ' + label:>20}: {value:.2f} dB")
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dualsr.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    parser.add_argument("--model", help="registry name (default: the shipped model)")
    parser.add_argument("--weights", help="weights file for --model")
    args = parser.parse_args(argv)
    run_demo(Path(args.out), args.model, args.weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
