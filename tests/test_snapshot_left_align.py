"""Snapshot rows that are not left-aligned (hunt M, defect 1).

A lab table listing `1:949699 G>GG` (HGVS 3'-style) imported with exit 0 and "skipped: none",
`snapshot add --reference` was accepted and ignored, and a patient carrying the normalized call
(`bcftools norm -f` writes 949696 C>CG) never matched it. Now --reference left-aligns every
stored indel as the patient reader does, and without it such rows are counted and warned about.

The hand-made reference below is one contig `1` of 240 bases; `bcftools norm -f` of its
right-shifted indels (checked by hand) gives:
    1:43 G>GG    -> 1:40 C>CG      (in CGGGA)
    1:82 AAA>A   -> 1:80 GAA>G     (in GAAAAT)
    1:122 ACA>A  -> 1:120 TCA>T    (in TCACAG)
    1:44 A>GA    -> 1:40 C>CG
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from builders import (
    LAB_MAPPING,
    add,
    hit_keys,
    json_rows,
    only_snapshot,
    write_clinvar,
    write_patient,
)
from conftest import invoke, shared

Key = tuple[str, int, str, str]
WARNING = "varreinterp: WARNING: "


def reference_sequence() -> str:
    rng = random.Random(7)
    seq = [rng.choice("ACGT") for _ in range(240)]
    for pos, bases in ((38, "TACGGGAT"), (78, "CTGAAAATC"), (118, "GATCACAGT")):
        seq[pos - 1:pos - 1 + len(bases)] = bases
    return "".join(seq)


SEQ = reference_sequence()
SNV: Key = ("1", 150, SEQ[149], "A" if SEQ[149] != "A" else "C")
# (as written, as bcftools norm -f writes it)
SHIFTED: list[tuple[Key, Key]] = [
    (("1", 43, "G", "GG"), ("1", 40, "C", "CG")),
    (("1", 82, "AAA", "A"), ("1", 80, "GAA", "G")),
    (("1", 122, "ACA", "A"), ("1", 120, "TCA", "T")),
]


@pytest.fixture
def fasta(tmp_path: Path) -> Path:
    import pysam

    path = tmp_path / "ref.fa"
    path.write_text(">1\n" + "\n".join(SEQ[i:i + 60] for i in range(0, len(SEQ), 60)) + "\n")
    pysam.faidx(str(path))
    return path


def stored(store: Path) -> dict[Key, dict[str, Any]]:
    import pyarrow.parquet as pq

    table = pq.read_table(store / "snapshots" / only_snapshot(store) / "variants.parquet")
    return {(str(r["chrom"]), int(r["pos"]), str(r["ref"]), str(r["alt"])): r
            for r in table.to_pylist()}


def manifest(store: Path) -> dict[str, Any]:
    res = invoke(store, "snapshot", "show", only_snapshot(store), "-f", "json")
    assert res.code == 0, res.err
    shown = json.loads(res.out.splitlines()[0])
    assert isinstance(shown, dict)
    return shown


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(WARNING)]


def lab_table(tmp_path: Path, rows: list[tuple[Key, str]]) -> tuple[Path, Path]:
    table = tmp_path / "lab.tsv"
    table.write_text("chrom\tpos\tref\talt\tclass\n" + "".join(
        f"{c}\t{p}\t{r}\t{a}\t{cls}\n" for (c, p, r, a), cls in rows))
    mapping = tmp_path / "lab.toml"
    mapping.write_text(LAB_MAPPING.format(fmt="tsv", release='release_date = "2024-05-01"',
                                          contig="chrom", pos="pos", ref="ref", alt="alt",
                                          cls="class"))
    return table, mapping


LAB_ROWS = [(shifted, "Pathogenic") for shifted, _ in SHIFTED] + [(SNV, "Benign")]


def annotated(store: Path, tmp_path: Path, keys: list[Key], *extra: str | Path) -> set[Key]:
    """The keys of `keys`, called het in one patient, that annotate matched."""
    patient = write_patient(tmp_path / "patient.vcf", ["P"], [
        f"{c} {p} . {r} {a} 50 PASS . GT 0/1" for c, p, r, a in sorted(keys)],
        contigs={}, extra_header="##reference=GRCh37")
    res = invoke(store, "annotate", patient, "-f", "json", *extra)
    assert res.code == 0, res.err
    return {key[1:] for key in hit_keys(json_rows(res.out))}


def test_lab_table_indels_are_left_aligned_with_reference(tmp_path: Path, fasta: Path) -> None:
    """The reported defect: with --reference the table's right-shifted indels are stored as
    bcftools norm -f writes them, and a patient's normalized calls match all of them."""
    table, mapping = lab_table(tmp_path, LAB_ROWS)
    store = tmp_path / "store"
    res = add(store, table, "--mapping", mapping, "--assembly", "GRCh37", "--reference", fasta)
    assert set(stored(store)) == {normal for _, normal in SHIFTED} | {SNV}
    assert manifest(store)["skipped"] == {}
    assert "skipped: none" in res.err and not warnings(res.err), res.err
    normalized = [normal for _, normal in SHIFTED] + [SNV]
    assert annotated(store, tmp_path, normalized) == set(normalized)
    assert annotated(store, tmp_path, normalized, "--reference", fasta) == set(normalized)


