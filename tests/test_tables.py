"""`revamp tables --only SECTION`: one section re-evaluated, the rest of docs/results.md kept."""
import pytest

from revamp import tables
from revamp.cli import main


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
