"""Compressed inputs (varreinterp.bgzf): the verified text equals what a plain read sees, and any
damage (a file cut at a block boundary, a flipped bit, a wrong size, a plain gzip cut short) is
an input error (exit 3) on every path, never a shorter file read as complete."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import duckdb
import pysam
import pytest
from conftest import invoke

from varreinterp import bgzf

N_RECORDS = 60_000  # ~7 MB of text: well over the 64 blocks below which no split happens

HEADER = """##fileformat=VCFv4.1
##fileDate=2024-03-03
##source=ClinVar
##reference=GRCh38
##INFO=<ID=ALLELEID,Number=1,Type=Integer,Description="allele id">
##INFO=<ID=CLNDN,Number=.,Type=String,Description="disease">
##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="review status">
##INFO=<ID=CLNSIG,Number=.,Type=String,Description="classification">
##INFO=<ID=GENEINFO,Number=1,Type=String,Description="gene">
##contig=<ID=1,length=248956422>
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
"""
TERMS = [("Pathogenic", "criteria_provided,_single_submitter"),
         ("Uncertain_significance", "criteria_provided,_multiple_submitters,_no_conflicts"),
         ("Benign|association", "reviewed_by_expert_panel"),
         ("Pathogenic,_low_penetrance", "no_assertion_criteria_provided")]


@pytest.fixture(scope="module")
def clinvar_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("bgzf")
    rng = random.Random(11)
    lines = [HEADER]
    for i in range(N_RECORDS):
        ref, alt = rng.sample("ACGT", 2)
        sig, rev = TERMS[i % len(TERMS)]
        lines.append(f"1\t{1000 + 7 * i}\t{i}\t{ref}\t{alt}\t.\t.\tALLELEID={i};"
                     f"CLNDN=Disease_{i % 97}_with_a_long_name_{'x' * (i % 40)};"
                     f"CLNREVSTAT={rev};CLNSIG={sig};GENEINFO=G{i % 50}:{i % 50}\n")
    plain = work / "clinvar_20240303.vcf"
    plain.write_text("".join(lines))
    packed = work / "clinvar_20240303.vcf.gz"
    pysam.tabix_compress(str(plain), str(packed), force=True)
    return plain, packed


def test_decompressed_text_is_exactly_the_plain_text(clinvar_pair, tmp_path: Path) -> None:
    plain, packed = clinvar_pair
    text = bgzf.decompressed_text(packed, tmp_path)
    assert text.parent == tmp_path
    assert text.read_bytes() == plain.read_bytes()
    assert bgzf.decompressed_text(plain, tmp_path) == plain  # plain text is read in place
    gz = tmp_path / "plain-gzip.vcf.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert bgzf.decompressed_text(gz, tmp_path).read_bytes() == plain.read_bytes()


def test_inflate_all_matches_gzip(clinvar_pair) -> None:
    plain, packed = clinvar_pair
    assert bgzf.inflate_all(packed.read_bytes()) == plain.read_bytes()


def _rows(store: Path, name: str) -> list[tuple]:
    path = store / "snapshots" / name / "variants.parquet"
    return duckdb.sql(f"SELECT * FROM read_parquet('{path}') ORDER BY pos").fetchall()


def test_import_of_bgzip_equals_import_of_plain_text(clinvar_pair, tmp_path: Path) -> None:
    plain, packed = clinvar_pair
    a, b = tmp_path / "a", tmp_path / "b"
    assert invoke(a, "snapshot", "add", plain, "--name", "x").code == 0
    assert invoke(b, "snapshot", "add", packed, "--name", "x").code == 0
    rows = _rows(b, "x")
    assert len(rows) == N_RECORDS
    assert rows == _rows(a, "x")


def test_malformed_line_in_second_half_still_names_its_line(clinvar_pair,
                                                           tmp_path: Path) -> None:
    plain, _ = clinvar_pair
    text = plain.read_text().split("\n")
    bad_line = len(text) - 100  # 1-based number of the line we break, deep in the second part
    fields = text[bad_line - 1].split("\t")
    text[bad_line - 1] = "\t".join(fields[:4])  # too few columns
    broken = tmp_path / "clinvar_20240303.vcf"
    broken.write_text("\n".join(text))
    packed = tmp_path / "broken.vcf.gz"
    pysam.tabix_compress(str(broken), str(packed), force=True)
    res = invoke(tmp_path / "s", "snapshot", "add", packed, "--release-date", "2024-03-03")
    assert res.code == 3
    assert f"{packed}:{bad_line}:" in res.err


def test_patient_reading_of_bgzip_equals_plain(clinvar_pair, tmp_path: Path) -> None:
    """A large single-sample patient VCF, bgzipped, annotates exactly like its plain text."""
    plain, packed = clinvar_pair
    store = tmp_path / "s"
    assert invoke(store, "snapshot", "add", packed, "--name", "cv").code == 0
    rng = random.Random(5)
    lines = ["##fileformat=VCFv4.2\n##reference=GRCh38\n##contig=<ID=chr1,length=248956422>\n"
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tP1\n"]
    for line in plain.read_text().splitlines():
        if line.startswith("#"):
            continue
        chrom, pos, _, ref, alt = line.split("\t")[:5]
        gt = rng.choice(["0/1", "1/1", "0/0", "./."])
        lines.append(f"chr{chrom}\t{pos}\t.\t{ref}\t{alt}\t50\tPASS\t.\tGT\t{gt}\n")
    vcf = tmp_path / "p.vcf"
    vcf.write_text("".join(lines))
    vcf_gz = tmp_path / "p.vcf.gz"
    pysam.tabix_compress(str(vcf), str(vcf_gz), force=True)
    out_plain = invoke(store, "annotate", vcf, "--snapshot", "cv", "--format", "tsv")
    out_gz = invoke(store, "annotate", vcf_gz, "--snapshot", "cv", "--format", "tsv")
    assert out_plain.code == out_gz.code == 0
    body_plain = out_plain.out.split("\n", 1)[1]
    body_gz = out_gz.out.split("\n", 1)[1]
    carried = sum(1 for x in lines[1:] if x.rstrip().endswith(("0/1", "1/1")))
    assert body_gz == body_plain
    assert body_gz.count("\n") - 1 == carried


def test_a_header_cut_short_is_a_value_error() -> None:
    """blocks() reports any damage as ValueError, which every caller turns into an input error
    (a struct.error once escaped as an internal error)."""
    with pytest.raises(ValueError):
        bgzf.blocks(b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC")


def test_inflate_all_refuses_an_impossible_block_size(clinvar_pair) -> None:
    """ISIZE sizes the output buffer: a corrupt one (4 GiB) must fail, not allocate."""
    raw = bytearray(clinvar_pair[1].read_bytes())
    _, end, _ = bgzf.blocks(bytes(raw))[0]
    raw[end - 4:end] = b"\xff\xff\xff\xff"
    with pytest.raises(ValueError):
        bgzf.inflate_all(bytes(raw))


def test_a_corrupt_middle_block_is_an_input_error(clinvar_pair, tmp_path: Path) -> None:
    raw = bytearray(clinvar_pair[1].read_bytes())
    found = bgzf.blocks(bytes(raw))
    start, _, _ = found[len(found) // 2]
    raw[start + 18] |= 0x06  # deflate block type 11: reserved, invalid
    bad = tmp_path / "clinvar_20240303.vcf.gz"
    bad.write_bytes(bytes(raw))
    r = invoke(tmp_path / "store", "snapshot", "add", bad, "--name", "broken")
    assert r.code == 3, r.err
    assert "corrupt" in r.err and str(bad) in r.err


# ------------------------------------------------------------------ damage that used to pass
def _cut_at_block(packed: Path, dest: Path, keep: float) -> Path:
    """The file cut at a BGZF block boundary: a valid gzip stream, only shorter."""
    raw = packed.read_bytes()
    found = bgzf.blocks(raw)
    dest.write_bytes(raw[:found[int(len(found) * keep)][0]])
    return dest


def _flip_bit(packed: Path, dest: Path) -> Path:
    """One bit flipped inside a literal run of a middle block: inflates without complaint,
    only the CRC tells."""
    raw = bytearray(packed.read_bytes())
    found = bgzf.blocks(bytes(raw))
    for start, end, data in found[len(found) // 2:]:
        for offset in range(data + 200, end - 8):
            candidate = bytearray(raw)
            candidate[offset] ^= 0x01
            try:
                bgzf.inflate(bytes(candidate), (start, end, data))
            except ValueError as exc:
                if "CRC" in str(exc):
                    dest.write_bytes(bytes(candidate))
                    return dest
    raise AssertionError("no silent bit flip found")


@pytest.mark.parametrize("damage", ["cut_at_block", "bit_flip", "cut_inside_block"])
def test_damaged_clinvar_release_is_refused_and_nothing_stored(clinvar_pair, tmp_path: Path,
                                                               damage: str) -> None:
    _, packed = clinvar_pair
    bad = tmp_path / "clinvar_20240303.vcf.gz"
    if damage == "cut_at_block":
        _cut_at_block(packed, bad, 0.5)
    elif damage == "bit_flip":
        _flip_bit(packed, bad)
    else:
        raw = packed.read_bytes()
        bad.write_bytes(raw[:len(raw) // 2 + 1000])
    store = tmp_path / "store"
    r = invoke(store, "snapshot", "add", bad)
    assert r.code == 3, r.err
    assert r.err.count("\n") == 1 and str(bad) in r.err
    assert not list((store / "snapshots").glob("*"))
    assert not list((store / "tmp").glob("*"))


@pytest.mark.parametrize("damage", ["cut_at_block", "bit_flip"])
def test_damaged_patient_vcf_is_refused_on_every_command(clinvar_pair, tmp_path: Path,
                                                         damage: str) -> None:
    """annotate (both the prefilter and the full read), --format vcf, diff, history and
    cohort add all refuse the same damaged patient file."""
    plain, packed = clinvar_pair
    store = tmp_path / "s"
    assert invoke(store, "snapshot", "add", packed, "--name", "cv").code == 0
    lines = ["##fileformat=VCFv4.2\n##reference=GRCh38\n##contig=<ID=chr1,length=248956422>\n"
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tP1\n"]
    for line in plain.read_text().splitlines():
        if not line.startswith("#"):
            chrom, pos, _, ref, alt = line.split("\t")[:5]
            lines.append(f"chr{chrom}\t{pos}\t.\t{ref}\t{alt}\t50\tPASS\t.\tGT\t0/1\n")
    vcf = tmp_path / "p.vcf"
    vcf.write_text("".join(lines))
    good = tmp_path / "p.vcf.gz"
    pysam.tabix_compress(str(vcf), str(good), force=True)
    bad = tmp_path / "bad.vcf.gz"
    if damage == "bit_flip":
        _flip_bit(good, bad)
    else:
        _cut_at_block(good, bad, 0.7)
    out = tmp_path / "out.tsv"
    for args in (["annotate", bad, "--snapshot", "cv", "-f", "tsv", "-o", out],
                 ["annotate", bad, "--snapshot", "cv", "-f", "vcf", "-o", out],
                 ["diff", bad, "--from", "cv", "--to", "cv", "-f", "tsv", "-o", out],
                 ["history", bad, "-f", "tsv", "-o", out],
                 ["cohort", "add", bad, "--baseline", "cv"]):
        r = invoke(store, *args)
        assert r.code == 3, (args, r.err)
        assert str(bad) in r.err and r.err.count("\n") == 1, r.err
        assert not out.exists()
    assert not (store / "cohort" / "patients.json").exists()
    assert not list((store / "tmp").glob("*"))


def test_a_bcf_cut_at_a_block_boundary_is_refused(tmp_path: Path) -> None:
    from conftest import shared

    bcf = shared("patients/GRCh38/NA12878.platinum.chr21.bcf")
    bad = _cut_at_block(bcf, tmp_path / "cut.bcf", 0.6)
    r = invoke(tmp_path / "s", "history", bad, "-f", "tsv")
    assert r.code == 3, r.err  # refused for the damage before any store lookup
    assert "no BGZF end-of-file marker" in r.err
    assert str(bad) in r.err and r.err.count("\n") == 1, r.err


def test_a_bcf_with_a_flipped_bit_is_refused_in_one_line(tmp_path: Path) -> None:
    from conftest import shared

    bcf = shared("patients/GRCh38/NA12878.platinum.chr21.bcf")
    bad = _flip_bit(bcf, tmp_path / "flip.bcf")
    r = invoke(tmp_path / "s", "history", bad, "-f", "tsv")
    assert r.code == 3, r.err
    assert "CRC" in r.err and r.err.count("\n") == 1
