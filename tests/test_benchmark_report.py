"""The tables in docs/ match the benchmark results they are written from."""

from __future__ import annotations

import importlib.util
import json

from cli_runs import ROOT

spec = importlib.util.spec_from_file_location("benchmark_report", ROOT / "benchmarks" / "report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


def test_docs_tables_are_those_of_the_results():
    stale = report.stale()
    assert not stale, f"run `python benchmarks/report.py` (or `make benchmarks`): stale tables in {stale}"


def test_every_results_file_has_a_table_in_the_docs():
    shown = "".join(doc.read_text() for doc in report.DOCS)
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        assert path.stem in report.TABLES, f"no table for {path.name}"
        assert f"<!-- results:{path.stem} -->" in shown, f"{path.name} is in no page of the docs"


def test_a_block_is_filled_from_its_json_and_the_prose_around_it_is_kept(tmp_path):
    (tmp_path / "overhead.json").write_text(json.dumps({"affectkit_samples_per_s": 60.0, "bare_samples_per_s": 64.0, "ratio": 0.9375}))
    page = "before\n<!-- results:overhead -->\nold table\n<!-- /results:overhead -->\nafter\n<!-- results:memory -->\nkept\n<!-- /results:memory -->\n"
    filled = report.rewrite(page, tmp_path)
    assert filled.startswith("before\n<!-- results:overhead -->\n| loop |") and "old table" not in filled
    assert "| bare PyTorch loop | 64.0 |" in filled and "**0.94**" in filled
    assert filled.endswith("after\n<!-- results:memory -->\nkept\n<!-- /results:memory -->\n")  # no memory.json: left alone
    assert report.rewrite(filled, tmp_path) == filled
