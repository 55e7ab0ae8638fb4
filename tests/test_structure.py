"""The structure the code relies on: a one-way import graph, and the error policy that keeps our
own bugs (exit 70) apart from bad input (exit 3) and store damage (exit 4)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, invoke

PACKAGE = ROOT / "varreinterp"
CORE = ["annotate", "diff", "history", "matching", "patient_vcf", "prefilter", "changes",
        "cohort", "reanalyze", "snapshots", "store", "db", "vocabulary", "provenance",
        "importers/common", "importers/clinvar_vcf", "importers/variant_summary",
        "importers/mapped_table"]
OLD = "clinvar-GRCh38-2024-01-07"
NEW = "clinvar-GRCh38-2024-06-02"


def imports_of(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


@pytest.mark.parametrize("module", CORE)
def test_core_modules_never_import_the_cli_or_the_output_layer(module):
    names = imports_of(module)
    banned = {n for n in names if n.split(".")[0] in ("typer", "rich")
              or n.startswith("varreinterp.cli")
              or (n.startswith("varreinterp.output") and module != "reanalyze")}
    assert not banned, f"{module} imports {banned}"


def test_annotate_diff_and_history_are_siblings():
    for module in ("annotate", "diff", "history"):
        others = {"annotate", "diff", "history"} - {module}
        names = imports_of(module)
        assert not {n for n in names for o in others if n == f"varreinterp.{o}"
                    or n.startswith(f"varreinterp.{o}.")}, module
        assert "varreinterp.matching" in {n.rsplit(".", 1)[0] for n in names} | names


def test_cohort_reaches_the_change_rules_not_diff():
    assert not any(n.startswith("varreinterp.diff") for n in imports_of("cohort"))


def test_no_global_command_line_state():
    assert not (PACKAGE / "runinfo.py").exists()
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Global)]


@pytest.fixture
def sample_store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    for release in (OLD, NEW):
        day = release.rsplit("-", 3)[1:]
        r = invoke(store, "snapshot", "add", SAMPLES / f"clinvar_GRCh38_{'-'.join(day)}.vcf")
        assert r.code == 0, r.err
    return store


def test_a_bug_in_our_sql_is_an_internal_error_not_bad_input(sample_store, monkeypatch):
    """A binder error (here: a misspelt column injected into the key join) must leave with
    exit 70, never be blamed on the input file."""
    import varreinterp.matching as matching

    real = matching.key_match_sql
    monkeypatch.setattr(matching, "key_match_sql",
                        lambda s, a: real(s, a).replace(f"{a}.pos", f"{a}.no_such_column"))
    r = invoke(sample_store, "annotate", SAMPLES / "patient_single.vcf.gz", "--snapshot", OLD,
               "--format", "tsv")
    assert r.code == 70, r.err
    assert "internal error" in r.err and "Binder" in r.err
    assert r.out == ""


def test_a_bug_in_the_reader_sql_is_not_blamed_on_the_file(sample_store, monkeypatch):
    """The reader used to catch every DuckDB error around parsing and call it bad input."""
    import varreinterp.db as db

    real = db.read_delimited
    monkeypatch.setattr(db, "read_delimited",
                        lambda *a, **k: real(*a, **k).replace("strict_mode", "no_such_option"))
    r = invoke(sample_store, "annotate", SAMPLES / "trio.vcf", "--snapshot", OLD,
               "--format", "tsv")
    assert r.code == 70, r.err
    assert "internal error" in r.err


def test_bad_input_is_still_exit_3(sample_store, tmp_path):
    vcf = tmp_path / "bad.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT"
                   "\tP1\nchr1\t100\t.\tA\tG\t50\tPASS\t.\tGT\n")
    r = invoke(sample_store, "annotate", vcf, "--snapshot", OLD, "--format", "tsv")
    assert r.code == 3, r.err
    assert str(vcf) in r.err


def test_cohort_status_on_a_damaged_store_fails_loudly(sample_store):
    """A snapshot whose manifest cannot be read may be the newest of its lineage: every patient
    of that lineage is shown failing with the reason (exit 6), never as 0 changes waiting."""
    r = invoke(sample_store, "cohort", "add", SAMPLES / "trio.vcf", "--baseline", OLD)
    assert r.code == 0, r.err
    good = invoke(sample_store, "cohort", "status", "--format", "json")
    assert good.code == 0, good.err
    rows = {json.loads(line)["patient"]: json.loads(line) for line in good.out.splitlines()}
    assert rows["CHILD01"]["state"] == "waiting" and rows["CHILD01"]["high"] == 1

    manifest = sample_store / "snapshots" / NEW / "manifest.json"
    manifest.write_text(manifest.read_text()[:40])  # cut: unreadable JSON
    r = invoke(sample_store, "cohort", "status", "--format", "json")
    assert r.code == 6, r.err
    rows = {json.loads(line)["patient"]: json.loads(line) for line in r.out.splitlines()}
    for row in rows.values():
        assert row["state"] == "failing"
        assert str(manifest) in row["reason"]
        assert row["high"] is None and row["medium"] is None and row["low"] is None
