"""Lab tables as labs export them, and release dates and names that would pick the wrong
release: an allele listed twice with different classes (an appended reclassification row, two
submitters) is their combination, not the most severe row; a contig an export mangled is
counted, not stored to match nothing; a header naming a column twice, or lacking a column the
mapping names, is refused; a release date in the future, a lab table named like a ClinVar
release, and `previous` landing on a same-date reissue are refused or handled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders import LAB_TOML, json_rows, write_clinvar, write_patient
from conftest import CliResult, invoke

HEADER = "chrom\tpos\tref\talt\tclass\treview\tgene\n"
REVIEW = "criteria_provided,_single_submitter"


def ok(res: CliResult, *codes: int) -> CliResult:
    assert res.code in (codes or (0,)), (res.code, res.err)
    return res


def lab(tmp_path: Path, name: str, rows: list[str], header: str = HEADER) -> tuple[Path, Path]:
    table = tmp_path / name
    table.write_text(header + "".join(r.replace(" ", "\t") + "\n" for r in rows))
    mapping = tmp_path / "lab.toml"
    mapping.write_text(LAB_TOML)
    return table, mapping


def add_lab(store: Path, table: Path, mapping: Path, *extra: str) -> CliResult:
    return invoke(store, "snapshot", "add", table, "--format", "table", "--mapping", mapping,
                  "--assembly", "GRCh38", "--release-date", "2024-01-01", *extra)


def stored(store: Path) -> dict[tuple[str, int], str]:
    import pyarrow.parquet as pq

    (snap,) = (store / "snapshots").iterdir()
    rows = pq.read_table(snap / "variants.parquet").to_pylist()
    return {(r["chrom"], r["pos"]): r["classification"] for r in rows}


# ------------------------------------------------------------ an allele listed twice
def test_an_appended_reclassification_row_is_not_hidden(tmp_path: Path) -> None:
    table, mapping = lab(tmp_path, "lab.tsv", [
        f"chr1 1000100 G A P {REVIEW} BRCA1", f"chr1 1000200 C T VUS {REVIEW} BRCA1",
        f"chr1 1000100 G A Benign {REVIEW} BRCA1",  # the lab's later row for the same allele
        f"chr1 1000200 C T VUS {REVIEW} BRCA1"])  # the same class twice: one kept, as before
    store = tmp_path / "store"
    res = ok(add_lab(store, table, mapping))
    assert stored(store) == {("1", 1000100): "Conflicting_classifications_of_pathogenicity",
                             ("1", 1000200): "Uncertain_significance"}
    assert "1 allele(s) listed more than once with different classifications" in res.err
    assert "1:1000100 G>A: Benign, Pathogenic" in res.err
    assert json.loads(ok(invoke(store, "snapshot", "show", "latest:GRCh38", "-f", "json"))
                      .out.splitlines()[0])["skipped"]["duplicate_allele_key"] == 2


def test_the_best_reviewed_row_still_wins(tmp_path: Path) -> None:
    """Two ClinVar records of one allele with different review levels: the expert panel's
    classification is kept (not folded with a single submitter's)."""
    src = write_clinvar(tmp_path / "clinvar.vcf", [
        ("1", 5000, "G", "A", "Benign", 3, "GENE1", None),
        ("1", 5000, "G", "A", "Pathogenic", 1, "GENE1", None)])
    store = tmp_path / "store"
    res = ok(invoke(store, "snapshot", "add", src))
    assert stored(store) == {("1", 5000): "Benign"}
    assert "different classifications" not in res.err


# ------------------------------------------------------------ what an export does to a table
def test_contigs_an_export_mangled_are_counted_not_stored(tmp_path: Path) -> None:
    table, mapping = lab(tmp_path, "lab.tsv", [
        f"chr1 1000100 G A P {REVIEW} BRCA1", f"02 2000100 T C P {REVIEW} GENE2",
        f"23 3000100 C G P {REVIEW} GENEX", f"chrx 4000100 C G P {REVIEW} GENEX"])
    text = table.read_text().replace("chr1\t1000100", "chr1 \t1000100")  # a trailing blank
    table.write_text(text + f"chr1\t1000300\tG\tA\tP\t{REVIEW}\tBRCA1\n")
    store = tmp_path / "store"
    res = ok(add_lab(store, table, mapping))
    assert stored(store) == {("X", 4000100): "Pathogenic", ("1", 1000300): "Pathogenic"}
    assert "invalid_contig=3" in res.err and "'02'" in res.err and "'chr1 '" in res.err
    patient = write_patient(tmp_path / "p.vcf", ["P1"], ["chrX 4000100 . C G 50 PASS . GT 0/1"])
    rows = json_rows(ok(invoke(store, "annotate", patient, "--snapshot", "latest:GRCh38",
                               "-f", "json")).out)
    assert [r["pos"] for r in rows] == [4000100]  # chrx in the table is chrX in the VCF


def test_a_column_named_twice_is_refused(tmp_path: Path) -> None:
    table, mapping = lab(tmp_path, "lab.tsv", [f"chr1 1000100 G A Benign {REVIEW} BRCA1 P"],
                         header=HEADER.rstrip("\n") + "\tclass\n")
    res = add_lab(tmp_path / "store", table, mapping)
    assert res.code == 3, res.err
    assert f"{table}:1: the header names column 'class'" in res.err


def test_a_renamed_optional_column_is_refused(tmp_path: Path) -> None:
    table, mapping = lab(tmp_path, "lab.tsv", [f"chr1 1000100 G A P {REVIEW} BRCA1"],
                         header=HEADER.replace("review", "Review Status"))
    res = add_lab(tmp_path / "store", table, mapping)
    assert res.code == 3, res.err
    assert "names review_status as review, but the header lacks it" in res.err


# ------------------------------------------------------------ dates and names
@pytest.mark.parametrize("how", ["header", "option"])
def test_a_release_date_in_the_future_is_refused(tmp_path: Path, how: str) -> None:
    date = "2099-01-01" if how == "header" else None
    src = write_clinvar(tmp_path / "clinvar.vcf", [("1", 5000, "G", "A", "Benign", 1, None,
                                                    None)], date=date or "2024-01-01")
    if how == "option":
        text = src.read_text().replace("##fileDate=2024-01-01\n", "")
        src.write_text(text)
    args = ["--release-date", "2099-01-01"] if how == "option" else []
    res = invoke(tmp_path / "store", "snapshot", "add", src, *args)
    assert res.code == 3, res.err
    assert "release date 2099-01-01" in res.err and "in the future" in res.err


def test_a_lab_table_may_not_pass_for_clinvar(tmp_path: Path) -> None:
    table, mapping = lab(tmp_path, "lab.tsv", [f"chr1 1000100 G A P {REVIEW} BRCA1"])
    res = add_lab(tmp_path / "store", table, mapping, "--name", "clinvar-GRCh38-2024-01-01")
    assert res.code == 2 and "kept for ClinVar's releases" in res.err
    mapping.write_text(LAB_TOML.replace('name = "mylab"', 'name = "clinvar"'))
    res = add_lab(tmp_path / "store", table, mapping)
    assert res.code == 2 and "kept for ClinVar's own releases" in res.err


def test_previous_is_the_release_before_the_latest_date(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for date, name, sig in (("2024-02-25", None, "Benign"), ("2024-06-02", None, "Benign"),
                            ("2024-06-02", "clinvar-GRCh38-2024-06-02-fix", "Likely_benign")):
        src = write_clinvar(tmp_path / f"c_{name or date}.vcf",
                            [("1", 5000, "G", "A", sig, 1, None, None)], date=date)
        ok(invoke(store, "snapshot", "add", src, *(["--name", name] if name else [])))
    assert len(list((store / "snapshots").iterdir())) == 3
    shown = json.loads(ok(invoke(store, "snapshot", "show", "previous", "-f", "json"))
                       .out.splitlines()[0])
    assert shown["name"] == "clinvar-GRCh38-2024-02-25"


# ------------------------------------------------------------ an export saved as Latin-1
@pytest.mark.parametrize("line", [1, 2, 3])
def test_a_latin1_byte_near_the_top_names_its_line(tmp_path: Path, line: int) -> None:
    rows = [f"chr1 1000100 G A P {REVIEW} BRCA1", f"chr1 1000200 C T VUS {REVIEW} BRCA1"]
    table, mapping = lab(tmp_path, "lab.tsv", rows)
    lines = table.read_bytes().split(b"\n")
    word = b"gene" if line == 1 else b"BRCA1"
    lines[line - 1] = lines[line - 1].replace(word, word + b" caf\xe9")  # Latin-1 e-acute
    table.write_bytes(b"\n".join(lines))
    res = add_lab(tmp_path / "store", table, mapping)
    assert res.code == 3, res.err
    assert f"{table}:{line}: not a text file (invalid UTF-8)" in res.err, res.err
    assert not (tmp_path / "store" / "snapshots").exists() or \
        not list((tmp_path / "store" / "snapshots").iterdir())


# ------------------------------------------------------------ the same terms, spelled otherwise
def test_a_combined_term_folds_by_its_atoms_and_term_order_is_no_change(tmp_path: Path) -> None:
    from varreinterp.vocabulary import fold_term_list

    assert fold_term_list("Pathogenic|Pathogenic/Likely_pathogenic") == \
        "Pathogenic/Likely_pathogenic"
    assert fold_term_list("Benign/Likely_benign|Likely_benign|risk_factor") == \
        "Benign/Likely_benign|risk_factor"
    store = tmp_path / "store"
    one = [("1", 100, "A", "G", "Pathogenic", 1, "G1", None),
           ("1", 100, "A", "G", "Pathogenic/Likely_pathogenic", 1, "G1", None),
           ("1", 200, "C", "T", "Pathogenic|risk_factor|other", 1, "G1", None),
           ("1", 300, "G", "A", "Likely_pathogenic/Pathogenic", 1, "G1", None)]
    two = [("1", 100, "A", "G", "Pathogenic/Likely_pathogenic", 1, "G1", None),
           ("1", 200, "C", "T", "Pathogenic|other|risk_factor", 1, "G1", None),
           ("1", 300, "G", "A", "Pathogenic/Likely_pathogenic", 1, "G1", None),
           ("1", 400, "T", "C", "Pathogenic|other", 1, "G1", None)]  # a real change, below
    for date, rows in (("2024-05-05", one), ("2024-06-02", two)):
        ok(invoke(store, "snapshot", "add", write_clinvar(tmp_path / f"c{date}.vcf", rows,
                                                          date=date)))
    ok(invoke(store, "snapshot", "add", write_clinvar(
        tmp_path / "c3.vcf", [*two[:3], ("1", 400, "T", "C", "Pathogenic|risk_factor", 1, "G1",
                                          None)], date="2024-07-07")))
    res = ok(invoke(store, "snapshot", "diff", "2024-05-05", "2024-06-02", "--all", "-f",
                    "json"))
    assert [(r["pos"], r["change"]) for r in json_rows(res.out) if "change" in r] == \
        [(400, "new")], res.out
    res = ok(invoke(store, "snapshot", "diff", "2024-06-02", "2024-07-07", "--all", "-f",
                    "json"))
    assert [(r["pos"], r["change"], r["before"], r["after"]) for r in json_rows(res.out)
            if "change" in r] == [(400, "reclassified", "Pathogenic|other",
                                   "Pathogenic|risk_factor")], res.out
    # history agrees: only the variant whose terms changed has a history to show
    patient = write_patient(tmp_path / "p.vcf", ["S1"], [
        "chr1 300 . G A 50 PASS . GT 0/1", "chr1 400 . T C 50 PASS . GT 0/1"])
    res = ok(invoke(store, "history", patient, "-f", "json"))
    assert {r["pos"] for r in json_rows(res.out) if "pos" in r} == {400}, res.out
