"""Allele normalization against a reference, on a tiny hand-made FASTA whose repeats make every
indel ambiguous. The expected forms were produced by `bcftools norm -m -any -f` (the reference
behaviour, DOMAIN.md) and are re-checked against bcftools whenever it is installed."""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from varreinterp.db import connect as duckdb_connect
from varreinterp.patient_vcf import FastaReference, load, read_header
from varreinterp.snapshots import add_snapshot
from varreinterp.store import Store

#          1 GATTACAGGT 11 AAAAAAGCTC 21 TCTCTAGCAG 31 CAGCAGTACG 41 TACGTACACG ...
SEQUENCE = "GATTACAGG" + "TAAAAAAG" + "CTCTCTCTA" + "GCAGCAGCAGT" + "ACGTACGTAC" * 3

# (input POS REF ALT..., GT) -> normalized (POS, REF, ALT) per ALT, from bcftools norm.
LEFT_ANCHORED = [
    ("2 ATT CGT", [(2, "AT", "CG")]),          # MNP with a shared trailing base
    ("3 T C", [(3, "T", "C")]),                 # SNV
    ("9 G GT", [(9, "G", "GT")]),               # insertion already left-aligned
    ("15 AA A", [(10, "TA", "T")]),             # homopolymer deletion, right-most form
    ("16 A AA", [(10, "T", "TA")]),             # homopolymer insertion, right-most form
    ("23 TCT T", [(17, "GCT", "G")]),           # dinucleotide repeat deletion
    ("24 C CTC", [(17, "G", "GCT")]),           # dinucleotide repeat insertion
    ("33 GCAG G", [(25, "TAGC", "T")]),         # trinucleotide repeat deletion
    ("35 AG AGCAG", [(25, "T", "TAGC")]),       # trinucleotide insertion with a shared tail
    ("40 GTACG G,GTACGTACG", [(35, "AGTAC", "A"), (35, "A", "AGTAC")]),  # multi-allelic
]
# Right-anchored indels (the unchanged base at the END): valid VCF, and bcftools normalizes them.
RIGHT_ANCHORED = [
    ("16 AG G", [(10, "TA", "T")]),
    ("17 G AG", [(10, "T", "TA")]),
    ("33 GCAGT T", [(32, "AGCAG", "A")]),
]


@pytest.fixture
def fasta(tmp_path) -> Path:
    path = tmp_path / "ref.fa"
    path.write_text(">chr7\n" + SEQUENCE + "\n")
    return path


