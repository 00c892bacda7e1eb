"""`dualsr models`: the registered models, their scales and sizes, what ships, how they tile."""
from __future__ import annotations

import argparse
import json

# spec.tiling -> what a user gets from `upscale --tile`
_TILING = {"local": "exact", "global_pool": "exact (whole-image means)",
           "placed": "exact at radius (placed)", "approximate": "approximate"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


def model_rows() -> list[dict]:
    """One row per registered model and scale, at the model's default architecture."""
    from dualsr.models import get_spec, list_models
    from dualsr.profile import count_parameters
    from dualsr.weights import shipped_weights

    shipped = {(w.model, w.scale): w for w in shipped_weights()}
    from dualsr.weights import DEFAULTS, default_weights

    default_keys = set()
    for scale in DEFAULTS:
        try:
            default = default_weights(scale)
        except FileNotFoundError:
            continue
        default_keys.add((default.model, default.scale))
    rows = []
    for name in list_models():
        spec = get_spec(name)
        for scale in spec.scales:
            # built on the CPU: the meta device would import torch's meta registrations (about 1.3 s)
            params = count_parameters(spec.build(scale))
            weights = shipped.get((name, scale))
            rows.append({
                "model": name, "scale": scale, "params": params,
                "shipped": weights.path.name if weights else None,
                "shipped_params": None,
                "default": (name, scale) in default_keys,
                "tiling": _TILING[spec.tiling],
                "prunable": spec.prunable,
            })
            if weights is not None and weights.config:  # the shipped file's own architecture
                rows[-1]["shipped_params"] = count_parameters(spec.build(scale, **weights.config))
    return rows


def format_rows(rows: list[dict]) -> str:
    table = [("model", "scale", "params", "weights shipped", "tiling", "DRC")]
    for r in rows:
        ship = "-"
        if r["shipped"]:
            ship = r["shipped"] + (f" ({r['shipped_params']:,} params)" if r["shipped_params"] else "")
            ship += ", default" if r["default"] else ""
        table.append((r["model"], f"x{r['scale']}", f"{r['params']:,}", ship, r["tiling"],
                      "yes" if r["prunable"] else "no"))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    right = {1, 2}
    lines = ["  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in
                       enumerate(zip(row, widths))).rstrip() for row in table]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines) + "\n\nparams: the primal network at the default architecture of each name and scale"


def run(args: argparse.Namespace) -> int:
    rows = model_rows()
    print(json.dumps(rows, indent=2) if args.json else format_rows(rows))
    return 0