def test_without_reference_unaligned_rows_are_kept_counted_and_warned(tmp_path: Path) -> None:
    """Stored as given (a patient spelled the same way still matches), counted in the
    manifest under not_left_aligned, and said once on stderr with the way out."""
    table, mapping = lab_table(tmp_path, LAB_ROWS)
    store = tmp_path / "store"
    res = add(store, table, "--mapping", mapping, "--assembly", "GRCh37")
    assert set(stored(store)) == {shifted for shifted, _ in SHIFTED} | {SNV}
    assert manifest(store)["skipped"] == {"not_left_aligned": 3}
    assert "skipped: none; stored as given: not_left_aligned=3" in res.err, res.err
    [warning] = warnings(res.err)
    assert "3 indel row(s) are not left-aligned (e.g. 1:43 G>GG)" in warning, warning
    assert "--reference FASTA" in warning, warning
    as_written = [shifted for shifted, _ in SHIFTED] + [SNV]
    assert annotated(store, tmp_path, as_written) == set(as_written)
    assert annotated(store, tmp_path, [normal for _, normal in SHIFTED] + [SNV]) == {SNV}


def test_adding_it_again_with_reference_is_refused_until_removed(tmp_path: Path,
                                                                 fasta: Path) -> None:
    """Following the warning's advice on a file already stored without --reference must not be
    a silent "already stored": it says to remove the snapshot first."""
    table, mapping = lab_table(tmp_path, LAB_ROWS)
    store = tmp_path / "store"
    add(store, table, "--mapping", mapping, "--assembly", "GRCh37")
    [name] = [p.name for p in (store / "snapshots").iterdir()]
    again = invoke(store, "snapshot", "add", table, "--mapping", mapping, "--assembly", "GRCh37",
                   "--reference", fasta)
    assert again.code == 2, again.err
    assert f"snapshot remove {name}" in again.err and "not_left_aligned 3" in again.err
    assert invoke(store, "snapshot", "remove", name).code == 0
    add(store, table, "--mapping", mapping, "--assembly", "GRCh37", "--reference", fasta)
    assert set(stored(store)) == {normal for _, normal in SHIFTED} | {SNV}


CURRENT_ROWS = [
    ("1", 40, "C", "CG", "Uncertain_significance", 1, None, None),
    ("1", 43, "G", "GG", "Pathogenic", 3, None, None),  # the same insertion, right-shifted
    ("1", 82, "AAA", "A", "Likely_pathogenic", 1, None, None),
    ("1", 122, "ACA", "A", "Benign", 2, None, None),
    ("1", 160, "CCCG", "C", "Pathogenic", 1, None, None),  # the FASTA has TTTG there
    ("2", 10, "A", "AA", "Pathogenic", 1, None, None),  # a contig the FASTA lacks
    ("1", 150, SNV[2], SNV[3], "Benign", 1, None, None),
]


def test_clinvar_vcf_rows_are_left_aligned_checked_and_deduplicated(tmp_path: Path,
                                                                   fasta: Path) -> None:
    """A current-format release with --reference: indels left-aligned; a REF the FASTA
    contradicts dropped as ref_mismatch (as annotate does); a contig the FASTA lacks kept as
    written and counted; two spellings of one insertion become one key, and the duplicate rule
    (best-reviewed row kept) applies after normalization."""
    src = write_clinvar(tmp_path / "clinvar.vcf", CURRENT_ROWS, assembly="GRCh37")
    store = tmp_path / "store"
    res = add(store, src, "--reference", fasta)
    rows = stored(store)
    assert set(rows) == {normal for _, normal in SHIFTED} | {SNV, ("2", 10, "A", "AA")}
    assert rows[("1", 40, "C", "CG")]["classification"] == "Pathogenic"  # 3 stars beat 1
    assert rows[("1", 40, "C", "CG")]["stars"] == 3
    assert manifest(store)["skipped"] == {"duplicate_allele_key": 1, "ref_mismatch": 1,
                                          "no_reference_sequence": 1, "not_left_aligned": 1}
    said = warnings(res.err)
    assert any("REF that --reference" in w and "1:160 CCCG>C" in w for w in said), said
    assert any("no sequence for contig 2: 1 indel row(s)" in w for w in said), said
    assert any("1 indel row(s) are not left-aligned (e.g. 2:10 A>AA)" in w for w in said), said


