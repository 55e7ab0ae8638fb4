"""The physical shape of input text: line endings, a byte-order mark, very long lines, and a
--reference FASTA of another build.

Line endings follow htslib: a line may end in LF or CRLF and a file may mix them; every such
file reads exactly like its LF twin (same records, same output, exit 0). A lone CR inside a line
is refused (exit 3 naming the file and line), as is a UTF-8 byte-order mark (exit 3). A 10 MB
INFO field is read. A FASTA whose contig lengths contradict the VCF is refused (exit 3 naming
both files). Each case is run for a patient VCF (`annotate`), a ClinVar release (`snapshot
add`) and a lab TSV table (`snapshot add --mapping`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLES, CliResult, invoke, shared, tsv_lines

OLD = "clinvar-GRCh38-2024-01-07"
OLD_VCF = SAMPLES / "clinvar_GRCh38_2024-01-07.vcf"
TRIO = SAMPLES / "trio.vcf"
INFO = "varreinterp: INFO: "
HG19_CHR20 = "reference/hg19.chr20.real_at_9.995-11.095Mb.fa.gz"
GRCH38_CHR20 = 64_444_167
GRCH38_CHR1 = 248_956_422


# ------------------------------------------------------------------------------ line endings
def split_lines(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """(header lines, data lines) of an LF text, without their line ends. The header is the
    '#' lines, or the first line of a table without them (its column names)."""
    lines = data.split(b"\n")
    assert lines[-1] == b"", "the LF original must end in a newline"
    lines = lines[:-1]
    n = next(i for i, line in enumerate(lines) if not line.startswith(b"#")) or 1
    return lines[:n], lines[n:]


def join(lines: list[bytes], ends: Callable[[int], bytes]) -> bytes:
    return b"".join(line + ends(i) for i, line in enumerate(lines))


def variant(data: bytes, form: str) -> bytes:
    """The LF text `data` rewritten with the line endings of `form`."""
    header, body = split_lines(data)
    lines = header + body
    if form == "lf":
        return data
    if form == "crlf":
        return join(lines, lambda i: b"\r\n")
    if form == "lf-header-crlf-body":
        return join(header, lambda i: b"\n") + join(body, lambda i: b"\r\n")
    if form == "mixed-alternating":
        return join(lines, lambda i: b"\r\n" if i % 2 else b"\n")
    if form == "mixed-halves":  # CRLF header, then LF, then CRLF data lines
        half = len(header) + len(body) // 2
        return join(lines, lambda i: b"\r\n" if i < len(header) or i >= half else b"\n")
    raise AssertionError(form)


FORMS = ["crlf", "lf-header-crlf-body", "mixed-alternating", "mixed-halves"]


def with_lone_cr(data: bytes, data_line: int) -> tuple[bytes, int]:
    """A CR inside the `data_line`-th data line (1-based): (text, its file line number)."""
    header, body = split_lines(data)
    line = body[data_line - 1]
    cut = line.index(b"\t") + 3
    body[data_line - 1] = line[:cut] + b"\r" + line[cut:]
    return join(header + body, lambda i: b"\n"), len(header) + data_line


def write(path: Path, data: bytes) -> Path:
    """Write `data`, bgzip-compressed when the name ends in .gz."""
    if path.suffix == ".gz":
        import pysam

        plain = path.with_suffix("")
        plain.write_bytes(data)
        pysam.tabix_compress(str(plain), str(path), force=True)
        plain.unlink()
    else:
        path.write_bytes(data)
    return path


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if not line.startswith(INFO)]


def assert_refused(res: CliResult, code: int, *needles: str) -> str:
    assert res.code == code, (res.code, res.err[-3000:])
    assert res.out == ""
    assert "Traceback" not in res.err
    lines = error_lines(res.err)
    assert len(lines) == 1, res.err[-3000:]
    assert lines[0].startswith("varreinterp: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot_rows(store: Path, name: str) -> list[dict[str, Any]]:
    """Every row of a snapshot's Parquet file, in a stable order."""
    import pyarrow.parquet as pq

    rows = pq.read_table(store / "snapshots" / name / "variants.parquet").to_pylist()
    return sorted(rows, key=lambda r: (str(r["chrom"]), int(r["pos"]), str(r["ref"]),
                                       str(r["alt"])))


# ------------------------------------------------------------------------------ patient VCF
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("structure") / "store"
    res = invoke(path, "snapshot", "add", OLD_VCF)
    assert res.code == 0, res.err
    return path


