"""Inputs that read as valid but are not what they claim, refused (exit 3) instead of answered:
a plain-text file cut inside its last line (a call read as hom_ref, a release's last
classification dropped), a ClinVar or lab VCF whose ##contig lengths are another build's than
--assembly says (or hg18's), a GATK reference name that tells the build; and a BCF compressed
with plain gzip, which htslib cannot seek in, read instead of an internal error."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest
from builders import LAB_MAPPING, json_rows
from conftest import SAMPLES, CliResult

RELEASE = SAMPLES / "clinvar_GRCh38_2024-06-02.vcf"
PATIENT = """##fileformat=VCFv4.2
##reference=GRCh38
##contig=<ID=chr1,length=248956422>
##contig=<ID=chr13,length=114364328>
##contig=<ID=chr17,length=83257441>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM	POS	ID	REF	ALT	QUAL	FILTER	INFO	FORMAT	S1
chr1	45332200	.	A	G	50	PASS	.	GT	0/1
chr17	7674220	.	C	T	50	PASS	.	GT	1/1
chr13	32332400	.	G	A	50	PASS	.	GT	0/1
"""  # three P/LP calls of the 2024-06-02 sample release


def ok(res: CliResult, *codes: int) -> CliResult:
    assert res.code in (codes or (0,)), (res.code, res.err)
    return res


@pytest.fixture
def store(cli) -> None:
    ok(cli("snapshot", "add", RELEASE))


def positions(res: CliResult) -> set[int]:
    return {int(r["pos"]) for r in json_rows(res.out) if "pos" in r}


# ------------------------------------------------------------ plain text cut inside a line
def test_a_patient_vcf_cut_inside_its_last_line_is_refused(store, cli, tmp_path: Path) -> None:
    whole = tmp_path / "p.vcf"
    whole.write_text(PATIENT)
    assert positions(ok(cli("annotate", whole, "-f", "json"))) == {45332200, 7674220, 32332400}
    cut = tmp_path / "cut.vcf"
    cut.write_text(PATIENT[:-3])  # "GT\t0": still a valid hom-ref call
    for args in (["annotate", cut], ["diff", cut, "--from", "latest", "--to", "latest"],
                 ["cohort", "add", cut, "--baseline", "latest"]):
        res = cli(*args)
        assert res.code == 3, (args, res.code, res.err)
        assert f"{cut}: the file does not end with a newline" in res.err, res.err
    # compressed, the same text is proven whole by gzip's own checks: read as it is
    zipped = tmp_path / "nonl.vcf.gz"
    with gzip.open(zipped, "wt") as fh:
        fh.write(PATIENT.rstrip("\n"))
    assert positions(ok(cli("annotate", zipped, "-f", "json"))) == {45332200, 7674220, 32332400}


def test_a_release_cut_inside_its_last_line_is_refused(cli, tmp_path: Path) -> None:
    text = RELEASE.read_text()
    cut = tmp_path / "clinvar_GRCh38_2024-06-02.vcf"
    cut.write_text(text[:-40])
    res = cli("snapshot", "add", cut)
    assert res.code == 3, res.err
    assert "the file does not end with a newline" in res.err
    assert not (tmp_path / "store" / "snapshots").exists() or \
        not list((tmp_path / "store" / "snapshots").iterdir())


def test_a_lab_table_cut_inside_its_last_line_is_refused(cli, tmp_path: Path) -> None:
    table = tmp_path / "lab.tsv"
    table.write_text("chrom\tpos\tref\talt\tclass\n1\t1000\tC\tT\tPathogenic\n"
                     "1\t2000\tG\tA\tLikely_path")
    mapping = tmp_path / "lab.toml"
    mapping.write_text(LAB_MAPPING.format(fmt="tsv", release="", contig="chrom", pos="pos",
                                          ref="ref", alt="alt", cls="class"))
    res = cli("snapshot", "add", table, "--format", "table", "--mapping", mapping,
              "--assembly", "GRCh38", "--release-date", "2024-01-01")
    assert res.code == 3, res.err
    assert f"{table}: the file does not end with a newline" in res.err


# ------------------------------------------------------------ the build of a release
CLINVAR_ROW = ("1\t45332200\t5293\tA\tG\t.\t.\tCLNSIG=Pathogenic;"
               "CLNREVSTAT=criteria_provided,_single_submitter\n")


def release_with(tmp_path: Path, header: str) -> Path:
    path = tmp_path / "clinvar_2024-06-02.vcf"
    path.write_text("##fileformat=VCFv4.1\n##fileDate=2024-06-02\n" + header +
                    '##INFO=<ID=CLNSIG,Number=.,Type=String,Description="x">\n'
                    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + CLINVAR_ROW)
    return path


def test_contig_lengths_of_the_other_grch_build_are_said(cli, tmp_path: Path) -> None:
    # said, not refused: MacArthur's real b38 release declares GRCh37's contig lengths
    path = release_with(tmp_path, "##contig=<ID=1,length=249250621>\n")
    res = ok(cli("snapshot", "add", path, "--assembly", "GRCh38"))
    assert "##contig lengths are GRCh37's, but the file is imported as GRCh38" in res.err


@pytest.mark.parametrize("header, words", [
    ("##contig=<ID=1,length=247249719>\n", "another genome build"),
    ("##reference=file:///ref/hg18.fa\n", "another genome build"),
])
def test_a_release_of_another_build_than_said_is_refused(cli, tmp_path: Path, header: str,
                                                         words: str) -> None:
    path = release_with(tmp_path, header)
    res = cli("snapshot", "add", path, "--assembly", "GRCh38")
    assert res.code == 3, res.err
    assert words in res.err, res.err
    mapping = tmp_path / "lab.toml"
    mapping.write_text(LAB_MAPPING.format(fmt="vcf", release="", contig="CHROM", pos="POS",
                                          ref="REF", alt="ALT", cls="CLNSIG"))
    res = cli("snapshot", "add", path, "--format", "table", "--mapping", mapping,
              "--assembly", "GRCh38")
    assert res.code == 3, res.err
    assert words in res.err, res.err


def test_contig_lengths_alone_do_not_name_a_releases_build(cli, tmp_path: Path) -> None:
    path = release_with(tmp_path, "##contig=<ID=1,length=249250621>\n")
    res = cli("snapshot", "add", path)
    assert res.code == 2 and "--assembly" in res.err, res.err


def test_gatk_reference_names_tell_the_build(store, cli, tmp_path: Path) -> None:
    b37 = tmp_path / "b37.vcf"
    b37.write_text("".join(line + "\n" for line in PATIENT.splitlines()
                           if not line.startswith("##contig")).replace(
        "##reference=GRCh38", "##reference=file:///ref/Homo_sapiens_assembly19.fasta"))
    res = cli("annotate", b37, "--snapshot", "latest")
    assert res.code in (3, 4), res.err  # a GRCh37 file against the GRCh38 release
    assert "GRCh37" in res.err, res.err
    hg38 = tmp_path / "hg38.vcf"
    hg38.write_text(b37.read_text().replace("assembly19", "assembly38"))
    res = ok(cli("annotate", hg38, "-f", "json"))
    assert "does not tell the genome build" not in res.err, res.err


# ------------------------------------------------------------ BCF in plain gzip
@pytest.mark.skipif(not shutil.which("bcftools"), reason="bcftools is not installed")
def test_a_plain_gzip_bcf_is_read(store, cli, tmp_path: Path) -> None:
    vcf = tmp_path / "p.vcf"
    vcf.write_text(PATIENT)
    raw = subprocess.run(["bcftools", "view", "-Ou", str(vcf)], capture_output=True,
                         check=True).stdout
    bcf = tmp_path / "p.bcf"
    bcf.write_bytes(gzip.compress(raw))  # plain gzip, not BGZF: bcftools reads it
    expected = {45332200, 7674220, 32332400}
    assert positions(ok(cli("annotate", bcf, "-f", "json"))) == expected
    ok(cli("cohort", "add", bcf, "--baseline", "latest"))


# ------------------------------------------------------------ a FASTA index of another file
def _fasta(tmp_path: Path, newline: str = "\n") -> Path:
    import pysam

    path = tmp_path / "ref.fa"
    seq = "ACGTTGCAAC" * 9
    lines = [">chr1 first contig", *[seq[i:i + 20] for i in range(0, len(seq), 20)],
             ">chr2", "GGGCCCAAATTT"]
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    pysam.faidx(str(path))  # the index htslib writes
    return path


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_fitting_fasta_index_is_used(tmp_path: Path, newline: str) -> None:
    from varreinterp.patient_vcf import FastaReference

    ref = FastaReference(_fasta(tmp_path, newline), tmp_path)
    assert ref.fetch("chr1", 18, 24) == "ACACGT" and ref.fetch("chr2", 0, 3) == "GGG"


@pytest.mark.parametrize("column, value", [(2, "+21"), (2, "-1"), (3, "10"), (4, "26"),
                                           (0, "chr9")])
def test_a_fasta_index_of_another_file_is_refused(tmp_path: Path, column: int,
                                                  value: str) -> None:
    from varreinterp.errors import InputError
    from varreinterp.patient_vcf import FastaReference

    path = _fasta(tmp_path)
    fai = Path(str(path) + ".fai")
    rows = [line.split("\t") for line in fai.read_text().splitlines()]
    old = rows[0][column]
    rows[0][column] = str(int(old) + int(value)) if value[0] in "+-" else value
    fai.write_text("".join("\t".join(r) + "\n" for r in rows))
    with pytest.raises(InputError, match="does not fit the FASTA"):
        FastaReference(path, tmp_path)


def test_a_fasta_without_a_final_newline_is_read(tmp_path: Path) -> None:
    """htslib reads a FASTA whole without one, and its index is checked instead."""
    from varreinterp.patient_vcf import FastaReference

    path = tmp_path / "ref.fa"
    path.write_text(">chr1\nACGTACGTAC\nGGCC")
    assert FastaReference(path, tmp_path).fetch("chr1", 8, 14) == "ACGGCC"


def test_a_bed_cut_inside_its_last_interval_is_refused(store, cli, tmp_path: Path) -> None:
    vcf = tmp_path / "p.vcf"
    vcf.write_text(PATIENT)
    bed = tmp_path / "panel.bed"
    bed.write_text("chr17\t0\t83257441\n")
    assert positions(ok(cli("annotate", vcf, "--regions", bed, "-f", "json"))) == {7674220}
    bed.write_text("chr17\t0\t8325")  # cut: still a valid, narrower interval
    res = cli("annotate", vcf, "--regions", bed, "-f", "json")
    assert res.code == 3, res.err
    assert f"{bed}: BED file: the file does not end with a newline" in res.err, res.err
