"""Terminal tables for people, pinned at 80 and 120 columns (rich's width set through
$COLUMNS): classifications abbreviated with a legend, no word cut in two. Regenerate after an
intended change with `UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_tables_golden.py`
and review the diff."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest
from conftest import SAMPLES, invoke

GOLDEN = Path(__file__).parent / "golden"
OLD, NEW = "clinvar-GRCh38-2024-01-07", "clinvar-GRCh38-2024-06-02"
CASES = {
    "diff_trio": ["diff", SAMPLES / "trio.vcf", "--from", OLD, "--to", NEW, "--all"],
    "diff_single": ["diff", SAMPLES / "patient_single.vcf.gz", "--from", OLD, "--to", NEW],
    "annotate_single": ["annotate", SAMPLES / "patient_single.vcf.gz", "--snapshot", NEW],
    "history_single": ["history", SAMPLES / "patient_single.vcf.gz", "--all"],
}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("golden") / "store"
    for date in ("2024-01-07", "2024-06-02"):
        assert invoke(root, "snapshot", "add", SAMPLES / f"clinvar_GRCh38_{date}.vcf").code == 0
    return root


def masked(text: str) -> str:
    """The tool version and the command line (it names temporary paths) vary: masked."""
    text = re.sub(r"varreinterp \d+\.\d+\.\d+\S*", "varreinterp X.Y.Z", text)
    return text


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("case", sorted(CASES))
def test_table_layout(store, monkeypatch, case, width):
    monkeypatch.setenv("COLUMNS", str(width))
    r = invoke(store, *CASES[case], "--format", "table")
    assert r.code == 0, r.err
    text = masked(r.out)
    for line in text.splitlines():
        assert len(line) <= width, f"wider than {width}: {line!r}"
    golden = GOLDEN / f"{case}.{width}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    expected = golden.read_text()
    assert text == expected, "\n" + "".join(difflib.unified_diff(
        expected.splitlines(keepends=True), text.splitlines(keepends=True), "golden", "now"))


def test_no_word_is_cut_at_80_columns(store, monkeypatch):
    """Every classification and change word of the diff table appears whole."""
    monkeypatch.setenv("COLUMNS", "80")
    r = invoke(store, *CASES["diff_trio"], "--format", "table")
    body = r.out
    for word in ("upgrade", "downgrade", "conflict", "resolved", "reclassified", "review",
                 "Conflicting", "VUS", "LP", "LB"):
        assert re.search(rf"(?<![\w]){word}(?![\w])", body), word
    for fragment in ("mediu\n", "Benig\n", "Conflictin\n", "reclassifie\n"):
        assert fragment not in body


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("case", sorted(CASES))
def test_caption_folds_at_spaces_and_loses_nothing(store, monkeypatch, case, width):
    """issue 12: the caption was wrapped wider than the terminal and cut ("LB = likel",
    "(2024-01-07" without its ")"). Every line now ends on a whole word, and the legend and the
    provenance read whole once the lines are joined."""
    from varreinterp.output.tables import LEGEND

    monkeypatch.setenv("COLUMNS", str(width))
    r = invoke(store, *CASES[case], "--format", "table")
    assert r.code == 0, r.err
    flat = " ".join(r.out.split())
    assert LEGEND in flat
    assert re.search(r"snapshot (\d )?clinvar-GRCh38-2024-06-02 \(2024-06-02, GRCh38, sha256 "
                     r"[0-9a-f]{12}\)", flat)
    assert flat.count("(") == flat.count(")")
    for line in r.out.splitlines():
        assert len(line) <= width
        for fragment in ("likel", "patho", "signific"):
            assert not re.search(rf"\b{fragment}$", line.rstrip()), line


def test_failed_qc_call_is_marked_in_the_change_table(store, monkeypatch):
    """issue 12: the LowQual call (chr17:43071000, a review-only change) is marked QC! in its
    variant cell, with the marker's legend; passing calls are not, and a table without a
    failed call has no such legend."""
    monkeypatch.setenv("COLUMNS", "80")
    r = invoke(store, *CASES["diff_single"], "--all", "--format", "table")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    at = next(i for i, ln in enumerate(lines) if "chr17:43071000" in ln)
    assert "QC!" in (lines[at] + " " + lines[at + 1]).split()
    assert sum("QC!" in ln.split() for ln in lines if ln.startswith("high ")) == 0
    assert "QC! = the call did not pass the variant caller's filters" in " ".join(r.out.split())
    tsv = invoke(store, *CASES["diff_single"], "--all", "--format", "tsv").out
    assert [ln.split("\t")[6] for ln in tsv.splitlines() if "43071000" in ln] == ["LowQual"]
    assert "QC!" not in invoke(store, *CASES["diff_trio"], "--format", "table").out
