"""`revamp study report`: mean opinion scores with 95 % confidence intervals per image and
method, a Fig. 3-style chart (one group of bars per image, one bar per method), a CSV of every
vote, and the agreement between raters (Krippendorff's alpha, interval metric).
"""
from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import numpy as np
from scipy import stats

from revamp.study import db


def _votes(conn: sqlite3.Connection, study: int) -> list[sqlite3.Row]:
    return conn.execute("""
        SELECT r.name AS rater, i.name AS image, m.label AS method, v.score, v.created, v.stimulus_id
        FROM votes v JOIN raters r ON r.id = v.rater_id JOIN stimuli s ON s.id = v.stimulus_id
        JOIN items i ON i.id = s.item_id JOIN methods m ON m.id = s.method_id
        WHERE i.study_id = ? ORDER BY v.id""", (study,)).fetchall()


def mos(scores: list[float]) -> dict:
    """Mean, and the half-width of its 95 % confidence interval (Student's t; None for one vote)."""
    a = np.asarray(scores, dtype=float)
    half = float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else None
    return {"mos": float(a.mean()), "ci95": half, "votes": len(a)}


def krippendorff_alpha_interval(units: dict[object, list[float]]) -> float | None:
    """Krippendorff's alpha with the interval metric; ``units`` maps each rated thing to the
    scores it got. Units with fewer than two scores do not count (they cannot be compared)."""
    values = [np.asarray(v, dtype=float) for v in units.values() if len(v) >= 2]
    n = sum(len(v) for v in values)
    if n < 2:
        return None
    d_o = sum(((v[:, None] - v[None, :]) ** 2).sum() / (len(v) - 1) for v in values) / n
    pooled = np.concatenate(values)
    d_e = ((pooled[:, None] - pooled[None, :]) ** 2).sum() / (n * (n - 1))
    return None if d_e == 0 else float(1 - d_o / d_e)


def study_summary(conn: sqlite3.Connection, name: str) -> dict:
    study = db.study_id(conn, name)
    votes = _votes(conn, study)
    methods = [r["label"] for r in conn.execute("SELECT label FROM methods WHERE study_id = ? ORDER BY id", (study,))]
    images = [r["name"] for r in conn.execute("SELECT name FROM items WHERE study_id = ? ORDER BY name", (study,))]
    per_image = {img: {m: mos([v["score"] for v in votes if v["image"] == img and v["method"] == m]) if any(
        v["image"] == img and v["method"] == m for v in votes) else None for m in methods} for img in images}
    per_method = {m: mos([v["score"] for v in votes if v["method"] == m]) if any(v["method"] == m for v in votes) else None for m in methods}
    units: dict[int, list[float]] = {}
    for v in votes:
        units.setdefault(v["stimulus_id"], []).append(v["score"])
    return {"study": name, "methods": methods, "images": images, "raters": len({v["rater"] for v in votes}), "votes": len(votes),
            "per_method": per_method, "per_image": per_image, "krippendorff_alpha_interval": krippendorff_alpha_interval(units)}


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading =, +, -, @, tab or CR would make it a
    formula (a rater may type any name), so such text gets a leading apostrophe."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_report(conn: sqlite3.Connection, name: str, out: Path) -> dict:
    summary = study_summary(conn, name)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "votes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rater", "image", "method", "score", "time_utc"])
        for v in _votes(conn, db.study_id(conn, name)):
            w.writerow([_cell(v["rater"]), _cell(v["image"]), _cell(v["method"]), v["score"], v["created"]])
    with open(out / "mos.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "method", "mos", "ci95", "votes"])
        for img, row in [("ALL", summary["per_method"]), *summary["per_image"].items()]:
            for m, s in row.items():
                if s:
                    w.writerow([_cell(img), _cell(m), f"{s['mos']:.3f}", "" if s["ci95"] is None else f"{s['ci95']:.3f}", s["votes"]])
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(summary_markdown(summary))
    _chart(summary, out / "mos.png")
    _chart(summary, out / "mos.svg")
    return summary


def summary_markdown(s: dict) -> str:
    lines = [f"# Study {s['study']}: {s['raters']} raters, {s['votes']} votes, {len(s['images'])} images", "",
             "| method | MOS | 95 % CI | votes |", "|---|---|---|---|"]
    for m, r in s["per_method"].items():
        if r:
            lines.append(f"| {m} | {r['mos']:.2f} | ±{r['ci95']:.2f} | {r['votes']} |" if r["ci95"] is not None else f"| {m} | {r['mos']:.2f} | – | {r['votes']} |")
    alpha = s["krippendorff_alpha_interval"]
    lines += ["", f"Agreement between raters: Krippendorff's alpha (interval) = {alpha:.3f}" if alpha is not None
              else "Agreement between raters: needs at least two votes on some image."]
    return "\n".join(lines) + "\n"


def _chart(s: dict, path: Path) -> None:
    from revamp.runtime import need

    matplotlib = need("matplotlib", "study", "the study's chart")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images, methods = s["images"], s["methods"]
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(images) * len(methods) + 2), 4))
    x = np.arange(len(images))
    for k, m in enumerate(methods):
        cells = [s["per_image"][img][m] for img in images]
        means = [c["mos"] if c else np.nan for c in cells]
        errs = [c["ci95"] if c and c["ci95"] is not None else 0 for c in cells]
        overall = s["per_method"][m]
        label = f"{m} (MOS {overall['mos']:.2f})" if overall else m
        ax.bar(x + (k - (len(methods) - 1) / 2) * width, means, width, yerr=errs, capsize=2, label=label)
    ax.set_xticks(x, images, rotation=45, ha="right")
    ax.set_ylabel("mean opinion score (95 % CI)")
    lo_hi = [r["mos"] for r in s["per_method"].values() if r]
    ax.set_ylim(0, 5.5 if not lo_hi or max(lo_hi) <= 5 else max(lo_hi) + 0.5)
    ax.set_title(f"{s['study']}: {s['raters']} raters, {s['votes']} votes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
