"""`revamp tables --only SECTION`: one section re-evaluated, the rest of docs/results.md kept."""
import pytest

from revamp.cli import main
from revamp.evaluation import tables


@pytest.fixture()
def fake_literature(monkeypatch, tmp_path):
    """The literature section's evaluation replaced by fixed lines (the splice is what is tested)."""
    calls = []

    def build(data, out_dir, limit, quiet):
        calls.append((data, limit))
        return [f"{tables.SECTIONS['literature']} new", "", "new rows", ""]

    monkeypatch.setitem(tables._SECTION_BUILDERS, "literature", build)
    (tmp_path / "shared" / "data" / "eval").mkdir(parents=True)
    return calls


def test_only_one_section_is_rebuilt(tmp_path, fake_literature):
    results = tmp_path / "results.md"
    head = "# Results\n\nintro\n\n## Table I: artifact removal (stale)\n\n| a table that must stay |\n\n"
    results.write_text(f"{head}## Literature conventions: old\n\nold rows\n\n## Benchmarks\n\nbench text\n")
    assert main(["tables", "--only", "literature", "--limit", "1", "--shared", str(tmp_path / "shared"), "--out", str(results), "-q"]) == 0
    assert results.read_text() == f"{head}## Literature conventions: new\n\nnew rows\n\n## Benchmarks\n\nbench text\n"
    assert fake_literature == [(tmp_path / "shared" / "data" / "eval", 1)]


def test_only_needs_the_section_in_the_file(tmp_path, capsys, fake_literature):
    results = tmp_path / "results.md"
    results.write_text("# Results\n\n## Benchmarks\n")
    assert main(["tables", "--only", "literature", "--shared", str(tmp_path / "shared"), "--out", str(results), "-q"]) == 1
    assert "no '## Literature conventions:' section" in capsys.readouterr().err
    assert results.read_text() == "# Results\n\n## Benchmarks\n" and not fake_literature


def test_bench_section_tabulates_bench_reports_and_shows_other_json_as_it_is(tmp_path):
    import json

    folder = tmp_path / "bench"
    folder.mkdir()
    row = {"encoder": "resnet34", "decoder": "full", "backend": "torch", "size": "64x64", "s_per_frame": 0.5, "params_m": 1.0,
           "gflops": 2.0, "encoder_gflops": 1.0, "peak_rss_mb": 100}
    (folder / "a_bench.json").write_text(json.dumps({"command": "revamp bench", "machine": "m", "width": 8, "tile": 768,
                                                     "tile_overlap": 64, "runs": 1, "results": [row]}))
    (folder / "b_list.json").write_text(json.dumps([{"samples_per_s": 6.2}]))
    (folder / "c_named.json").write_text(json.dumps({"command": "bench/x.py", "results": {"fast": {"speedup": 1.1}}}))
    text = "\n".join(tables._bench_sections(folder))
    assert "| resnet34 | full |" in text and "### `revamp bench` (a_bench.json)" in text
    assert '"samples_per_s": 6.2' in text and '"speedup": 1.1' in text


def test_a_real_run_on_one_image_per_set(tmp_path):
    """Every section evaluated for real (models, metrics, the spp baseline) on the first image of each set."""
    import shutil

    from conftest import require, shared_path

    require(bool(shutil.which("ffmpeg")), "the system ffmpeg (Debian package ffmpeg)")
    shared = shared_path("data", "eval").parents[1]
    out = tmp_path / "results.md"
    assert main(["tables", "--limit", "1", "--shared", str(shared), "--out", str(out), "--work", str(tmp_path / "work"), "-q"]) == 0
    text = out.read_text()
    for section in tables.SECTIONS.values():
        assert section in text
    assert "LIVE1 colour, 1 images" in text and "| default |" in text
    assert "FFmpeg spp" in text  # the classical baseline row of the literature tables


def test_the_papers_table_is_printed_with_its_rank_and_ours():
    """Table I of the paper beside ours: the printed values, and each trained row's rank (1 = best)
    in the paper and in our table, since only the orderings compare."""
    from revamp.evaluation.anchors import PAPER_ROWS_OURS, PAPER_TABLE_I

    # Ours in the reverse order of the paper's LPIPS ranking: pre-GAN (paper's best) is our worst.
    paper_lpips = sorted((v[1], k) for k, v in PAPER_TABLE_I.items() if v[1] is not None)
    ours = {"results": [{"method": PAPER_ROWS_OURS[k], "ssim": 0.8, "lpips": 0.2 - 0.01 * i, "brisque": 30.0, "niqe": 4.0}
                        for i, (_, k) in enumerate(paper_lpips)]}
    lines = tables._paper_table(PAPER_TABLE_I, "I", ours)
    pregan = next(line for line in lines if line.startswith("| LPIPS (pre-GAN)"))
    assert "0.1243 (1 / 5)" in pregan and "ablation-lpips-pregan" in pregan
    assert any(line.startswith("| Target | – | – | 85.32 | 15.69 |") for line in lines)
