"""`revamp train plot RUN`: training loss and validation curves of every stage as one PNG."""
from __future__ import annotations

import csv
from pathlib import Path


def _read(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def plot_run(run: Path, out: Path | None = None) -> Path:
    from revamp.runtime import need

    matplotlib = need("matplotlib", "train", "`revamp train plot`")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [d for d in (run / s for s in ("generator", "critic", "gan")) if (d / "train.csv").is_file()]
    if not stages and (run / "train.csv").is_file():
        stages = [run]
    if not stages:
        raise FileNotFoundError(f"{run}: no train.csv found (is this a run folder?)")
    fig, axes = plt.subplots(len(stages), 2, figsize=(11, 3.2 * len(stages)), squeeze=False)
    for row, stage in zip(axes, stages):
        train = _read(stage / "train.csv")
        steps = [int(r["step"]) for r in train]
        for key in [k for k in train[0] if k not in ("step", "phase", "lr_factor")]:
            row[0].plot(steps, [float(r[key]) for r in train], label=key, linewidth=1)
        row[0].set_title(f"{stage.name}: training")
        row[0].set_xlabel("step")
        row[0].legend(fontsize=7)
        if (stage / "val.csv").is_file():
            val = _read(stage / "val.csv")
            vsteps = [int(r["step"]) for r in val]
            for key in [k for k in val[0] if k != "step"]:
                row[1].plot(vsteps, [float(r[key]) for r in val], marker="o", label=key, linewidth=1)
            row[1].legend(fontsize=7)
        row[1].set_title(f"{stage.name}: validation (held-out images)")
        row[1].set_xlabel("step")
    fig.tight_layout()
    out = out or run / "curves.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
