"""Before/after web page: one slider per image, self-contained HTML next to the images."""
from __future__ import annotations

import html
import shutil
from pathlib import Path

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>revamp: before / after</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }}
figure {{ margin: 0 0 2.5rem; width: fit-content; max-width: 100%; }}
.compare {{ position: relative; display: inline-block; max-width: 100%; line-height: 0; user-select: none; }}
.compare img {{ max-width: 100%; image-rendering: pixelated; }}
.compare .before {{ position: absolute; inset: 0; width: 100%; height: 100%; clip-path: inset(0 50% 0 0); }}
.compare .line {{ position: absolute; top: 0; bottom: 0; left: 50%; width: 2px; background: #fff; box-shadow: 0 0 3px #000; pointer-events: none; }}
.compare input {{ position: absolute; inset: 0; width: 100%; height: 100%; margin: 0; opacity: 0; cursor: ew-resize; }}
.labels {{ display: flex; justify-content: space-between; font-size: .9rem; color: #555; }}
</style></head><body>
<h1>revamp: before / after</h1>
<p>Drag across each picture: left of the line is the compressed input, right is the restored output
(model <code>{model}</code>). Pixels are shown unsmoothed so that artifacts stay visible.</p>
{figures}
<script>
document.querySelectorAll('.compare').forEach(function (box) {{
  var range = box.querySelector('input'), before = box.querySelector('.before'), line = box.querySelector('.line');
  function update() {{ var v = range.value; before.style.clipPath = 'inset(0 ' + (100 - v) + '% 0 0)'; line.style.left = v + '%'; }}
  range.addEventListener('input', update); update();
}});
</script>
</body></html>
"""

FIGURE = """<figure>
<div class="compare">
<img class="after" src="{after}" alt="restored {name}">
<img class="before" src="{before}" alt="compressed {name}">
<div class="line"></div>
<input type="range" min="0" max="100" value="50" aria-label="before/after position for {name}">
</div>
<div class="labels"><span>before: {name}</span><span>after (restored)</span></div>
</figure>"""


def write_page(pairs: list[tuple[Path, Path]], outdir: Path, model: str) -> Path:
    """pairs: (input file, restored file under outdir). Inputs are copied to outdir/before/."""
    before_dir = outdir / "before"
    before_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for source, restored in pairs:
        copy = before_dir / source.name
        shutil.copyfile(source, copy)
        figures.append(FIGURE.format(
            after=html.escape(restored.relative_to(outdir).as_posix()),
            before=html.escape(copy.relative_to(outdir).as_posix()),
            name=html.escape(source.name),
        ))
    page = outdir / "index.html"
    page.write_text(PAGE.format(model=html.escape(model), figures="\n".join(figures)))
    return page
