"""The training loop: data, models, objective step, checkpoints, validation and exact resume.

The pieces live beside it: the objective step and optimizers in `step.py`, the learning-rate
schedule in `schedule.py`, training states in `state.py`, process groups in `distributed.py`.

Layout of a run (BasicSR's): experiments/<name>/
    config.yaml                      the resolved options
    train.log                        the log (rank 0 only)
    models/net_g_<iter>.safetensors  primal weights; net_dual_<iter> the duals ('0.*', '1.*', ...)
    models/net_g_latest, net_g_best  latest and best-on-validation weights (+ duals)
    training_states/<iter>.state     everything `resume` needs (see train/state.py)

Exactness of resume: the learning rate is a closed-form function of the iteration, a batch is a
pure function of (seed, rank, iteration) and the training state holds every optimizer, scheduler
and RNG state, so N iterations straight equal N/2 + kill + resume bit for bit on the CPU.
"""
from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from dualsr.config import ConfigError, dump_config
from dualsr.data.datasets import (
    PatchSampler, build_image_cache, build_pyramid_cache, find_images, split_holdout, validation_pairs,
)
from dualsr.progress import Progress, format_duration, format_rate, is_terminal
from dualsr.progress import write as write_line
from dualsr.train import distributed as D
from dualsr.train.schedule import make_schedule
from dualsr.train.state import capture_rng, latest_state, list_states, load_state, restore_rng, save_state
from dualsr.train.step import PrimalDualStep, make_optimizer

log = logging.getLogger("dualsr.train")


