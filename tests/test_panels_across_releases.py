"""A gene panel judged across releases: a change stays in the panel that names the gene the
variant was reported under (a renamed symbol, a variant moved to another gene), in diff,
history, report and reanalyze alike; a config panel's inline genes and its genes_file both
count; a history refuses a symbol no release knows, as diff does; and a release marked suspect
(partial) is left out of a history and a report's timeline, where its missing records would
read as "absent"."""

from __future__ import annotations

from pathlib import Path

from builders import json_rows, write_clinvar, write_patient
from conftest import CliResult, invoke

A, B, C = "2024-01-01", "2024-02-01", "2024-03-01"
# (chrom, pos, ref, alt): (gene in A, class in A, gene in B, class in B)
VARIANTS = {
    ("1", 1000, "A", "G"): ("GENEA", "Uncertain_significance", "GENEA", "Likely_pathogenic"),
    ("1", 3000, "G", "A"): ("OLDSYM", "Uncertain_significance", "NEWSYM", "Pathogenic"),
    ("2", 5000, "C", "T"): ("GENEF", "Uncertain_significance", "GENEF", "Pathogenic"),
    ("2", 9000, "T", "A"): ("GENEX", "Likely_pathogenic", "GENEX", "Benign"),
}


def ok(res: CliResult, *codes: int) -> CliResult:
    assert res.code in (codes or (0,)), (res.code, res.err)
    return res


def release(path: Path, date: str, side: int, drop: tuple = ()) -> Path:
    records = [(c, p, r, a, classes[2 * side + 1], 1, classes[2 * side], "Disease")
               for (c, p, r, a), classes in VARIANTS.items() if (c, p, r, a) not in drop]
    return write_clinvar(path, records, date=date)


def setup(tmp_path: Path) -> tuple[Path, Path]:
    store = tmp_path / "store"
    ok(invoke(store, "snapshot", "add", release(tmp_path / "a.vcf", A, 0)))
    ok(invoke(store, "snapshot", "add", release(tmp_path / "b.vcf", B, 1)))
    patient = write_patient(tmp_path / "p.vcf", ["P1"], [
        f"{c} {p} . {r} {a} 50 PASS . GT 0/1" for (c, p, r, a) in VARIANTS])
    return store, patient


def genes_of(res: CliResult) -> dict[int, str]:
    return {r["pos"]: r["gene"] for r in json_rows(res.out) if "pos" in r}


def test_a_renamed_gene_keeps_its_change_in_the_panel(tmp_path: Path) -> None:
    store, patient = setup(tmp_path)
    diff = ok(invoke(store, "diff", patient, "--from", A, "--genes", "OLDSYM", "-f", "json"))
    assert genes_of(diff) == {3000: "NEWSYM|OLDSYM"}
    assert genes_of(ok(invoke(store, "diff", patient, "--from", A, "--genes", "NEWSYM",
                              "-f", "json"))) == {3000: "NEWSYM|OLDSYM"}
    # unchanged genes keep their one symbol
    every = genes_of(ok(invoke(store, "diff", patient, "--from", A, "--all", "-f", "json")))
    assert every[1000] == "GENEA"

    history = ok(invoke(store, "history", patient, "--genes", "OLDSYM", "-f", "json"))
    rows = [r for r in json_rows(history.out) if "classification" in r]
    assert [(r["pos"], r["classification"]) for r in rows] == [
        (3000, "Uncertain_significance"), (3000, "Pathogenic")]

    report = tmp_path / "r.html"
    ok(invoke(store, "report", patient, "--from", A, "--genes", "OLDSYM", "-o", report))
    assert "NEWSYM" in report.read_text() and "No changes at or above" not in report.read_text()

    ok(invoke(store, "cohort", "add", patient, "--baseline", A))
    out = tmp_path / "run"
    ok(invoke(store, "reanalyze", "--genes", "OLDSYM", "-o", out))
    changes = (out / "changes.tsv").read_text().splitlines()[1:]
    header = changes[0].split("\t")
    panel = {int(r["pos"]): r["in_panel"] for r in
             (dict(zip(header, ln.split("\t"), strict=True)) for ln in changes[1:])}
    assert panel[3000] == "True" and panel[5000] == "False"


def test_a_config_panel_holds_its_genes_and_its_genes_file(tmp_path: Path) -> None:
    store, patient = setup(tmp_path)
    (tmp_path / "extra.txt").write_text("GENEF\nGENEX\n")
    config = tmp_path / "config.toml"
    config.write_text('[panels.mypanel]\ngenes = ["GENEA"]\ngenes_file = "extra.txt"\n')
    res = ok(invoke(store, "--config", config, "diff", patient, "--from", A,
                    "--genes", "mypanel", "-f", "json"))
    assert set(genes_of(res)) == {1000, 5000, 9000}


def test_history_refuses_a_gene_symbol_no_release_knows(tmp_path: Path) -> None:
    store, patient = setup(tmp_path)
    res = invoke(store, "history", patient, "--genes", "GENAE", "-f", "tsv")
    assert res.code == 2, res.err
    assert "unknown gene symbol GENAE" in res.err and res.out == ""


def test_a_suspect_release_is_left_out_of_history_and_timelines(tmp_path: Path) -> None:
    store, patient = setup(tmp_path)
    partial = release(tmp_path / "c.vcf", C, 1, drop=(("1", 1000, "A", "G"),))
    added = ok(invoke(store, "snapshot", "add", partial))
    assert "suspect" in added.err.lower()
    history = ok(invoke(store, "history", patient, "--genes", "GENEA", "-f", "json"))
    rows = [r for r in json_rows(history.out) if "classification" in r]
    assert [r["release_date"] for r in rows] == [A, B]
    assert "left out of the history the release(s) marked suspect" in history.err

    report = tmp_path / "r.html"
    ok(invoke(store, "report", patient, "--from", A, "--to", B, "--genes", "GENEA",
              "-o", report))
    assert C not in report.read_text()
    # with the suspect release accepted as the target, it is part of its own report
    accepted = tmp_path / "accepted.html"
    ok(invoke(store, "report", patient, "--from", A, "--to", C, "--accept-suspect",
              "--genes", "GENEA", "-o", accepted))
    assert C in accepted.read_text()
