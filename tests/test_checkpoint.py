"""Weights I/O: official layouts load strictly, mismatches name the cause, pickled code is refused."""
from __future__ import annotations

import os

import pytest
import torch

from dualsr.checkpoint import (
    UnsafeCheckpointError,
    WeightsMismatchError,
    load,
    load_weights,
    read_metadata,
    save_weights,
)
from dualsr.models import create_dual, create_model
from dualsr.models.drn import full_widths


def _official_drn_s_x4_state() -> dict[str, torch.Tensor]:
    """A DRN-S x4 state dict written from the key layout and shapes of issue 3, not from our model."""
    sd: dict[str, torch.Tensor] = {}

    def conv(key, out_ch, in_ch, k, bias=True):
        sd[f"{key}.weight"] = torch.randn(out_ch, in_ch, k, k)
        if bias:
            sd[f"{key}.bias"] = torch.randn(out_ch)

    conv("sub_mean", 3, 3, 1)
    conv("head", 16, 3, 3)
    for p, c in enumerate((16, 32)):
        conv(f"down.{p}.dual_module.0.0", c, c, 3, bias=False)
        conv(f"down.{p}.dual_module.1", 2 * c, c, 3, bias=False)
    for i, skip in enumerate((32, 16)):
        for k in range(30):
            conv(f"up_blocks.{i}.{k}.body.0", 64, 64, 3)
            conv(f"up_blocks.{i}.{k}.body.2", 64, 64, 3)
            conv(f"up_blocks.{i}.{k}.body.3.conv_du.0", 4, 64, 1)
            conv(f"up_blocks.{i}.{k}.body.3.conv_du.2", 64, 4, 1)
        conv(f"up_blocks.{i}.30.0", 256, 64, 3)
        conv(f"up_blocks.{i}.31", skip, 64, 1)
    for j, c in enumerate((64, 64, 32)):
        conv(f"tail.{j}", 3, c, 3)
    conv("add_mean", 3, 3, 1)
    return sd


def test_official_key_layout_loads_strictly_from_pt(tmp_path):
    sd = _official_drn_s_x4_state()
    torch.save(sd, tmp_path / "DRNS4x.pt")
    model = load_weights(create_model("drn-s", 4), tmp_path / "DRNS4x.pt")
    assert torch.equal(model.up_blocks[1][30][0].weight, sd["up_blocks.1.30.0.weight"])


def test_official_dual_list_loads_into_module_list(tmp_path):
    duals_sd = [{"dual_module.0.0.weight": torch.randn(16, 3, 3, 3), "dual_module.1.weight": torch.randn(3, 16, 3, 3)}
                for _ in range(2)]
    torch.save(duals_sd, tmp_path / "DRNS4x_dual_model.pt")
    duals = load_weights(create_dual("drn-s", 4), tmp_path / "DRNS4x_dual_model.pt")
    assert torch.equal(duals[1].dual_module[1].weight, duals_sd[1]["dual_module.1.weight"])


def test_basicsr_prefers_params_ema_and_strips_dataparallel_prefix(tmp_path):
    src, other = create_model("drn-t", 2), create_model("drn-t", 2)
    wrapped = {"params": other.state_dict(), "params_ema": {f"module.{k}": v for k, v in src.state_dict().items()}}
    torch.save(wrapped, tmp_path / "net_g.pth")
    model = load_weights(create_model("drn-t", 2), tmp_path / "net_g.pth")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), src.state_dict().values()))


def test_x8_weights_into_x4_model_name_the_scale():
    with pytest.raises(WeightsMismatchError, match=r"wrong scale.*x8.*x4") as info:
        load_weights(create_model("drn-s", 4), create_model("drn-s", 8).state_dict())
    assert "\n" not in str(info.value)


def test_drn_l_weights_into_drn_s_name_the_preset():
    with torch.device("meta"):
        big = create_model("drn-l", 4).state_dict()
    with pytest.raises(WeightsMismatchError, match=r"wrong preset.*drn-l x4.*drn-s x4") as info:
        load_weights(create_model("drn-s", 4), big)
    assert "\n" not in str(info.value)


def test_pruned_weights_into_full_model_name_the_widths():
    widths = full_widths(4, 4, 8)
    widths[3] = 20
    with pytest.raises(WeightsMismatchError, match=r"wrong widths.*position 3: file 20 vs model 32"):
        load_weights(create_model("drn-t", 4), create_model("drn-t", 4, widths=widths).state_dict())


def test_missing_and_unexpected_keys_are_listed():
    sd = create_model("drn-t", 2).state_dict()
    sd.pop("head.bias")
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightsMismatchError, match=r"1 missing keys: head.bias; 1 unexpected keys: extra.weight"):
        load_weights(create_model("drn-t", 2), sd)
    load_weights(create_model("drn-t", 2), sd, strict=False)  # tolerated when asked


def test_dual_list_of_other_scale_is_refused():
    with pytest.raises(WeightsMismatchError, match="wrong scale"):
        load_weights(create_dual("drn-t", 4), [d.state_dict() for d in create_dual("drn-t", 8)])


def test_safetensors_round_trip_keeps_weights_and_width_config(tmp_path):
    widths = full_widths(4, 2, 8)
    widths[0] = 4
    model = create_model("drn-t", 4, n_blocks=2, widths=widths)
    path = save_weights(model, tmp_path / "sub" / "pruned.safetensors", metadata={"iteration": 7})
    assert read_metadata(path)["iteration"] == "7" and read_metadata(path)["model"] == "drn-t"
    assert [p.name for p in path.parent.iterdir()] == ["pruned.safetensors"]  # no temp file left
    rebuilt = load(path).model  # name, scale, n_blocks and widths come from the file
    x = torch.rand(1, 3, 5, 4) * 255
    assert torch.equal(rebuilt(x)[-1], model(x)[-1])
    duals = create_dual(model, 4)
    save_weights(duals, tmp_path / "duals.safetensors")
    again = load_weights(create_dual(model, 4), tmp_path / "duals.safetensors")
    assert torch.equal(again[1].dual_module[0][0].weight, duals[1].dual_module[0][0].weight)


def test_failed_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    import dualsr.fileio

    path = tmp_path / "w.safetensors"
    save_weights({"a": torch.ones(2)}, path)

    def crash_midway(fd):  # the new bytes are written, then the disk fails before the rename
        raise OSError("disk full")

    monkeypatch.setattr(dualsr.fileio.os, "fsync", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_weights({"a": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(load_weights(torch.nn.ParameterDict({"a": torch.nn.Parameter(torch.zeros(2))}), path)["a"],
                       torch.ones(2))
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors"]


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_pickled_checkpoint_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"head.weight": torch.zeros(1), "x": _Payload()}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"evil.pt: refused: .*pickle that needs code"):
        load_weights(create_model("drn-t", 2), path)
