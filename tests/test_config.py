"""Training options: YAML over defaults, dotted overrides, unknown keys rejected by name."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dualsr.config import DEFAULTS, ConfigError, dump_config, load_config, resolve

REPO = Path(__file__).resolve().parents[1]


def test_overrides_use_dotted_keys_and_yaml_scalars():
    config = resolve({"name": "x"}, ["train.total_iter=1000", "train.optim_g.lr=2e-4", "network_g.n_feats=8",
                                     "datasets.train.dataroot=[a, b]", "train.amp=bf16", "val.save_best=false"])
    assert config["train"]["total_iter"] == 1000
    assert config["train"]["optim_g"]["lr"] == pytest.approx(2e-4)
    assert config["train"]["optim_g"]["betas"] == [0.9, 0.999]  # sibling defaults survive
    assert config["network_g"] == {"type": "drn-s", "n_feats": 8}
    assert config["datasets"]["train"]["dataroot"] == ["a", "b"]
    assert config["train"]["amp"] == "bf16"
    assert config["val"]["save_best"] is False


def test_unknown_key_in_file_or_override_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.totl_iter"):
        resolve({}, ["train.totl_iter=5"])
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndatasets:\n  train:\n    gt_sise: 96\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*datasets\.train\.gt_sise"):
        load_config(path)


def test_wrong_types_and_malformed_overrides_are_errors():
    with pytest.raises(ConfigError, match="integer"):
        resolve({}, ["train.total_iter=abc"])
    with pytest.raises(ConfigError, match="key=value"):
        resolve({}, ["train.total_iter"])
    with pytest.raises(ConfigError, match="multiple of scale"):
        resolve({"scale": 4, "datasets": {"train": {"gt_size": 30}}})
    with pytest.raises(ConfigError, match="amp"):
        resolve({}, ["train.amp=fp8"])


def test_defaults_are_not_mutated_by_resolving():
    before = yaml.safe_dump(DEFAULTS)
    resolve({"network_g": {"type": "drn-t", "n_feats": 4}}, ["train.optim_g.lr=1"])
    assert yaml.safe_dump(DEFAULTS) == before


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_resolved_config_round_trips_through_yaml():
    config = resolve({"name": "x"}, ["scale=8", "datasets.train.gt_size=64"])
    assert config["val"]["crop_border"] == 8  # derived default: crop the scale
    assert resolve(yaml.safe_load(dump_config(config))) == config


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_resolve(path):
    config = load_config(path)
    assert config["name"] and config["network_g"]["type"]
    assert config["datasets"]["train"]["gt_size"] % config["scale"] == 0


def test_cli_prints_the_resolved_config(capsys):
    from dualsr.cli import main

    assert main(["train", "-c", str(REPO / "configs" / "drn_t_x4.yaml"), "--print-config", "seed=5"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == load_config(REPO / "configs" / "drn_t_x4.yaml", ["seed=5"])


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_build_their_model_and_schedule(path):
    import torch

    from dualsr.models import create_model
    from dualsr.train.schedule import make_schedule

    config = load_config(path)
    options = dict(config["network_g"])
    with torch.device("meta"):
        model = create_model(options.pop("type"), config["scale"], **options)
    assert model.spec.patch_problem(config["datasets"]["train"]["gt_size"], config["scale"]) == ""
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=config["train"]["optim_g"]["lr"])
    schedule = make_schedule(optimizer, config["train"]["scheduler"], config["train"]["total_iter"])
    assert 0 < schedule.rate(1.0, config["train"]["total_iter"]) <= 1.0
