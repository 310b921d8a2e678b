"""`revamp eval --html`: a page of before/after/reference crops per image, sortable by gain."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from PIL import Image

CROP = 160

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>revamp eval: visual report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border-bottom: 1px solid #ddd; padding: 4px 8px; vertical-align: top; text-align: center; }}
th {{ cursor: pointer; background: #f4f4f4; position: sticky; top: 0; }} img {{ width: {crop}px; height: auto; image-rendering: pixelated; display: block; }}
.num {{ font-variant-numeric: tabular-nums; }}
</style></head><body>
<h1>Visual report</h1>
<p>{caption} Click a column header to sort. Crops ({crop}x{crop} px, at the spot where the input's
error is largest) are shown unsmoothed; the number under each crop is its PSNR (dB) on the whole image.</p>
<table id="report"><thead><tr><th data-type="text">image</th><th data-type="text">degradation</th><th data-type="num">gain (dB)</th>{heads}</tr></thead>
<tbody>
{rows}
</tbody></table>
<script>
document.querySelectorAll('#report th').forEach(function (th, col) {{
  th.addEventListener('click', function () {{
    var body = document.querySelector('#report tbody'), rows = Array.from(body.rows);
    var num = th.dataset.type === 'num', dir = th.dataset.dir === 'desc' ? 1 : -1;
    th.dataset.dir = dir === 1 ? 'asc' : 'desc';
    rows.sort(function (a, b) {{
      var x = a.cells[col].dataset.v || a.cells[col].textContent, y = b.cells[col].dataset.v || b.cells[col].textContent;
      return num ? dir * (parseFloat(x) - parseFloat(y)) : dir * x.localeCompare(y);
    }});
    rows.forEach(function (r) {{ body.appendChild(r); }});
  }});
}});
</script></body></html>
"""


def worst_window(degraded: np.ndarray, clean: np.ndarray, size: int = CROP) -> tuple[int, int]:
    """Top-left corner of the size x size window (on a 16-px grid) with the largest input error."""
    err = (degraded.astype(np.float64) - clean.astype(np.float64)) ** 2
    err = err.sum(axis=2) if err.ndim == 3 else err
    h, w = err.shape
    if h <= size or w <= size:
        return 0, 0
    integral = np.pad(err.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, spot = -1.0, (0, 0)
    for y in range(0, h - size + 1, 16):
        for x in range(0, w - size + 1, 16):
            total = integral[y + size, x + size] - integral[y, x + size] - integral[y + size, x] + integral[y, x]
            if total > best:
                best, spot = total, (y, x)
    return spot


class VisualReport:
    def __init__(self, out: Path, caption: str):
        self.out, self.caption = out, caption
        (out / "crops").mkdir(parents=True, exist_ok=True)
        self.rows: list[str] = []
        self.methods: list[str] = []

    def add(self, image: str, degradation: str, clean: np.ndarray, outputs: dict[str, np.ndarray], scores: dict[str, float]) -> None:
        """outputs: method -> image (the input first); scores: method -> PSNR."""
        names = [m for m in outputs]
        if not self.methods:
            self.methods = names
        input_name = names[0]
        y, x = worst_window(outputs[input_name], clean) if outputs[input_name].shape == clean.shape else (0, 0)
        cells = []
        stem = f"{Path(image).stem}_{degradation.replace(':', '')}"
        for i, (name, img) in enumerate([("reference", clean), *outputs.items()]):
            crop = img[y : y + CROP, x : x + CROP]
            rel = f"crops/{stem}_{i}.png"
            Image.fromarray(crop).save(self.out / rel)
            score = "" if name == "reference" else f"{scores.get(name, float('nan')):.2f}"
            cells.append(f'<td class="num" data-v="{score}"><img src="{html.escape(rel)}" alt="{html.escape(name)}">{score}</td>')
        models = [m for m in names[1:] if m in scores]
        gain = scores[models[-1]] - scores[input_name] if models else 0.0
        self.rows.append(f"<tr><td>{html.escape(image)}</td><td>{html.escape(degradation)}</td><td class=\"num\" data-v=\"{gain:.3f}\">{gain:+.2f}</td>"
                         + "".join(cells) + "</tr>")

    def write(self) -> Path:
        heads = "".join(f'<th data-type="num">{html.escape(m)}</th>' for m in ["reference", *self.methods])
        page = self.out / "index.html"
        page.write_text(PAGE.format(crop=CROP, caption=html.escape(self.caption), heads=heads, rows="\n".join(self.rows)))
        return page
