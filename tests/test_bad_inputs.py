"""Bad input files, hand-made in tmp_path: each is refused with the right exit code and ONE line on
stderr naming the file (and the line where it is known), nothing on stdout, no traceback, and the
store left without a snapshot."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest
from conftest import tsv_lines

HEADER = """##fileformat=VCFv4.1
##fileDate=2023-07-10
##source=ClinVar
##reference=GRCh37
##INFO=<ID=CLNSIG,Number=.,Type=String,Description="Aggregate germline classification">
##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="Review status">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
"""
HEADER_LINES = 7
SINGLE = "criteria_provided,_single_submitter"


def record(pos: int | str, sig: str = "Benign", rev: str = SINGLE, ref: str = "A",
           alt: str = "G", chrom: str = "1") -> str:
    return f"{chrom}\t{pos}\t{pos}\t{ref}\t{alt}\t.\t.\tCLNSIG={sig};CLNREVSTAT={rev}\n"


def write_vcf(path: Path, records: list[str], header: str = HEADER) -> Path:
    text = header + "".join(records)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def assert_refused(cli, res, code: int, *needles: str) -> str:
    assert res.code == code, (res.code, res.err)
    assert res.out == ""
    assert "Traceback" not in res.err
    lines = res.err.splitlines()
    assert len(lines) == 1, res.err
    assert lines[0].startswith("varreinterp: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    listed = cli("snapshot", "list", "--format", "tsv")
    assert tsv_lines(listed.out)[1:] == []
    return lines[0]


def test_truncated_gzip_in_the_data(cli, tmp_path):
    full = write_vcf(tmp_path / "full.vcf.gz", [record(i) for i in range(1, 20001)])
    data = full.read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[: len(data) // 2])
    res = cli("snapshot", "add", cut)
    assert_refused(cli, res, 3, str(cut), "gzip")


def test_truncated_gzip_in_the_header(cli, tmp_path):
    full = write_vcf(tmp_path / "small.vcf.gz", [record(i) for i in range(1, 4)])
    data = full.read_bytes()
    cut = tmp_path / "cut_small.vcf.gz"
    cut.write_bytes(data[: len(data) // 2])
    res = cli("snapshot", "add", cut)
    assert_refused(cli, res, 3, str(cut), "gzip")


def test_binary_garbage(cli, tmp_path):
    path = tmp_path / "garbage.vcf"
    path.write_bytes(bytes(range(256)) * 64)
    assert_refused(cli, cli("snapshot", "add", path), 3, str(path))


def test_binary_garbage_with_forced_format(cli, tmp_path):
    path = tmp_path / "garbage.vcf"
    path.write_bytes(bytes(range(256)) * 64)
    res = cli("snapshot", "add", path, "--format", "clinvar-vcf")
    assert_refused(cli, res, 3, str(path))


def test_missing_header_auto(cli, tmp_path):
    path = write_vcf(tmp_path / "noheader.vcf", [record(1), record(2)], header="")
    assert_refused(cli, cli("snapshot", "add", path), 3, str(path))


def test_missing_header_forced_clinvar_vcf(cli, tmp_path):
    path = write_vcf(tmp_path / "noheader.vcf", [record(1), record(2)], header="")
    res = cli("snapshot", "add", path, "--format", "clinvar-vcf")
    assert_refused(cli, res, 3, str(path), "header")


def test_header_without_chrom_line(cli, tmp_path):
    header = HEADER.replace("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n", "")
    path = write_vcf(tmp_path / "nochrom.vcf", [record(1)], header=header)
    assert_refused(cli, cli("snapshot", "add", path), 3, str(path), "#CHROM")


@pytest.mark.parametrize("suffix", [".vcf", ".vcf.gz"])
def test_empty_file(cli, tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"" if suffix == ".vcf" else gzip.compress(b""))
    assert_refused(cli, cli("snapshot", "add", path), 3, str(path), "empty")


@pytest.mark.parametrize("suffix", [".vcf", ".vcf.gz"])
def test_non_integer_pos_names_the_line(cli, tmp_path, suffix):
    records = [record(i) for i in range(1, 51)]
    records[29] = record("X30")  # the 30th data line
    path = write_vcf(tmp_path / f"badpos{suffix}", records)
    line = HEADER_LINES + 30
    assert_refused(cli, cli("snapshot", "add", path), 3, f"{path}:{line}:", "X30")


@pytest.mark.parametrize("suffix", [".vcf", ".vcf.gz"])
def test_short_data_line_names_the_line(cli, tmp_path, suffix):
    records = [record(i) for i in range(1, 51)]
    records[29] = "1\t30\t30\tA\tG\n"  # 5 columns instead of 8, on the 30th data line
    path = write_vcf(tmp_path / f"short{suffix}", records)
    line = HEADER_LINES + 30
    assert_refused(cli, cli("snapshot", "add", path), 3, f"{path}:{line}:")


def test_missing_file(cli, tmp_path):
    path = tmp_path / "does_not_exist.vcf.gz"
    assert_refused(cli, cli("snapshot", "add", path), 3, str(path), "no such file")


def test_directory_instead_of_file(cli, tmp_path):
    path = tmp_path / "adir"
    path.mkdir()
    assert_refused(cli, cli("snapshot", "add", path), 3, str(path))


def test_assembly_contradicting_the_reference_header(cli, tmp_path):
    path = write_vcf(tmp_path / "grch37.vcf", [record(1), record(2)])
    res = cli("snapshot", "add", path, "--assembly", "GRCh38")
    assert_refused(cli, res, 3, str(path), "GRCh38", "GRCh37")


def test_unknown_assembly_is_a_usage_error(cli, tmp_path):
    path = write_vcf(tmp_path / "grch37.vcf", [record(1)])
    res = cli("snapshot", "add", path, "--assembly", "hg99")
    assert_refused(cli, res, 2, "hg99")


def test_unknown_clnsig_names_term_and_line(cli, tmp_path):
    records = [record(i) for i in range(1, 11)]
    records[6] = record(7, sig="Pathogenicish")
    path = write_vcf(tmp_path / "unknown.vcf", records)
    res = cli("snapshot", "add", path)
    assert_refused(cli, res, 3, f"{path}:{HEADER_LINES + 7}:", "'Pathogenicish'",
                   "--allow-unknown-terms")


def test_unknown_review_status_names_term_and_line(cli, tmp_path):
    records = [record(i) for i in range(1, 11)]
    records[3] = record(4, rev="five_gold_stars")
    path = write_vcf(tmp_path / "unknown_rev.vcf", records)
    res = cli("snapshot", "add", path)
    assert_refused(cli, res, 3, f"{path}:{HEADER_LINES + 4}:", "'five_gold_stars'")


def test_unknown_term_in_numeric_file_names_its_line(cli, tmp_path):
    header = HEADER.replace(
        "##INFO=<ID=CLNREVSTAT",
        '##INFO=<ID=CLNALLE,Number=.,Type=Integer,Description="allele">\n##INFO=<ID=CLNREVSTAT')
    records = [f"1\t{i}\trs{i}\tA\tG\t.\t.\tCLNALLE=1;CLNSIG=2;CLNREVSTAT=single\n"
               for i in range(1, 6)]
    records[2] = "1\t3\trs3\tA\tG\t.\t.\tCLNALLE=1;CLNSIG=9;CLNREVSTAT=single\n"
    path = write_vcf(tmp_path / "numeric.vcf", records, header=header)
    res = cli("snapshot", "add", path)
    assert_refused(cli, res, 3, f"{path}:{header.count(chr(10)) + 3}:", "'9'")


def test_allow_unknown_terms_imports_as_other_counts_and_warns(cli, store_dir, tmp_path):
    records = [record(1, sig="Pathogenic"), record(2), record(3, sig="Pathogenicish"),
               record(4, sig="Pathogenicish")]
    path = write_vcf(tmp_path / "unknown.vcf", records)
    res = cli("snapshot", "add", path, "--allow-unknown-terms")
    assert res.code == 0, res.err
    assert res.out == ""
    warnings = [line for line in res.err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1
    assert "Pathogenicish" in warnings[0] and str(path) in warnings[0]
    name = "clinvar-GRCh37-2023-07-10"
    manifest = json.loads((store_dir / "snapshots" / name / "manifest.json").read_text())
    assert manifest["unknown_terms"] == {"Pathogenicish": 2}
    assert manifest["tiers"] == {"pathogenic": 1, "uncertain": 0, "benign": 1,
                                 "conflicting": 0, "other": 2}
    parquet = store_dir / "snapshots" / name / "variants.parquet"
    got = duckdb.sql(f"SELECT pos, tier, raw_classification FROM '{parquet}' "
                     "WHERE pos IN (3, 4) ORDER BY pos").fetchall()
    assert got == [(3, "other", "Pathogenicish"), (4, "other", "Pathogenicish")]


def test_no_file_date_and_no_release_date_is_a_usage_error(cli, tmp_path):
    header = HEADER.replace("##fileDate=2023-07-10\n", "")
    path = write_vcf(tmp_path / "nodate.vcf", [record(1)], header=header)
    assert_refused(cli, cli("snapshot", "add", path), 2, str(path), "--release-date")


def test_no_file_date_with_release_date_option(cli, store_dir, tmp_path):
    header = HEADER.replace("##fileDate=2023-07-10\n", "")
    path = write_vcf(tmp_path / "nodate.vcf", [record(1)], header=header)
    res = cli("snapshot", "add", path, "--release-date", "2022-05-06")
    assert res.code == 0, res.err
    assert (store_dir / "snapshots" / "clinvar-GRCh37-2022-05-06").is_dir()


def test_release_date_option_contradicting_the_file(cli, tmp_path):
    path = write_vcf(tmp_path / "dated.vcf", [record(1)])
    res = cli("snapshot", "add", path, "--release-date", "2022-05-06")
    assert_refused(cli, res, 2, str(path), "2022-05-06", "2023-07-10")


def test_malformed_release_date_option(cli, tmp_path):
    path = write_vcf(tmp_path / "dated.vcf", [record(1)])
    res = cli("snapshot", "add", path, "--release-date", "yesterday")
    assert_refused(cli, res, 2, "yesterday")


def test_no_assembly_anywhere_is_a_usage_error(cli, tmp_path):
    header = HEADER.replace("##reference=GRCh37\n", "")
    path = write_vcf(tmp_path / "noref.vcf", [record(1)], header=header)
    assert_refused(cli, cli("snapshot", "add", path), 2, str(path), "--assembly")


def test_somatic_only_file_is_refused(cli, tmp_path):
    header = HEADER.replace(
        "##INFO=<ID=CLNREVSTAT",
        '##INFO=<ID=SCI,Number=.,Type=String,Description="sci">\n##INFO=<ID=CLNREVSTAT')
    records = ["7\t55249071\t16613\tC\tT\t.\t.\tSCI=Tier_I_-_Strong\n"]
    path = write_vcf(tmp_path / "somatic.vcf", records, header=header)
    assert_refused(cli, cli("snapshot", "add", path), 3, str(path), "germline")


def _summary(path: Path, body: list[list[str]]) -> Path:
    header = ["AlleleID", "ClinicalSignificance", "Assembly", "Chromosome", "ReviewStatus",
              "VariationID", "PositionVCF", "ReferenceAlleleVCF", "AlternateAlleleVCF"]
    path.write_text("#" + "\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in body))
    return path


def _summary_row(i: int) -> list[str]:
    return [str(i), "Benign", "GRCh38", "1", "criteria provided, single submitter", str(i),
            str(1000 + i), "A", "G"]


def test_variant_summary_non_integer_position_names_the_line(cli, tmp_path):
    body = [_summary_row(i) for i in range(1, 21)]
    body[11][6] = "12x"  # data row 12 = line 13
    path = _summary(tmp_path / "variant_summary.txt", body)
    res = cli("snapshot", "add", path, "--release-date", "2024-01-01")
    assert_refused(cli, res, 3, f"{path}:13:", "12x")


def test_variant_summary_short_row_names_the_line(cli, tmp_path):
    body = [_summary_row(i) for i in range(1, 21)]
    body[11] = body[11][:5]  # data row 12 = line 13
    path = _summary(tmp_path / "variant_summary.txt", body)
    res = cli("snapshot", "add", path, "--release-date", "2024-01-01")
    assert_refused(cli, res, 3, f"{path}:13:")