def annotate(store: Path, vcf: Path, *extra: str | Path) -> CliResult:
    return invoke(store, "annotate", vcf, "--snapshot", OLD, "-f", "tsv", *extra)


def rows_and_counts(res: CliResult, vcf: Path) -> tuple[list[str], list[str]]:
    """The annotation rows (after the provenance line) and the INFO count lines with the
    file's own path masked."""
    assert res.code == 0, res.err[-3000:]
    counts = [line.replace(str(vcf), "VCF") for line in res.err.splitlines()
              if line.startswith(INFO)]
    return res.out.splitlines()[1:], counts


@pytest.fixture(scope="module")
def lf_annotation(store: Path) -> tuple[list[str], list[str]]:
    rows, counts = rows_and_counts(annotate(store, TRIO), TRIO)
    assert len(rows) > 10  # the trio carries classified variants
    return rows, counts


@pytest.mark.parametrize("suffix", [".vcf", ".vcf.gz"])
@pytest.mark.parametrize("form", FORMS)
def test_patient_vcf_line_endings_read_like_lf(store: Path, tmp_path: Path,
                                               lf_annotation: tuple[list[str], list[str]],
                                               form: str, suffix: str) -> None:
    vcf = write(tmp_path / f"trio_{form}{suffix}", variant(TRIO.read_bytes(), form))
    assert rows_and_counts(annotate(store, vcf), vcf) == lf_annotation


@pytest.mark.parametrize("suffix", [".vcf", ".vcf.gz"])
def test_patient_vcf_lone_cr_in_a_data_line(store: Path, tmp_path: Path, suffix: str) -> None:
    data, line = with_lone_cr(TRIO.read_bytes(), 4)
    vcf = write(tmp_path / f"trio_cr{suffix}", data)
    assert_refused(annotate(store, vcf), 3, f"{vcf}:{line}:")


def test_patient_vcf_lone_cr_in_a_header_line(store: Path, tmp_path: Path) -> None:
    header, body = split_lines(TRIO.read_bytes())
    header[1] = header[1][:10] + b"\r" + header[1][10:]
    vcf = write(tmp_path / "trio_cr_header.vcf", join(header + body, lambda i: b"\n"))
    assert_refused(annotate(store, vcf), 3, f"{vcf}:2:")


@pytest.mark.parametrize("suffix", [".vcf", ".vcf.gz"])
def test_patient_vcf_with_byte_order_mark(store: Path, tmp_path: Path, suffix: str) -> None:
    vcf = write(tmp_path / f"trio_bom{suffix}", b"\xef\xbb\xbf" + TRIO.read_bytes())
    line = assert_refused(annotate(store, vcf), 3, str(vcf))
    assert "byte-order mark" in line, line


def long_info(data: bytes, key: bytes, size: int = 10_000_000) -> bytes:
    """`data` with a `size`-byte INFO field added to the record at 3:37025900."""
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        fields = line.split(b"\t")
        if fields[:2] == [b"3", b"37025900"]:
            info = b"LONG=" + b"A" * size
            fields[7] = info if fields[7] == b"." else fields[7] + b";" + info
            lines[i] = b"\t".join(fields)
            return b"\n".join(lines)
    raise AssertionError("no record at 3:37025900")


@pytest.mark.parametrize("suffix", [".vcf", ".vcf.gz"])
def test_patient_vcf_with_10_mb_info_field(store: Path, tmp_path: Path, suffix: str,
                                           lf_annotation: tuple[list[str], list[str]]) -> None:
    vcf = write(tmp_path / f"trio_long{suffix}", long_info(TRIO.read_bytes(), b"LONG"))
    rows, counts = rows_and_counts(annotate(store, vcf), vcf)
    assert any(r.startswith("CHILD01\t3\t37025900\t") for r in rows), "the long record is lost"
    assert (rows, counts) == lf_annotation


