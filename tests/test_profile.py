"""Parameters and MACs as the DRN paper counts them, and the `dualsr profile` command."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dualsr.cli import main
from dualsr.models import create_dual, create_model
from dualsr.profile import count_dual_macs, count_macs, count_parameters


@pytest.mark.parametrize(
    "name,scale,paper_gmacs",
    [("drn-s", 4, 109.9), ("drn-l", 4, 224.8), ("drn-s", 8, 198.0), ("drn-l", 8, 366.5)],
)
def test_macs_at_lr_96_match_paper(name, scale, paper_gmacs):
    with torch.device("meta"):
        model = create_model(name, scale)
    assert abs(count_macs(model, (96, 96)) / 1e9 - paper_gmacs) <= 0.2


def test_macs_count_conv_multiply_adds_plus_bias_adds_only():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.PixelShuffle(2),
                          nn.Conv2d(2, 4, 1, groups=2, bias=False), nn.Flatten(), nn.Linear(4 * 10 * 12, 5))
    macs = count_macs(model, (5, 6))
    conv1 = 5 * 6 * 8 * (3 * 9 + 1)
    conv2 = 10 * 12 * 4 * 1  # grouped: 1 input channel per output
    linear = 5 * (480 + 1)
    assert macs == conv1 + conv2 + linear


def test_transposed_conv_counts_each_input_scattered_over_its_kernel():
    layer = nn.ConvTranspose2d(4, 6, 3, stride=2, bias=True)
    out_elements = 6 * 11 * 11  # (5 - 1) * 2 + 3 = 11
    assert count_macs(layer, (5, 5), in_channels=4) == 5 * 5 * 4 * 6 * 9 + out_elements


def test_macs_grow_linearly_with_pixels_except_channel_attention():
    model = create_model("drn-t", 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    (small, small_layers), (big, big_layers) = (count_macs(model, size, per_layer=True) for size in [(16, 16), (32, 32)])
    attention = [k for k in small_layers if "conv_du" in k]
    assert attention and all(small_layers[k] == big_layers[k] for k in attention)  # on pooled 1x1 maps
    per_pixel = [k for k in small_layers if k not in attention]
    assert all(4 * small_layers[k] == big_layers[k] for k in per_pixel)
    assert big - small == 3 * sum(small_layers[k] for k in per_pixel)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_parameter_and_dual_mac_helpers():
    duals = create_dual("drn-t", 8)
    assert count_parameters(duals) == 3 * 54 * 8
    # dual k reads the 2^(k+1)x output and writes half of it: 3 -> 8 channels then 8 -> 3
    per_pixel_out = 8 * 27 + 3 * 72
    with torch.device("meta"):
        primal = create_model("drn-t", 8)
    assert count_dual_macs(primal, duals, (4, 4)) == sum(per_pixel_out * (4 * 2**k) ** 2 for k in range(3))


def test_profile_cli_prints_primal_dual_and_both_operating_points(capsys):
    assert main(["profile", "--model", "drn-s", "--scale", "4"]) == 0
    out = capsys.readouterr().out
    assert "primal parameters: 4,804,065" in out
    assert "dual parameters:   1,728" in out
    assert "input LR 96x96 (WxH) -> output 384x384: primal 109.92 G" in out
    assert "input LR 320x180 (WxH) -> output 1280x720" in out


def test_profile_cli_rejects_weights_of_another_scale(tmp_path, capsys):
    from dualsr.checkpoint import save_weights

    save_weights(create_model("drn-t", 8), tmp_path / "x8.safetensors")
    code = main(["profile", "--model", "drn-t", "--scale", "4", "--weights", str(tmp_path / "x8.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and "wrong scale" in err and len(err.strip().splitlines()) == 1


def test_export_cli_converts_official_pt_with_duals(tmp_path, capsys):
    from dualsr.checkpoint import load_weights

    model, duals = create_model("drn-t", 4), create_dual("drn-t", 4)
    torch.save(model.state_dict(), tmp_path / "in.pt")
    torch.save([d.state_dict() for d in duals], tmp_path / "in_dual.pt")
    out = tmp_path / "out.safetensors"
    assert main(["export", "--model", "drn-t", "--scale", "4", "--weights", str(tmp_path / "in.pt"),
                 "--dual-weights", str(tmp_path / "in_dual.pt"), "-o", str(out)]) == 0
    again = load_weights(create_model("drn-t", 4), out)
    assert torch.equal(again.head.weight, model.head.weight)
    load_weights(create_dual("drn-t", 4), tmp_path / "out_dual.safetensors")


def test_a_closed_pipe_ends_the_command_without_a_traceback():
    import os
    import subprocess
    import sys

    # unbuffered, so that the lines after the first meet the closed pipe
    proc = subprocess.Popen([sys.executable, "-m", "dualsr", "profile", "--model", "drn-t", "--scale", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 141) and "Traceback" not in err
