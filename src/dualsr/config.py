"""Training options: BasicSR-style YAML merged over a schema of defaults, plus `key=value` overrides.

The schema below is the single list of known keys. A user file may only set keys that exist in
it (an unknown key is an error that names it, so a typo never silently falls back to a default);
the exceptions are the free-form mappings in `_FREE_FORM` (model constructor arguments), whose
contents are passed through. Files are read with `yaml.safe_load`: no tags, no code, no globals.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

import yaml


class ConfigError(ValueError):
    """A bad option: unknown key, wrong type, or a malformed override."""


# Every known option with its default. `None` means "unset" (any type is accepted then).
DEFAULTS: dict[str, Any] = {
    "name": None,  # experiment name -> experiments/<name>/
    "scale": 4,
    "seed": 0,
    "device": "auto",  # auto | cpu | cuda
    # CPU threads per process (null: torch's default, or cores / processes under torchrun). On a
    # shared CPU, 1 is much faster than oversubscribed threads that spin against other jobs.
    "num_threads": None,
    "network_g": {"type": "drn-s"},  # other keys are constructor kwargs of the model
    "network_dual": {},  # kwargs of create_dual (e.g. n_feats for a single-output primal)
    "path": {
        "experiments_root": "experiments",
        "pretrain_network_g": None,
        "pretrain_network_dual": None,
        "strict_load": True,
    },
    "datasets": {
        "train": {
            "dataroot": None,  # a folder or a list of folders of HR images (searched recursively)
            "gt_size": 384,  # HR patch side; a multiple of scale
            "batch_size": 32,  # total over all processes
            "use_hflip": True,
            "use_vflip": True,
            "use_transpose": True,
            "min_size": None,  # skip images smaller than this (default gt_size)
            # how the LR input is made from the HR patch, on the fly, seeded by (seed, rank, iteration):
            # {type: bicubic} (default: the cached MATLAB bicubic pyramid) or a blur kernel type
            # (aniso | iso | bd | delta) with its parameters; see dualsr.data.degrade.parse_degradation
            "degradation": {"type": "bicubic"},
        },
        # optional unlabelled LR images (no HR): they train through the dual term only, the paper's
        # adaptation setting (needs dual_weight > 0). A batch of datasets.train.batch_size samples holds
        # round(ratio * batch_size) unpaired LR patches (or batch_size of them when set) and paired HR
        # patches for the rest; the loss is the mean over the batch of each sample's own terms.
        "unpaired": {
            "dataroot": None,
            "ratio": 0.3,  # rho: the share of unpaired patches in each batch
            "batch_size": 0,  # if > 0: this many unpaired patches per batch (total over processes) instead of ratio
            "lr_size": None,  # LR patch side (default gt_size / scale, the paired LR patch side)
            # tap: the dual(s) whose output has the input's size (DRN: the dual on the 2x output; a
            # single-output model: its SR -> LR dual); chain: all duals chained from the final SR output
            "dual_path": "tap",
        },
        "val": {
            "holdout_every": 30,  # every k-th image of the sorted list is held out for validation
            "holdout_offset": 0,
            "max_images": None,
            "center_crop": None,  # HR side of a centre crop per image (bounds validation time)
        },
    },
    "train": {
        "total_iter": 1_000_000,
        "max_minutes": None,  # stop cleanly (checkpoint + weights) after this much training time
        # with max_minutes: the cosine follows max(iteration/total_iter, time/max_minutes), so a run cut
        # short by the budget still ends annealed (at the price of bitwise reproducibility)
        "time_annealing": False,
        "dual_weight": 0.1,  # lambda; 0 trains the no-dual baseline
        # the first N iterations update the duals only (the primal is held): a fresh dual next to a
        # trained primal (e.g. a released model with no dual) first learns SR -> LR, instead of
        # sending its random gradients into the primal. They count towards total_iter.
        "dual_warmup_iter": 0,
        "optim_g": {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0},
        "optim_dual": {},  # overrides of optim_g for every dual model (official: same as primal); {lr: 0} freezes them
        # CosineAnnealing {eta_min: 1e-7, periods, warmup_iter} | MultiStepLR {milestones, gamma: 0.5, warmup_iter}
        "scheduler": {"type": "CosineAnnealing"},
        "resume": None,  # null | auto (the newest readable state; one must exist) | if-possible | a state path
        "amp": None,  # null | bf16 | fp16
        "channels_last": False,
        "grad_clip": None,  # max global grad norm (off in the official recipe)
    },
    "val": {
        "val_freq": 5000,
        "crop_border": None,  # default: scale
        "save_best": True,
    },
    "logger": {
        "print_freq": 100,
        "save_checkpoint_freq": 5000,
        "keep_checkpoints": 3,  # numbered weights/states kept on disk (latest and best always kept)
        "use_tb_logger": False,
        "progress_bar": True,
    },
}

# Mappings whose keys are not checked (constructor arguments are the model's business).
_FREE_FORM = {("network_g",), ("network_dual",), ("train", "optim_g"), ("train", "optim_dual"),
              ("train", "scheduler"), ("datasets", "train", "degradation")}


def _merge(base: dict, update: dict, path: tuple[str, ...] = ()) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        here = path + (str(key),)
        dotted = ".".join(here)
        if key not in base:
            known = ", ".join(sorted(base))
            raise ConfigError(f"unknown option {dotted!r} (known at this level: {known})")
        default = base[key]
        if isinstance(default, dict):
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ConfigError(f"option {dotted!r} must be a mapping, got {type(value).__name__}")
            out[key] = _merge(default, value, here) if here not in _FREE_FORM else {**default, **value}
        else:
            out[key] = _check_type(dotted, default, value)
    return out


def _check_type(dotted: str, default: Any, value: Any) -> Any:
    if default is None or value is None:
        return copy.deepcopy(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"option {dotted!r} must be true/false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"option {dotted!r} must be an integer, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"option {dotted!r} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"option {dotted!r} must be a string, got {value!r}")
    if isinstance(default, list) and not isinstance(value, list):
        raise ConfigError(f"option {dotted!r} must be a list, got {value!r}")
    return copy.deepcopy(value)


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into (["a","b","c"], value parsed as a YAML scalar or flow value)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({exc.problem})") from None
    return key.split("."), value


# YAML parses 1e-4 (no dot) as a string; accept it as the number a user meant.
def _fix_floats(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _fix_floats(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_fix_floats(v) for v in node]
    if isinstance(node, str):
        try:
            if any(c in node for c in "eE") and node.strip()[0] in "0123456789.-+":
                return float(node)
        except ValueError:
            return node
    return node


def resolve(user: dict | None = None, overrides: Iterable[str] = ()) -> dict:
    """Defaults <- user mapping <- overrides; raises ConfigError naming any unknown key."""
    # overrides edit the user's tree first, so types are checked against the defaults only
    # (a file may give a list of folders and an override a single one)
    tree = copy.deepcopy(user or {})
    for item in overrides:
        keys, value = parse_override(item)
        node = tree
        for key in keys[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[keys[-1]] = value
    return finalize(_merge(DEFAULTS, _fix_floats(tree)))


# (dotted key, smallest allowed value, whether the bound itself is allowed, None allowed): checked
# before any data is read, so a typo fails in one line instead of after minutes of decoding.
_RANGES = (
    ("scale", 1, True, False), ("seed", 0, True, False), ("num_threads", 0, True, True),
    ("datasets.train.gt_size", 1, True, False), ("datasets.train.batch_size", 1, True, False),
    ("datasets.unpaired.batch_size", 0, True, False), ("datasets.unpaired.lr_size", 1, True, True),
    ("datasets.unpaired.ratio", 0, True, False),
    ("datasets.val.holdout_every", 2, True, False), ("datasets.val.holdout_offset", 0, True, False),
    ("datasets.val.max_images", 1, True, True), ("datasets.val.center_crop", 1, True, True),
    ("train.total_iter", 1, True, False), ("train.max_minutes", 0, False, True), ("train.dual_weight", 0, True, False),
    ("train.dual_warmup_iter", 0, True, False),
    ("train.optim_g.lr", 0, False, False), ("train.optim_g.eps", 0, False, True),
    ("train.optim_g.weight_decay", 0, True, True), ("train.optim_dual.lr", 0, True, True),
    ("train.scheduler.eta_min", 0, True, True), ("train.scheduler.warmup_iter", 0, True, True),
    ("train.grad_clip", 0, False, True), ("val.val_freq", 0, True, False), ("val.crop_border", 0, True, True),
    ("logger.print_freq", 1, True, False), ("logger.save_checkpoint_freq", 0, True, False),
    ("logger.keep_checkpoints", 0, True, False),
)


def _lookup(config: dict, dotted: str) -> Any:
    node: Any = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _check_ranges(config: dict) -> None:
    for key, low, inclusive, nullable in _RANGES:
        value = _lookup(config, key)
        if value is None:
            if nullable:
                continue
            raise ConfigError(f"{key} must be set")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        if value < low or (value == low and not inclusive):
            raise ConfigError(f"{key}={value} is out of range (must be {'>=' if inclusive else '>'} {low})")
    betas = _lookup(config, "train.optim_g.betas")
    if betas is not None and (not isinstance(betas, (list, tuple)) or len(betas) != 2
                              or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
        raise ConfigError(f"train.optim_g.betas must be two numbers in [0, 1), got {betas!r}")


def finalize(config: dict) -> dict:
    """Fill derived defaults and check value ranges and cross-field constraints."""
    _check_ranges(config)
    tc = config["train"]
    if tc["dual_warmup_iter"] and not tc["dual_weight"]:
        raise ConfigError("train.dual_warmup_iter needs train.dual_weight > 0 (without duals nothing would train)")
    if tc["dual_warmup_iter"] >= tc["total_iter"]:
        raise ConfigError(f"train.dual_warmup_iter={tc['dual_warmup_iter']} leaves no primal update in "
                          f"train.total_iter={tc['total_iter']}")
    scale = config["scale"]
    train_ds = config["datasets"]["train"]
    if train_ds["gt_size"] % scale:
        raise ConfigError(f"datasets.train.gt_size={train_ds['gt_size']} is not a multiple of scale {scale}")
    if config["val"]["crop_border"] is None:
        config["val"]["crop_border"] = scale
    if config["train"]["amp"] not in (None, "bf16", "fp16"):
        raise ConfigError(f"train.amp must be null, bf16 or fp16, got {config['train']['amp']!r}")
    if "type" not in config["network_g"]:
        raise ConfigError("network_g.type is required (e.g. drn-s)")
    unpaired = config["datasets"]["unpaired"]
    if unpaired["ratio"] >= 1:
        raise ConfigError(f"datasets.unpaired.ratio={unpaired['ratio']} must be below 1 (paired samples must remain)")
    if unpaired["dual_path"] not in ("tap", "chain"):
        raise ConfigError(f"datasets.unpaired.dual_path must be tap or chain, got {unpaired['dual_path']!r}")
    from dualsr.data.degrade import DegradationError, parse_degradation

    try:
        config["datasets"]["train"]["degradation"] = dict(parse_degradation(train_ds["degradation"]).options)
    except DegradationError as exc:
        raise ConfigError(f"datasets.train.{exc}" if str(exc).startswith("degradation.") else
                          f"datasets.train.degradation: {exc}") from None
    return config


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> dict:
    """Read a YAML file (safe_load) and resolve it with `key=value` overrides."""
    user: dict = {}
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
        try:
            user = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(user, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        try:
            return resolve(user, overrides)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return resolve(user, overrides)


def dump_config(config: dict) -> str:
    """The resolved config as YAML text (saved beside checkpoints)."""
    return yaml.safe_dump(config, sort_keys=False)