def test_clinvar_release_with_10_mb_info_field(store: Path, tmp_path: Path) -> None:
    text = OLD_VCF.read_bytes().replace(b"CLNDN=", b"CLNDN=" + b"X" * 10_000_000 + b"_", 1)
    data = long_info(text, b"LONG")
    release = write(tmp_path / "clinvar_long.vcf.gz", data)
    own = tmp_path / "store"
    res = invoke(own, "snapshot", "add", release, "--name", "long")
    assert res.code == 0, res.err
    rows = {(r["chrom"], r["pos"]): r for r in snapshot_rows(own, "long")}
    reference = {(r["chrom"], r["pos"]): r for r in snapshot_rows(store, OLD)}
    assert rows.keys() == reference.keys()
    long_record = rows[("3", 37025900)]
    assert long_record["classification"] == reference[("3", 37025900)]["classification"]
    assert long_record["gene"] == reference[("3", 37025900)]["gene"]
    assert any(len(str(r["conditions"] or "")) > 10_000_000 for r in rows.values()), \
        "the 10 MB CLNDN value was cut"
    res = invoke(own, "annotate", TRIO, "--snapshot", "long", "-f", "tsv")
    assert res.code == 0, res.err
    assert any("\t3\t37025900\t" in r for r in res.out.splitlines())


# ------------------------------------------------------------------------------ --reference
def grch38_vcf(path: Path, contigs: dict[str, int], chrom: str, pos: int) -> Path:
    head = ["##fileformat=VCFv4.2", "##reference=GRCh38"]
    head += [f"##contig=<ID={c},length={n}>" for c, n in contigs.items()]
    head += ['##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1",
             f"{chrom}\t{pos}\t.\tA\tAG\t50\tPASS\t.\tGT\t0/1"]
    path.write_text("\n".join(head) + "\n")
    return path