class Trainer:
    """Builds everything from a resolved config and runs `fit()`."""

    def __init__(self, config: dict, resume: str | None = None):
        self.config = config
        self.ctx = D.setup(config["device"], config["num_threads"])
        self.is_main = self.ctx.is_main
        tc = config["train"]
        if config["name"] is None:
            raise ConfigError("option 'name' is required (the experiment folder name)")
        self.root = Path(config["path"]["experiments_root"]) / config["name"]
        self.models_dir = self.root / "models"
        self.states_dir = self.root / "training_states"
        self.scale = int(config["scale"])
        self.total_iter = int(tc["total_iter"])
        self.dual_weight = float(tc["dual_weight"])
        self.device = self.ctx.device
        self._resume_path, state, skipped = self._find_resume(resume if resume is not None else tc["resume"])
        self._setup_logging()
        for path, reason in skipped:
            log.warning("skipped the training state %s: %s", path, reason)
        self._build_data()
        self._build_models()
        self._build_optim()
        self.start_iter = 0
        self.best = {"psnr": -math.inf, "iter": 0}
        self.elapsed_before = 0.0
        if state is not None:
            self._load(state)
        else:
            seed = int(config["seed"])
            torch.manual_seed(seed * 1009 + self.ctx.rank)

    # ----------------------------------------------------------------- setup
    def _find_resume(self, resume: str | None) -> tuple[Path | None, dict | None, list[tuple[Path, str]]]:
        """(state path, state, skipped corrupt states) for `resume`: None, "auto", "if-possible" or a path.

        "auto" needs a state: a typo in the experiment name must not silently restart training.
        Both automatic modes take the newest state that reads back, skipping torn or corrupt ones.
        """
        states = [path for _it, path in reversed(list_states(self.states_dir))]
        if resume in (None, "", False):
            if states:
                raise ConfigError(
                    f"{self.root} already has training states (latest {states[0].name}); "
                    "pass --resume to continue it or choose another name")
            return None, None, []
        if resume not in ("auto", "if-possible"):
            try:
                return Path(resume), load_state(resume), []
            except (ValueError, FileNotFoundError) as exc:
                raise ConfigError(str(exc)) from None
        if not states:
            if resume == "if-possible":
                return None, None, []
            raise ConfigError(f"no training state to resume in {self.states_dir}; drop --resume to start a new "
                              "run, or pass --resume-if-possible to start one when there is none")
        skipped = []
        for path in states:
            try:
                return path, load_state(path), skipped
            except ValueError as exc:
                skipped.append((path, str(exc).removeprefix(f"{path}: ")))
        raise ConfigError(f"every training state in {self.states_dir} is unreadable (newest: {skipped[0][0].name}: "
                          f"{skipped[0][1]})")

    def _setup_logging(self) -> None:
        log.setLevel(logging.INFO)
        log.propagate = False
        for h in list(log.handlers):
            h.close()
            log.removeHandler(h)
        if not self.is_main:
            log.addHandler(logging.NullHandler())
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
        fh = logging.FileHandler(self.root / "train.log")
        fh.setFormatter(fmt)
        log.addHandler(fh)
        sh = _TqdmHandler()
        sh.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(sh)

    def _build_data(self) -> None:
        c = self.config
        train_opt, val_opt = c["datasets"]["train"], c["datasets"]["val"]
        if not train_opt["dataroot"]:
            raise ConfigError("datasets.train.dataroot is required (a folder or a list of folders of HR images)")
        files = find_images(train_opt["dataroot"])
        train_files, val_files = split_holdout(files, int(val_opt["holdout_every"]), int(val_opt["holdout_offset"]))
        t0 = time.time()
        from dualsr.data.degrade import parse_degradation

        self.degradation = parse_degradation(train_opt["degradation"])
        train_cache = build_pyramid_cache(train_files, self.scale)
        val_cache = build_pyramid_cache(val_files, self.scale)
        try:
            self.sampler = PatchSampler(
                train_cache, self.scale, int(train_opt["gt_size"]), seed=int(c["seed"]),
                hflip=train_opt["use_hflip"], vflip=train_opt["use_vflip"], transpose=train_opt["use_transpose"],
                degradation=self.degradation)
        except ValueError as exc:  # e.g. no image as large as the patch
            roots = train_opt["dataroot"] if isinstance(train_opt["dataroot"], list) else [train_opt["dataroot"]]
            raise ConfigError(f"datasets.train.dataroot ({', '.join(map(str, roots))}): {exc} "
                              f"(datasets.train.gt_size={train_opt['gt_size']})") from None
        if not self.degradation.is_bicubic:
            log.info("degradation: %s (LR made on the fly from each HR patch)", self.degradation.describe())
        batch = int(train_opt["batch_size"])
        world = self.ctx.world_size
        self.unpaired_sampler, self.unpaired_per_rank = None, 0
        unpaired = c["datasets"]["unpaired"]
        n_unpaired = 0
        if unpaired["dataroot"]:
            if not self.dual_weight:
                raise ConfigError("datasets.unpaired needs train.dual_weight > 0 (it trains the dual term only)")
            n_unpaired = int(unpaired["batch_size"]) or int(round(float(unpaired["ratio"]) * batch))
            if n_unpaired < 1 or n_unpaired >= batch:
                raise ConfigError(f"datasets.unpaired: {n_unpaired} unpaired of datasets.train.batch_size={batch} "
                                  "samples per batch; at least one of each is needed (set ratio or batch_size)")
            if n_unpaired % world or (batch - n_unpaired) % world:
                raise ConfigError(f"datasets.unpaired: {n_unpaired} unpaired + {batch - n_unpaired} paired samples "
                                  f"per batch are not both divisible by {world} processes")
            lr_size = int(unpaired["lr_size"] or int(train_opt["gt_size"]) // self.scale)
            try:
                self.unpaired_sampler = PatchSampler(
                    build_image_cache(find_images(unpaired["dataroot"])), 1, lr_size, seed=int(c["seed"]),
                    hflip=train_opt["use_hflip"], vflip=train_opt["use_vflip"],
                    transpose=train_opt["use_transpose"], stream=1)
            except ValueError as exc:
                raise ConfigError(f"datasets.unpaired.dataroot: {exc} (lr_size {lr_size})") from None
            self.unpaired_per_rank = n_unpaired // world
            log.info("unpaired: %d LR images, %d of the %d patches per iteration (%dpx LR), dual path %s",
                     len(self.unpaired_sampler), n_unpaired, batch, lr_size, unpaired["dual_path"])
        self.val_pairs = validation_pairs(val_cache, val_opt["center_crop"], self.scale, val_opt["max_images"],
                                          degradation=self.degradation, seed=int(c["seed"]))
        if (batch - n_unpaired) % world:
            raise ConfigError(f"datasets.train.batch_size={batch} is not divisible by {world} processes")
        self.batch_per_rank = (batch - n_unpaired) // world
        log.info("data: %d training images (%d usable for %dpx patches), %d held out for validation; "
                 "decoded in %.1fs", len(train_files), len(self.sampler), self.sampler.gt_size,
                 len(self.val_pairs), time.time() - t0)

    def _build_models(self) -> None:
        from dualsr.models import create_dual, create_model

        c = self.config
        net_opt = dict(c["network_g"])
        kind = net_opt.pop("type")
        # identical initial weights on every rank (DDP would broadcast rank 0's anyway)
        torch.manual_seed(int(c["seed"]))
        paths = c["path"]
        if paths["pretrain_network_g"]:
            # a dualsr file carries its architecture config (e.g. a pruned model's widths), so a
            # compressed model is fine-tuned without restating its widths in network_g
            from dualsr.checkpoint import WeightsError, load

            try:
                self.model = load(paths["pretrain_network_g"], name=kind, scale=self.scale,
                                  strict=paths["strict_load"], **net_opt).model
            except (WeightsError, KeyError) as exc:
                raise ConfigError(f"path.pretrain_network_g: {str(exc).strip(chr(39))}") from None
        else:
            self.model = create_model(kind, self.scale, **net_opt)
        problem = self.model.spec.patch_problem(int(c["datasets"]["train"]["gt_size"]), self.scale)
        if problem:
            raise ConfigError(f"datasets.train.gt_size={c['datasets']['train']['gt_size']}: {problem}")
        self.duals = create_dual(self.model, self.scale, **c["network_dual"]) if self.dual_weight else None
        if paths["pretrain_network_dual"] and self.duals is not None:
            from dualsr.checkpoint import load_weights

            load_weights(self.duals, paths["pretrain_network_dual"], strict=paths["strict_load"])
        self.memory_format = torch.channels_last if c["train"]["channels_last"] else torch.contiguous_format
        self.step_module = PrimalDualStep(self.model, self.duals, self.dual_weight,
                                          c["datasets"]["unpaired"]["dual_path"]).to(
            self.device, memory_format=self.memory_format)
        if self.ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DDP(self.step_module, device_ids=ids)
        else:
            self.ddp = self.step_module
        n_g = sum(p.numel() for p in self.model.parameters())
        n_d = sum(p.numel() for p in self.duals.parameters()) if self.duals is not None else 0
        log.info("model %s x%d: %s primal parameters, %s dual parameters (%d duals), lambda=%g",
                 kind, self.scale, f"{n_g:,}", f"{n_d:,}", len(self.duals or []), self.dual_weight)

    def _build_optim(self) -> None:
        tc = self.config["train"]
        self.optimizers = [make_optimizer(self.model.parameters(), tc["optim_g"])]
        dual_opt = {**tc["optim_g"], **tc["optim_dual"]}
        for dual in self.duals or []:
            self.optimizers.append(make_optimizer(dual.parameters(), dual_opt))  # one per dual, as official
        self.schedulers = [make_schedule(o, tc["scheduler"], self.total_iter) for o in self.optimizers]
        amp = tc["amp"]
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler(self.device.type) if amp == "fp16" else None

    # ----------------------------------------------------------- checkpoints
    def _load(self, state: dict) -> None:
        self.step_module.primal.load_state_dict(state["models"]["g"])
        if self.duals is not None:
            if "dual" not in state["models"]:
                raise ConfigError(f"{self._resume_path}: state has no dual models but dual_weight is {self.dual_weight}")
            self.duals.load_state_dict(state["models"]["dual"])
        if len(state["optimizers"]) != len(self.optimizers):
            raise ConfigError(f"{self._resume_path}: state has {len(state['optimizers'])} optimizers, "
                              f"this run has {len(self.optimizers)} (was dual_weight changed?)")
        for opt, sd in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(sd)
        for sch, sd in zip(self.schedulers, state["schedulers"]):
            sch.load_state_dict(sd)
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.start_iter = int(state["iteration"])
        self.best = dict(state.get("best", self.best))
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        rngs = state.get("rng", [])
        if len(rngs) == self.ctx.world_size:
            restore_rng(rngs[self.ctx.rank])
        else:  # world size changed: fresh per-rank streams (batches do not depend on them)
            torch.manual_seed(int(self.config["seed"]) * 1009 + self.ctx.rank + 7919 * self.start_iter)
        log.info("resumed from %s at iteration %d (saved by %d process(es), now %d)",
                 self._resume_path, self.start_iter, state.get("world_size", 1), self.ctx.world_size)
        changed = _diff_options(state.get("config", {}), self.config)
        if changed:
            log.info("options changed since the state was saved: %s", "; ".join(changed))

    def _state(self, iteration: int, rngs: list) -> dict:
        return {
            "iteration": iteration,
            "world_size": self.ctx.world_size,
            "models": {"g": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                       **({"dual": {k: v.detach().cpu() for k, v in self.duals.state_dict().items()}}
                          if self.duals is not None else {})},
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rngs,
            "best": dict(self.best),
            "elapsed_s": self.elapsed_s(),
            "config": self.config,
        }

    def _weights_meta(self, iteration: int) -> dict:
        return {"iteration": iteration, "network_g": self.config["network_g"]}

    def _save_weights(self, tag: str, metadata: dict) -> None:
        from dualsr.checkpoint import save_weights

        save_weights(self.model, self.models_dir / f"net_g_{tag}.safetensors", metadata)
        if self.duals is not None:
            save_weights(self.duals, self.models_dir / f"net_dual_{tag}.safetensors", metadata, duals_of=self.model)

    def save_checkpoint(self, iteration: int) -> None:
        """Weights (numbered + latest) and the training state; all ranks call, rank 0 writes."""
        rngs = D.all_gather_objects(self.ctx, capture_rng())
        if not self.is_main:
            return
        meta = self._weights_meta(iteration)
        for tag in (str(iteration), "latest"):
            self._save_weights(tag, meta)
        save_state(self._state(iteration, rngs), self.states_dir / f"{iteration}.state")
        self._prune_old(int(self.config["logger"]["keep_checkpoints"]))
        log.info("saved checkpoint at iteration %d", iteration)

    def _prune_old(self, keep: int) -> None:
        if keep <= 0:
            return
        for it, path in list_states(self.states_dir)[:-keep]:
            path.unlink(missing_ok=True)
            for stem in ("net_g", "net_dual"):
                (self.models_dir / f"{stem}_{it}.safetensors").unlink(missing_ok=True)

    # ------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> float:
        """Mean Y-PSNR (crop_border = scale by default) of the held-out training images."""
        from dualsr.evaluate import held_out_psnr

        score = held_out_psnr(self.model, self.val_pairs, int(self.config["val"]["crop_border"]),
                              self.device, self.memory_format)
        return 0.0 if score is None else score

    # ------------------------------------------------------------------ loop
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self, iteration: int, min_progress: float = 0.0) -> tuple[dict[str, torch.Tensor], float]:
        """One update of primal and duals on the batch of `iteration`; returns losses and lr."""
        lr = [s.set_iteration(iteration, min_progress) for s in self.schedulers][0]
        pyramid = [t.to(self.device, non_blocking=True, memory_format=self.memory_format)
                   for t in self.sampler.batch(iteration, self.ctx.rank, self.batch_per_rank, self.ctx.world_size)]
        unpaired_lr = None
        if self.unpaired_sampler is not None:
            unpaired_lr = self.unpaired_sampler.batch(iteration, self.ctx.rank, self.unpaired_per_rank,
                                                      self.ctx.world_size)[0]
            unpaired_lr = unpaired_lr.to(self.device, non_blocking=True, memory_format=self.memory_format)
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        with self._autocast():
            losses = self.ddp(pyramid, unpaired_lr)
        total = losses["total"]
        if self.scaler is not None:
            self.scaler.scale(total).backward()
        else:
            total.backward()
        clip = self.config["train"]["grad_clip"]
        if clip:
            if self.scaler is not None:
                for opt in self.optimizers:
                    self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(self.step_module.parameters(), float(clip))
        # dual warm-up: the primal (optimizers[0]) is held, its Adam state untouched, until the duals have fitted
        held = 1 if iteration <= self.config["train"]["dual_warmup_iter"] else 0
        for opt in self.optimizers[held:]:
            if self.scaler is not None:
                self.scaler.step(opt)
            else:
                opt.step()
        if self.scaler is not None:
            self.scaler.update()
        return {k: v.detach() for k, v in losses.items()}, lr

    def fit(self, on_iteration: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Train from `start_iter` to `total_iter` (or `max_minutes`); returns a summary.

        on_iteration(iteration) is called after each finished iteration (and its checkpoint).
        """
        c, lg = self.config, self.config["logger"]
        if self.is_main:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / "config.yaml").write_text(dump_config(c))
            log.info("experiment %s: %d process(es) on %s, batch %d (%d per process), iterations %d -> %d",
                     self.root, self.ctx.world_size, self.device,
                     (self.batch_per_rank + self.unpaired_per_rank) * self.ctx.world_size,
                     self.batch_per_rank + self.unpaired_per_rank, self.start_iter, self.total_iter)
        tb = self._tensorboard() if (self.is_main and lg["use_tb_logger"]) else None
        max_minutes = c["train"]["max_minutes"]
        budget_s = 60.0 * float(max_minutes) if max_minutes else None
        anneal_by_time = bool(budget_s) and c["train"]["time_annealing"]
        print_freq, val_freq = int(lg["print_freq"]), int(c["val"]["val_freq"])
        save_freq = int(lg["save_checkpoint_freq"])
        self.model.train()
        running: dict[str, float] = {}
        count = 0
        self._fit_start = time.monotonic()
        # a bar on a terminal only; the ETA (also in each logged iteration line) is capped by max_minutes
        progress = Progress(total=self.total_iter, desc=c["name"], initial=self.start_iter, stream=sys.stderr,
                            disable=not (self.is_main and lg["progress_bar"]), interval=None,
                            leave=is_terminal(sys.stderr),
                            time_limit_s=budget_s - self.elapsed_before if budget_s else None)
        done = last_saved = self.start_iter
        stopped_early, stopped_by = False, None
        try:
            for iteration in range(self.start_iter + 1, self.total_iter + 1):
                min_progress = 0.0
                if budget_s:
                    # the same number on every rank: the lr must not differ between processes
                    elapsed = D.max_over_ranks(self.ctx, self.elapsed_s())
                    if elapsed >= budget_s:
                        stopped_early, stopped_by = True, f"the time budget (train.max_minutes={max_minutes})"
                        break
                    min_progress = elapsed / budget_s if anneal_by_time else 0.0
                losses, lr = self.train_step(iteration, min_progress)
                done = iteration
                for k, v in losses.items():
                    running[k] = running.get(k, 0.0) + float(v)
                count += 1
                progress.update(1)
                if progress.drawing:
                    progress.set_postfix(loss=f"{float(losses['total']):.3f}", lr=f"{lr:.2e}")
                if iteration % print_freq == 0 or iteration == self.total_iter:
                    keys = sorted(running)
                    means = D.mean_over_ranks(self.ctx, torch.tensor([running[k] / count for k in keys]))
                    msg = " ".join(f"{k} {v:.4f}" for k, v in zip(keys, means.tolist()))
                    log.info("iter %s lr %.3e %s (%s, elapsed %s, eta %s)", progress.count_text(), lr, msg,
                             format_rate(progress.rate()), format_duration(self.elapsed_s()),
                             format_duration(progress.eta()))
                    if tb is not None:
                        for k, v in zip(keys, means.tolist()):
                            tb.add_scalar(f"loss/{k}", v, iteration)
                        tb.add_scalar("lr", lr, iteration)
                    running, count = {}, 0
                if val_freq and (iteration % val_freq == 0 or iteration == self.total_iter):
                    self._validate_and_keep_best(iteration, tb)
                if save_freq and iteration % save_freq == 0 and iteration != self.total_iter:
                    self.save_checkpoint(iteration)
                    last_saved = iteration
                if on_iteration is not None:
                    on_iteration(iteration)
        except KeyboardInterrupt:
            log.info("interrupted after iteration %d; saving a checkpoint", done)
            stopped_early, stopped_by = True, "an interrupt"
        finally:
            progress.close()
        iteration = done
        # a run cut short is validated where it stopped (unless it just was), then saved there
        validated_now = stopped_early and val_freq and iteration > self.start_iter and iteration % val_freq != 0
        if validated_now:
            self._validate_and_keep_best(iteration, tb)
        if iteration != last_saved or validated_now:
            self.save_checkpoint(iteration)
        if tb is not None:
            tb.close()
        D.barrier(self.ctx)
        summary = {"iteration": iteration, "best_psnr": self.best["psnr"], "best_iter": self.best["iter"],
                   "stopped_early": stopped_early, "stopped_by": stopped_by, "root": str(self.root),
                   "rank": self.ctx.rank}
        # the one closing line of a run (the command prints nothing after it)
        best = (f"best validation PSNR {self.best['psnr']:.3f} dB at iteration {self.best['iter']}"
                if self.best["iter"] else "no validation")
        log.info("%s at iteration %d of %d after %s; %s; outputs in %s",
                 f"stopped by {stopped_by}" if stopped_by else "done", iteration, self.total_iter,
                 format_duration(self.elapsed_s()), best, self.root)
        return summary

    def elapsed_s(self) -> float:
        """Training seconds so far, over all resumed segments (what max_minutes limits)."""
        fit_start = getattr(self, "_fit_start", None)
        return self.elapsed_before + (time.monotonic() - fit_start if fit_start is not None else 0.0)

    def _validate_and_keep_best(self, iteration: int, tb) -> None:
        if self.is_main:
            t0 = time.monotonic()
            psnr = self.validate()
            improved = psnr > self.best["psnr"]
            if improved:
                self.best = {"psnr": psnr, "iter": iteration}
                if self.config["val"]["save_best"]:
                    self._save_weights("best", {**self._weights_meta(iteration), "val_psnr": psnr})
            log.info("validation at iter %d: PSNR(Y) %.3f dB on %d held-out images (best %.3f @ %d)%s [%.1fs]",
                     iteration, psnr, len(self.val_pairs), self.best["psnr"], self.best["iter"],
                     " *" if improved else "", time.monotonic() - t0)
            if tb is not None:
                tb.add_scalar("val/psnr", psnr, iteration)
        # every rank keeps the same `best` so that whichever writes a state has it
        self.best = D.all_gather_objects(self.ctx, self.best)[0]

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning("logger.use_tb_logger is set but tensorboard is not installed; skipping it")
            return None
        return SummaryWriter(log_dir=str(self.root / "tb_logger"))

    def close(self) -> None:
        """Leave the process group and drop log handlers."""
        for h in list(log.handlers):
            h.close()
            log.removeHandler(h)
        D.teardown()


def _diff_options(old: dict, new: dict, prefix: str = "") -> list[str]:
    """'key: old -> new' for every option that differs between two resolved configs."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff_options(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


class _TqdmHandler(logging.Handler):
    """Log lines on stderr, printed above the progress bar (on a terminal) instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_line(self.format(record), sys.stderr)
        except Exception:
            self.handleError(record)


def train(config: dict, resume: str | None = None) -> dict[str, Any]:
    """Build a `Trainer` from a resolved config, run it, clean up; returns its summary."""
    trainer = Trainer(config, resume=resume)
    try:
        return trainer.fit()
    finally:
        trainer.close()