def test_pre_2017_numeric_vcf_is_left_aligned_with_reference(tmp_path: Path,
                                                             fasta: Path) -> None:
    """The dbSNP-style era (CLNALLE chooses the allele) goes through the same rule."""
    header = [
        "##fileformat=VCFv4.0", "##fileDate=20170404", "##reference=GRCh37.p13",
        '##INFO=<ID=CLNALLE,Number=.,Type=Integer,Description="x">',
        '##INFO=<ID=CLNSIG,Number=.,Type=String,Description="x">',
        '##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="x">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    body = ["1\t43\trs1\tG\tGT,GG\t.\t.\tCLNALLE=2;CLNSIG=5;CLNREVSTAT=single",
            "1\t82\trs2\tAAA\tA\t.\t.\tCLNALLE=1;CLNSIG=4;CLNREVSTAT=mult"]
    src = tmp_path / "clinvar_20170404.vcf"
    src.write_text("\n".join(header + body) + "\n")
    plain, aligned = tmp_path / "plain", tmp_path / "aligned"
    add(plain, src)
    assert set(stored(plain)) == {("1", 43, "G", "GG"), ("1", 82, "AAA", "A")}
    assert manifest(plain)["skipped"] == {"alt_not_classified": 1, "not_left_aligned": 2}
    add(aligned, src, "--reference", fasta)
    assert set(stored(aligned)) == {("1", 40, "C", "CG"), ("1", 80, "GAA", "G")}
    assert manifest(aligned)["skipped"] == {"alt_not_classified": 1}


def test_variant_summary_vcf_columns_are_left_aligned_with_reference(tmp_path: Path,
                                                                     fasta: Path) -> None:
    columns = ["#AlleleID", "Type", "Name", "GeneSymbol", "ClinicalSignificance",
               "LastEvaluated", "ReviewStatus", "Assembly", "Chromosome", "VariationID",
               "PositionVCF", "ReferenceAlleleVCF", "AlternateAlleleVCF"]
    lines = ["\t".join(columns)]
    for i, ((chrom, pos, ref, alt), _) in enumerate(SHIFTED, start=1):
        lines.append("\t".join([str(i), "Deletion", f"v{i}", "HAND", "Pathogenic", "-",
                                "criteria provided, single submitter", "GRCh37", chrom,
                                str(100 + i), str(pos), ref, alt]))
    src = tmp_path / "variant_summary.txt"
    src.write_text("\n".join(lines) + "\n")
    store = tmp_path / "store"
    add(store, src, "--release-date", "2024-01-01", "--reference", fasta)
    assert set(stored(store)) == {normal for _, normal in SHIFTED}
    assert manifest(store)["skipped"] == {}


def test_real_2017_release_counts_the_right_shifted_atm_dup(tmp_path: Path) -> None:
    """clinvar_20170404 stores 11:108151707 T>TT (ATM c.-?dupT, RSPOS 108151707): the T
    inserted after a T can move left, so it is provably not left-aligned. Without a FASTA it
    is kept as written and counted."""
    path = shared("clinvar/GRCh37/clinvar_20170404.old_numeric_format.vcf")
    store = tmp_path / "store"
    res = add(store, path)
    assert ("11", 108151707, "T", "TT") in stored(store)
    assert manifest(store)["skipped"].get("not_left_aligned") == 1
    unaligned = [w for w in warnings(res.err) if "not left-aligned" in w]
    assert len(unaligned) == 1 and "(e.g. 11:108151707 T>TT)" in unaligned[0], res.err


def test_a_left_aligned_file_imports_identically_with_and_without_reference(
        tmp_path: Path, fasta: Path) -> None:
    """Invariant: --reference changes nothing in a file that is already normalized (every
    column of every row, and the manifest's counts)."""
    rows = [("1", 40, "C", "CG", "Pathogenic", 3, "HAND", "d1"),
            ("1", 80, "GAA", "G", "Likely_pathogenic", 1, None, None),
            ("1", 120, "TCA", "T", "Benign", 2, "HAND", None),
            ("1", 150, SNV[2], SNV[3], "Uncertain_significance", 1, None, "d2"),
            ("1", 200, SEQ[199:201], "GC" if SEQ[199:201] != "GC" else "AT", "Benign", 0,
             None, None)]
    src = write_clinvar(tmp_path / "left.vcf", rows, assembly="GRCh37")
    plain, aligned = tmp_path / "plain", tmp_path / "aligned"
    add(plain, src)
    res = add(aligned, src, "--reference", fasta)
    assert not warnings(res.err), res.err
    assert stored(plain) == stored(aligned)
    assert len(stored(plain)) == 5
    counts = ("records", "tiers", "stars", "skipped")
    assert {k: manifest(plain)[k] for k in counts} == {k: manifest(aligned)[k] for k in counts}
    assert manifest(plain)["skipped"] == {}