def small_fasta(path: Path, contig: str, length: int) -> Path:
    import pysam

    seq = ("ACGTTGCA" * (length // 8 + 1))[:length]
    path.write_text(f">{contig}\n" + "\n".join(seq[i:i + 60] for i in range(0, length, 60))
                    + "\n")
    pysam.faidx(str(path))
    return path


def assert_names_both(res: CliResult, vcf: Path, fasta: Path) -> None:
    line = assert_refused(res, 3)
    assert str(vcf) in line and str(fasta) in line, line


@pytest.mark.parametrize("command", ["annotate", "cohort-add"])
def test_reference_of_another_build_hg19_chr20(tmp_path: Path, command: str) -> None:
    fasta = shared(HG19_CHR20)
    vcf = grch38_vcf(tmp_path / "grch38_chr20.vcf", {"chr20": GRCH38_CHR20}, "chr20",
                     10_000_100)
    own = tmp_path / "store"
    res = invoke(own, "snapshot", "add", OLD_VCF)
    assert res.code == 0, res.err
    args: list[str | Path] = (["annotate", vcf, "--snapshot", OLD, "-f", "tsv"]
                              if command == "annotate"
                              else ["cohort", "add", vcf, "--baseline", OLD])
    assert_names_both(invoke(own, *args, "--reference", fasta), vcf, fasta)
    assert tsv_lines(invoke(own, "cohort", "list", "-f", "tsv").out)[1:] == []


def test_reference_of_another_build_without_contig_lines(store: Path, tmp_path: Path) -> None:
    """No ##contig to compare: the FASTA's own lengths (hg19 chr20) say GRCh37."""
    fasta = shared(HG19_CHR20)
    vcf = grch38_vcf(tmp_path / "grch38_no_contigs.vcf", {}, "chr20", 10_000_100)
    assert_names_both(annotate(store, vcf, "--reference", fasta), vcf, fasta)


def test_reference_contig_length_differs_from_header(store: Path, tmp_path: Path) -> None:
    fasta = small_fasta(tmp_path / "small.fa", "chr1", 1000)
    vcf = grch38_vcf(tmp_path / "grch38_chr1.vcf", {"chr1": GRCH38_CHR1}, "chr1", 100)
    line = assert_refused(annotate(store, vcf, "--reference", fasta), 3)
    assert str(vcf) in line and str(fasta) in line, line
    assert re.search(r"248,?956,?422", line) and re.search(r"1,?000\b", line), line


# ------------------------------------------------------------------------------ ClinVar release
@pytest.fixture(scope="module")
def lf_release_rows(store: Path) -> list[dict[str, Any]]:
    return snapshot_rows(store, OLD)


@pytest.mark.parametrize("suffix", [".vcf", ".vcf.gz"])
@pytest.mark.parametrize("form", FORMS)
def test_clinvar_release_line_endings_read_like_lf(tmp_path: Path, form: str, suffix: str,
                                                   lf_release_rows: list[dict[str, Any]]
                                                   ) -> None:
    release = write(tmp_path / f"clinvar_GRCh38_2024-01-07{suffix}",
                    variant(OLD_VCF.read_bytes(), form))
    own = tmp_path / "store"
    res = invoke(own, "snapshot", "add", release)
    assert res.code == 0, res.err
    assert snapshot_rows(own, OLD) == lf_release_rows


def test_clinvar_release_lone_cr(tmp_path: Path) -> None:
    data, line = with_lone_cr(OLD_VCF.read_bytes(), 7)
    release = write(tmp_path / "clinvar_GRCh38_2024-01-07.vcf", data)
    own = tmp_path / "store"
    assert_refused(invoke(own, "snapshot", "add", release), 3, f"{release}:{line}:")
    assert not (own / "snapshots").is_dir() or list((own / "snapshots").iterdir()) == []


def test_clinvar_release_with_byte_order_mark(tmp_path: Path) -> None:
    release = write(tmp_path / "clinvar_GRCh38_2024-01-07.vcf",
                    b"\xef\xbb\xbf" + OLD_VCF.read_bytes())
    own = tmp_path / "store"
    line = assert_refused(invoke(own, "snapshot", "add", release), 3, str(release))
    assert "byte-order mark" in line, line


# ------------------------------------------------------------------------------ lab TSV table
LAB_MAPPING = """[source]
format = "tsv"
name = "lab"
release_date = "2024-02-01"

[columns]
contig = "chrom"
position = "pos"
ref = "ref"
alt = "alt"
classification = "significance"
review_status = "review"
gene = "gene"
"""


@pytest.fixture(scope="module")
def lab_table(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path, Path]:
    """A lab TSV made from the sample release's records (LF), its mapping, and the store
    holding its LF import (snapshot `lab-GRCh38-2024-02-01`)."""
    base = tmp_path_factory.mktemp("lab")
    rows = [b"chrom\tpos\tref\talt\tsignificance\treview\tgene"]
    for line in OLD_VCF.read_bytes().split(b"\n"):
        if not line or line.startswith(b"#"):
            continue
        f = line.split(b"\t")
        info = dict(kv.split(b"=", 1) for kv in f[7].split(b";") if b"=" in kv)
        if b"CLNSIG" in info:
            gene = info.get(b"GENEINFO", b"").split(b":")[0]
            rows.append(b"\t".join([f[0], f[1], f[3], f[4], info[b"CLNSIG"],
                                    info.get(b"CLNREVSTAT", b""), gene]))
    data = b"\n".join(rows) + b"\n"
    mapping = base / "lab.toml"
    mapping.write_text(LAB_MAPPING)
    table = write(base / "lab.tsv", data)
    store = base / "store"
    res = invoke(store, "snapshot", "add", table, "--mapping", mapping, "--assembly", "GRCh38")
    assert res.code == 0, res.err
    assert len(snapshot_rows(store, "lab-GRCh38-2024-02-01")) == len(rows) - 1
    return data, mapping, store


@pytest.mark.parametrize("form", FORMS)
def test_lab_table_line_endings_read_like_lf(tmp_path: Path, form: str,
                                             lab_table: tuple[bytes, Path, Path]) -> None:
    data, mapping, lf_store = lab_table
    table = write(tmp_path / "lab.tsv", variant(data, form))
    own = tmp_path / "store"
    res = invoke(own, "snapshot", "add", table, "--mapping", mapping, "--assembly", "GRCh38")
    assert res.code == 0, res.err
    name = "lab-GRCh38-2024-02-01"
    assert snapshot_rows(own, name) == snapshot_rows(lf_store, name)


def test_lab_table_lone_cr(tmp_path: Path, lab_table: tuple[bytes, Path, Path]) -> None:
    data, mapping, _ = lab_table
    text, line = with_lone_cr(data, 5)
    table = write(tmp_path / "lab.tsv", text)
    own = tmp_path / "store"
    res = invoke(own, "snapshot", "add", table, "--mapping", mapping, "--assembly", "GRCh38")
    assert_refused(res, 3, f"{table}:{line}:")


def test_lab_table_with_byte_order_mark(tmp_path: Path,
                                        lab_table: tuple[bytes, Path, Path]) -> None:
    data, mapping, _ = lab_table
    table = write(tmp_path / "lab.tsv", b"\xef\xbb\xbf" + data)
    own = tmp_path / "store"
    res = invoke(own, "snapshot", "add", table, "--mapping", mapping, "--assembly", "GRCh38")
    line = assert_refused(res, 3, str(table))
    assert "byte-order mark" in line, line