def write_vcf(path: Path, cases: list[tuple[str, list]]) -> Path:
    lines = ["##fileformat=VCFv4.2", f"##contig=<ID=chr7,length={len(SEQUENCE)}>",
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS"]
    for text, expected in cases:
        pos, ref, alts = text.split()
        gt = "0/1" if len(expected) == 1 else "1/2"
        lines.append(f"chr7\t{pos}\t.\t{ref}\t{alts}\t.\tPASS\t.\tGT\t{gt}")
    path.write_text("\n".join(lines) + "\n")
    return path


def our_alleles(vcf: Path, fasta: Path | None, workdir: Path) -> list[tuple]:
    header = read_header(vcf, workdir)
    con = duckdb_connect()
    try:
        calls = load(con, header, [0], FastaReference(fasta, workdir) if fasta else None)
        return con.execute(f"SELECT pos, ref, alt FROM {calls.allele} WHERE skip IS NULL "
                           "ORDER BY rid, ai").fetchall()
    finally:
        con.close()


def bcftools_alleles(vcf: Path, fasta: Path) -> list[tuple]:
    out = subprocess.run(["bcftools", "norm", "-m", "-any", "-f", str(fasta), str(vcf)],
                         capture_output=True, text=True, check=True).stdout
    return [(int(f[1]), f[3].upper(), f[4].upper()) for f in
            (ln.split("\t") for ln in out.splitlines() if not ln.startswith("#"))]


def expected_of(cases) -> list[tuple]:
    return [allele for _, alleles in cases for allele in alleles]


def test_left_anchored_indels_are_left_aligned(tmp_path, fasta):
    vcf = write_vcf(tmp_path / "in.vcf", LEFT_ANCHORED)
    assert SEQUENCE[9:17] == "TAAAAAAG"  # the coordinates above are 1-based into SEQUENCE
    assert our_alleles(vcf, fasta, tmp_path) == expected_of(LEFT_ANCHORED)


def test_without_reference_only_trimming_happens(tmp_path):
    vcf = write_vcf(tmp_path / "in.vcf", LEFT_ANCHORED)
    got = our_alleles(vcf, None, tmp_path)
    assert got == [(2, "AT", "CG"), (3, "T", "C"), (9, "G", "GT"), (15, "AA", "A"),
                   (16, "A", "AA"), (23, "TCT", "T"), (24, "C", "CTC"), (33, "GCAG", "G"),
                   (35, "A", "AGCA"), (40, "GTACG", "G"), (40, "G", "GTACG")]


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools is not installed")
def test_left_anchored_matches_bcftools(tmp_path, fasta):
    vcf = write_vcf(tmp_path / "in.vcf", LEFT_ANCHORED)
    theirs = bcftools_alleles(vcf, fasta)
    assert sorted(theirs) == sorted(expected_of(LEFT_ANCHORED))
    assert sorted(our_alleles(vcf, fasta, tmp_path)) == sorted(theirs)


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools is not installed")
def test_right_anchored_expectations_are_bcftools(tmp_path, fasta):
    vcf = write_vcf(tmp_path / "in.vcf", RIGHT_ANCHORED)
    assert bcftools_alleles(vcf, fasta) == expected_of(RIGHT_ANCHORED)


def test_right_anchored_indels_are_left_aligned(tmp_path, fasta):
    """Regression: left_align returned right-anchored indels (REF=AG ALT=G) unshifted."""
    vcf = write_vcf(tmp_path / "in.vcf", RIGHT_ANCHORED)
    assert our_alleles(vcf, fasta, tmp_path) == expected_of(RIGHT_ANCHORED)


# A repeat that runs up to the first base of the contig: the leftmost form is anchored at POS 1.
CONTIG_START = "ACACACACGTTGCATGCA"
AT_CONTIG_START = [
    ("6 CAC C", [(1, "ACA", "A")]),
    ("7 A ACA", [(1, "A", "ACA")]),
    ("8 C CAC", [(1, "A", "ACA")]),
]


@pytest.fixture
def start_fasta(tmp_path) -> Path:
    path = tmp_path / "start.fa"
    path.write_text(">chr7\n" + CONTIG_START + "\n")
    return path


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools is not installed")
def test_contig_start_expectations_are_bcftools(tmp_path, start_fasta):
    vcf = write_vcf(tmp_path / "in.vcf", AT_CONTIG_START)
    assert bcftools_alleles(vcf, start_fasta) == expected_of(AT_CONTIG_START)


def test_indels_in_a_repeat_at_the_contig_start(tmp_path, start_fasta):
    vcf = write_vcf(tmp_path / "in.vcf", AT_CONTIG_START)
    assert our_alleles(vcf, start_fasta, tmp_path) == expected_of(AT_CONTIG_START)


def random_indels(seed: int, n: int) -> list[tuple[str, list]]:
    """Deletions, insertions (random and repeat-copying), left- and right-anchored, and MNPs at
    positions >= 12 of SEQUENCE (clear of the contig start)."""
    rng = random.Random(seed)
    seen, cases = set(), []
    while len(cases) < n:
        p = rng.randint(12, len(SEQUENCE) - 8)
        ref = SEQUENCE[p - 1:p - 1 + rng.randint(1, 6)]
        kind = rng.choice(["del", "ins", "repeat-ins", "right-del", "right-ins", "mnp"])
        if kind == "del" and len(ref) > 1:
            alt = ref[0] + ref[1 + rng.randint(1, len(ref) - 1):]
        elif kind == "right-del" and len(ref) > 1:
            alt = ref[rng.randint(1, len(ref) - 1):]
        elif kind == "ins":
            alt = ref[0] + "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 4))) + ref[1:]
        elif kind == "repeat-ins":
            alt = ref + SEQUENCE[p - 1 + len(ref):p - 1 + len(ref) + rng.randint(1, 3)]
        elif kind == "right-ins":
            alt = "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 3))) + ref
        else:
            alt = "".join(rng.choice("ACGT") for _ in range(len(ref)))
        if alt and alt != ref and (p, ref, alt) not in seen:
            seen.add((p, ref, alt))
            cases.append((f"{p} {ref} {alt}", [None]))
    return sorted(cases, key=lambda c: int(c[0].split()[0]))


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools is not installed")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_indels_match_bcftools(tmp_path, fasta, seed):
    vcf = write_vcf(tmp_path / "in.vcf", random_indels(seed, 150))
    ours = our_alleles(vcf, fasta, tmp_path)
    theirs = bcftools_alleles(vcf, fasta)
    assert len(ours) == len(theirs) == 150
    assert sorted(ours) == sorted(theirs)


def _cli(store: Path, *args) -> tuple[int, str, str]:
    from varreinterp.cli import run

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run(["--store", str(store), *[str(a) for a in args]])
    return int(code), out.getvalue(), err.getvalue()


def test_annotate_with_reference_end_to_end(tmp_path, fasta):
    clinvar = tmp_path / "clinvar.vcf"
    clinvar.write_text(
        "##fileformat=VCFv4.1\n##fileDate=2024-05-05\n##reference=GRCh38\n"
        '##INFO=<ID=CLNSIG,Number=.,Type=String,Description="x">\n'
        '##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="x">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        "7\t10\t1\tTA\tT\t.\t.\tCLNSIG=Pathogenic;CLNREVSTAT=reviewed_by_expert_panel\n"
        "7\t25\t2\tTAGC\tT\t.\t.\tCLNSIG=Benign;CLNREVSTAT=criteria_provided,_single_submitter\n"
        "7\t3\t3\tG\tC\t.\t.\tCLNSIG=Uncertain_significance;CLNREVSTAT=no_assertion_criteria_provided\n")
    store = tmp_path / "store"
    add_snapshot(Store(store), clinvar, name="rep")
    patient = tmp_path / "p.vcf"
    patient.write_text(
        "##fileformat=VCFv4.2\n##reference=GRCh38\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS\n"
        "chr7\t3\t.\tG\tC\t.\tPASS\t.\tGT\t0/1\n"      # REF disagrees with the FASTA (T)
        "chr7\t15\t.\tAA\tA\t.\tPASS\t.\tGT\t1/1\n"
        "chr7\t33\t.\tGCAG\tG\t.\tPASS\t.\tGT\t0/1\n")

    def keys(out: str) -> set[tuple]:
        return {(r["chrom"], r["pos"], r["ref"], r["alt"], r["zygosity"])
                for r in map(json.loads, out.splitlines())}

    code, out, err = _cli(store, "annotate", patient, "--snapshot", "rep", "-f", "json")
    assert code == 0, err
    assert keys(out) == {("chr7", 3, "G", "C", "het")}  # trusted as written without a FASTA
    code, out, err = _cli(store, "annotate", patient, "--snapshot", "rep", "-f", "json",
                          "--reference", fasta)
    assert code == 0, err
    assert keys(out) == {("chr7", 10, "TA", "T", "hom"), ("chr7", 25, "TAGC", "T", "het")}
    assert "ref_mismatch 1" in err