def test_a_reference_that_contradicts_the_header_is_refused(tmp_path: Path,
                                                            fasta: Path) -> None:
    """A FASTA of another build would contradict most REFs (every indel dropped as
    ref_mismatch) or left-align against the wrong sequence: refused, naming both lengths."""
    src = write_clinvar(tmp_path / "c.vcf", CURRENT_ROWS[:2], assembly="GRCh37")
    text = src.read_text().replace("##source=ClinVar\n",
                                   "##source=ClinVar\n##contig=<ID=1,length=249250621>\n")
    src.write_text(text)
    store = tmp_path / "store"
    res = invoke(store, "snapshot", "add", src, "--reference", fasta)
    assert res.code == 3, res.err
    assert "249,250,621 bp in its header but 240 bp in the FASTA" in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1, res.err
    assert not (store / "snapshots").exists() or not any((store / "snapshots").iterdir())


def test_the_sql_rule_is_exactly_when_left_align_moves_a_trimmed_allele() -> None:
    """finalize counts not_left_aligned rows in SQL, without a FASTA: the rule must agree with
    left_align on every trimmed allele (random alleles over low-complexity sequences)."""
    import duckdb

    from varreinterp.normalize import can_shift_left_sql, left_align, trim

    class Seq:
        def __init__(self, text: str) -> None:
            self.text = text

        def fetch(self, contig: str, start: int, end: int) -> str:
            return self.text[start:end]

    rng = random.Random(11)
    cases: list[tuple[int, str, str, bool]] = []
    while len(cases) < 3000:
        seq = "".join(rng.choice("ACGT"[:rng.randint(1, 4)]) for _ in range(40))
        pos = rng.randint(1, 30)
        ref = seq[pos - 1:pos - 1 + rng.randint(1, 4)]
        alt = "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 4)))
        if ref == alt:
            continue
        trimmed = trim(pos, ref, alt)
        moved = left_align(Seq(seq), "1", pos, ref, alt) != trimmed
        cases.append((*trimmed, moved))
    con = duckdb.connect()
    con.execute("CREATE TABLE t (pos BIGINT, ref VARCHAR, alt VARCHAR, moved BOOLEAN)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", cases)
    disagree = con.execute(f"SELECT count(*) FROM t WHERE ({can_shift_left_sql()}) <> moved"
                           ).fetchall()[0][0]
    assert disagree == 0
    assert sum(moved for *_, moved in cases) > 300  # the rule is exercised both ways


def test_an_hg19_mitochondrion_in_the_fasta_is_not_used_for_mt(tmp_path: Path) -> None:
    """UCSC hg19's chrM (16,571 bp, NC_001807) is not the rCRS that ClinVar's MT is on: its
    sequence would refuse (ref_mismatch) or shift ClinVar's MT indels. They are stored as
    given, counted, and the FASTA's chrM is named in a warning."""
    import random

    import pysam

    rng = random.Random(7)
    rcrs = "".join(rng.choice("ACGT") for _ in range(16_569))
    hg19 = rcrs[:310] + "CC" + rcrs[310:]  # two more bases after m.310: 16,571 bp
    path = tmp_path / "hg19like.fa"
    path.write_text(">chrM\n" + "\n".join(hg19[i:i + 60] for i in range(0, len(hg19), 60))
                    + "\n")
    pysam.faidx(str(path))
    pos = 3002
    ref, alt = rcrs[pos - 1:pos + 1], rcrs[pos - 1]  # a deletion of one base on the rCRS
    src = write_clinvar(tmp_path / "mt.vcf", [("MT", pos, ref, alt, "Pathogenic", 2, None,
                                                None)], assembly="GRCh37")
    store = tmp_path / "store"
    res = add(store, src, "--reference", path)
    assert set(stored(store)) == {("MT", pos, ref, alt)}
    assert manifest(store)["skipped"].get("no_reference_sequence") == 1
    assert "16,571 bp: UCSC hg19's chrM" in res.err
