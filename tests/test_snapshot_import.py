"""`snapshot add` on the real public files in ../shared/data (skipped when that folder is absent).

Expected counts are computed independently in the test from the raw file wherever practical, with
a small tier table of our own, so a wrong mapping in the product cannot agree with itself."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest
from builders import write_clinvar
from conftest import MAPPINGS, invoke, shared
from ncbi_mirror import NcbiMirror

from varreinterp import vcfscan

CLINVAR37 = "clinvar/GRCh37"
CLINVAR38 = "clinvar/GRCh38"
SUMMARY = "clinvar/variant_summary"
CUSTOM = "clinvar/custom_format"

# Independent of varreinterp.vocabulary: only the terms these files actually use.
_TIER = {
    "pathogenic": "pathogenic", "likely_pathogenic": "pathogenic",
    "uncertain_significance": "uncertain",
    "likely_benign": "benign", "benign": "benign",
    "conflicting_interpretations_of_pathogenicity": "conflicting",
    "not_provided": "other", "risk_factor": "other",
}
_STARS = {
    "criteria_provided,_conflicting_interpretations": 1,
    "criteria_provided,_single_submitter": 1,
    "criteria_provided,_multiple_submitters,_no_conflicts": 2,
    "no_assertion_criteria_provided": 0,
    "no_assertion_provided": 0,
    "reviewed_by_expert_panel": 3,
    "practice_guideline": 4,
}


def independent_tier(raw: str) -> str:
    """Tier of a raw CLNSIG-like value: '/' aggregates and '|' lists of one tier stay in it,
    several tiers on the benign..pathogenic axis are a conflict."""
    text = raw.replace(", ", ",_").replace("..", ",_").replace(" ", "_").lower()
    tiers = {_TIER[t] for t in re.split(r"[|/]|,_", text)}
    axis = tiers - {"other"}
    if not axis:
        return "other"
    return axis.pop() if len(axis) == 1 else "conflicting"


def read_vcf(path: Path) -> list[tuple[list[str], dict[str, str]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            info = dict(kv.split("=", 1) for kv in fields[7].split(";") if "=" in kv)
            rows.append((fields, info))
    return rows


def manifest(store: Path, name: str) -> dict:
    return json.loads((store / "snapshots" / name / "manifest.json").read_text())


def rows(store: Path, name: str, where: str = "TRUE") -> list[dict]:
    path = store / "snapshots" / name / "variants.parquet"
    rel = duckdb.sql(f"SELECT * FROM '{path}' WHERE {where} ORDER BY chrom, pos, ref, alt")
    cols = rel.columns
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def one(store: Path, name: str, chrom: str, pos: int, ref: str, alt: str) -> dict:
    found = rows(store, name, f"chrom = '{chrom}' AND pos = {pos} AND ref = '{ref}' "
                              f"AND alt = '{alt}'")
    assert len(found) == 1, f"{chrom}:{pos} {ref}>{alt}: {len(found)} rows"
    return found[0]


def names(cli) -> list[str]:
    res = cli("snapshot", "list", "--format", "json")
    assert res.code == 0, res.err
    return [json.loads(line)["name"] for line in res.out.splitlines()]


def add_ok(cli, *args) -> str:
    res = cli("snapshot", "add", *args)
    assert res.code == 0, res.err
    assert res.out == ""
    return res.err


# ------------------------------------------------------------------------------ ClinVar VCF
def test_clinvar_20191202(cli, store_dir):
    path = shared(f"{CLINVAR37}/clinvar_20191202.chr1_949k-977k.vcf.gz")
    err = add_ok(cli, path)
    name = "clinvar-GRCh37-2019-12-02"
    assert f"added snapshot {name}" in err
    assert names(cli) == [name]
    m = manifest(store_dir, name)
    assert m["records"] == 71
    assert m["release_date"] == "2019-12-02"
    assert m["assembly"] == "GRCh37"
    assert m["source_kind"] == "clinvar-vcf"
    assert m["source_file"] == path.name
    assert m["skipped"] == {}
    assert m["unknown_terms"] == {}
    raw = read_vcf(path)
    expected_tiers = Counter(independent_tier(info["CLNSIG"]) for _, info in raw)
    assert {k: v for k, v in m["tiers"].items() if v} == dict(expected_tiers)
    assert m["tiers"] == {"pathogenic": 5, "uncertain": 38, "benign": 25, "conflicting": 3,
                          "other": 0}
    expected_stars = Counter(str(_STARS[info["CLNREVSTAT"]]) for _, info in raw)
    assert m["stars"] == dict(expected_stars)

    row = one(store_dir, name, "1", 949739, "G", "T")
    assert row["classification"] == "Pathogenic"
    assert row["tier"] == "pathogenic"
    assert row["raw_classification"] == "Pathogenic"
    assert row["gene"] == "ISG15"
    assert row["variation_id"] == "161454"
    # The pre-2024 vocabulary is normalized, the raw string kept beside it.
    conflicting = rows(store_dir, name, "tier = 'conflicting'")
    assert len(conflicting) == 3
    for r in conflicting:
        assert r["classification"] == "Conflicting_classifications_of_pathogenicity"
        assert r["raw_classification"] == "Conflicting_interpretations_of_pathogenicity"
        assert r["review_status"] == "criteria_provided,_conflicting_classifications"
        assert r["raw_review_status"] == "criteria_provided,_conflicting_interpretations"
        assert r["stars"] == 1


def test_clinvar_20191202_row_values_match_the_file(cli, store_dir):
    path = shared(f"{CLINVAR37}/clinvar_20191202.chr1_949k-977k.vcf.gz")
    add_ok(cli, path)
    stored = {(r["chrom"], r["pos"], r["ref"], r["alt"]): r
              for r in rows(store_dir, "clinvar-GRCh37-2019-12-02")}
    raw = read_vcf(path)
    assert len(stored) == len(raw) == 71
    for fields, info in raw:
        r = stored[(fields[0], int(fields[1]), fields[3], fields[4])]
        assert r["raw_classification"] == info["CLNSIG"]
        assert r["raw_review_status"] == info["CLNREVSTAT"]  # literal comma kept whole
        assert r["variation_id"] == fields[2]
        assert r["tier"] == independent_tier(info["CLNSIG"])
        assert r["stars"] == _STARS[info["CLNREVSTAT"]]


def test_clinvar_20230710_counts_match_an_independent_read(cli, store_dir):
    path = shared(f"{CLINVAR37}/clinvar_20230710.chr1_69k-981k.vcf.gz")
    raw = read_vcf(path)
    alt_missing = [f for f, _ in raw if f[4] == "."]
    kept = [(f, info) for f, info in raw if f[4] != "."]
    expected_tiers = Counter(independent_tier(info["CLNSIG"]) for _, info in kept)
    expected_stars = Counter(str(_STARS[info["CLNREVSTAT"]]) for _, info in kept)
    assert len(raw) == 2000 and len(alt_missing) == 1  # what the README says

    add_ok(cli, path)
    m = manifest(store_dir, "clinvar-GRCh37-2023-07-10")
    assert m["records"] == len(kept) == 1999
    assert m["skipped"] == {"alt_missing": len(alt_missing)}
    assert {k: v for k, v in m["tiers"].items() if v} == dict(expected_tiers)
    assert m["stars"] == dict(expected_stars)
    # The ALT=. record (1:877831 T>.) is not stored; the real allele at that position is.
    at_pos = rows(store_dir, "clinvar-GRCh37-2023-07-10", "pos = 877831")
    assert sorted(r["alt"] for r in at_pos) == sorted(
        f[4] for f, _ in kept if f[1] == "877831") == ["C"]
    # Old review status wording normalized: no_assertion_provided -> no_classification_provided.
    renamed = rows(store_dir, "clinvar-GRCh37-2023-07-10",
                   "raw_review_status = 'no_assertion_provided'")
    assert len(renamed) == 2
    assert {r["review_status"] for r in renamed} == {"no_classification_provided"}
    assert {r["stars"] for r in renamed} == {0}


def test_clinvar_20230710_changed_rows_from_the_readme(cli, store_dir):
    add_ok(cli, shared(f"{CLINVAR37}/clinvar_20191202.chr1_949k-977k.vcf.gz"))
    add_ok(cli, shared(f"{CLINVAR37}/clinvar_20230710.chr1_69k-981k.vcf.gz"))
    assert names(cli) == ["clinvar-GRCh37-2019-12-02", "clinvar-GRCh37-2023-07-10"]
    old = one(store_dir, "clinvar-GRCh37-2019-12-02", "1", 949739, "G", "T")
    new = one(store_dir, "clinvar-GRCh37-2023-07-10", "1", 949739, "G", "T")
    assert (old["classification"], new["classification"]) == ("Pathogenic", "Likely_pathogenic")
    assert old["tier"] == new["tier"] == "pathogenic"


def test_old_numeric_format_20170404(cli, store_dir):
    path = shared(f"{CLINVAR37}/clinvar_20170404.old_numeric_format.vcf")
    add_ok(cli, path)
    name = "clinvar-GRCh37-2017-04-04"
    assert names(cli) == [name]
    m = manifest(store_dir, name)
    # 14 data lines: 10 single-allele chr1 rows; 1:955619 G>A,C (CLNALLE=2: only C);
    # 11:108151707 T>TA,TT,TTA (CLNALLE=2,1: TT and TA) and twice more T>TA (same allele).
    assert m["records"] == 12
    assert m["release_date"] == "2017-04-04"
    # 11:108151707 T>TT (a dupT) is stored as given, counted: it is not left-aligned
    assert m["skipped"] == {"alt_not_classified": 2, "duplicate_allele_key": 2,
                            "not_left_aligned": 1}
    assert m["tiers"] == {"pathogenic": 4, "uncertain": 1, "benign": 5, "conflicting": 0,
                          "other": 2}

    c = one(store_dir, name, "1", 955619, "G", "C")
    assert (c["classification"], c["tier"], c["raw_classification"]) == ("other", "other", "255")
    assert (c["review_status"], c["stars"]) == ("criteria_provided,_conflicting_classifications",
                                                1)
    assert rows(store_dir, name, "pos = 955619 AND alt = 'A'") == []

    p = one(store_dir, name, "1", 949739, "G", "T")
    assert (p["classification"], p["tier"], p["raw_classification"]) == (
        "Pathogenic", "pathogenic", "5")
    assert (p["review_status"], p["stars"]) == ("no_assertion_criteria_provided", 0)

    ta = one(store_dir, name, "11", 108151707, "T", "TA")
    assert (ta["classification"], ta["tier"], ta["raw_classification"]) == (
        "Benign|other", "benign", "2|255|2")
    assert ta["stars"] == 2  # mult|conf|single: the best-reviewed submission
    tt = one(store_dir, name, "11", 108151707, "T", "TT")
    assert (tt["classification"], tt["raw_classification"], tt["stars"]) == ("Benign", "2", 1)
    assert rows(store_dir, name, "pos = 108151707 AND alt = 'TTA'") == []


def test_somatic_fields_kept_on_their_own_columns(cli, store_dir):
    err = add_ok(cli, shared(f"{CLINVAR37}/clinvar_20231002.somatic_fields_sample.vcf"))
    # the somatic-only record is said to be left out of every report
    assert "2 records (pathogenic 1, 1 without a germline class, not reported)" \
        in err, err
    name = "clinvar-GRCh37-2023-10-02"
    m = manifest(store_dir, name)
    assert m["records"] == 2
    assert m["tiers"]["pathogenic"] == 1
    assert sum(m["tiers"][t] for t in ("uncertain", "benign", "conflicting", "other")) == 0

    kras = one(store_dir, name, "12", 25398285, "C", "A")
    assert (kras["classification"], kras["tier"], kras["stars"]) == (
        "Pathogenic", "pathogenic", 1)
    assert (kras["onc_classification"], kras["onc_review_status"]) == (
        "Oncogenic", "reviewed_by_expert_panel")
    assert (kras["sci_classification"], kras["sci_review_status"]) == (
        "Tier_I_-_Strong", "criteria_provided,_multiple_submitters")

    egfr = one(store_dir, name, "7", 55249071, "C", "T")  # somatic only: no CLNSIG
    assert egfr["classification"] is None
    assert egfr["raw_classification"] is None
    assert egfr["tier"] is None
    assert egfr["stars"] is None
    assert egfr["onc_classification"] is None
    assert (egfr["sci_classification"], egfr["sci_review_status"]) == (
        "Tier_I_-_Strong", "criteria_provided,_multiple_submitters")
    # Never mix the axes: the somatic vocabulary is nowhere in the germline columns. The
    # CLNSIGINCL/ONCINCL fields (haplotype classifications) are not this variant's either.
    for r in rows(store_dir, name):
        for col in ("classification", "raw_classification", "tier"):
            assert not re.search(r"oncogenic|tier_i", str(r[col]), re.I), (col, r[col])


def test_grch38_20211025_all_chromosomes(cli, store_dir):
    path = shared(f"{CLINVAR38}/clinvar_20211025.2_per_chrom.vcf.gz")
    add_ok(cli, path)
    name = "clinvar-GRCh38-2021-10-25"
    m = manifest(store_dir, name)
    raw = read_vcf(path)
    assert m["records"] == len(raw) == 50
    assert m["assembly"] == "GRCh38"
    assert {k: v for k, v in m["tiers"].items() if v} == dict(
        Counter(independent_tier(i["CLNSIG"]) for _, i in raw))
    assert m["tiers"] == {"pathogenic": 7, "uncertain": 3, "benign": 35, "conflicting": 0,
                          "other": 5}
    stored = rows(store_dir, name)
    assert {r["chrom"] for r in stored} == {str(c) for c in range(1, 23)} | {"X", "Y", "MT"}
    mt = one(store_dir, name, "MT", 578, "T", "C")
    assert (mt["classification"], mt["tier"], mt["gene"]) == (
        "Likely_pathogenic", "pathogenic", "MT-TF")
    renamed = [r for r in stored if r["raw_review_status"] == "no_assertion_provided"]
    assert len(renamed) == 5
    assert {(r["review_status"], r["stars"]) for r in renamed} == {
        ("no_classification_provided", 0)}


def test_grch38_20241111(cli, store_dir):
    path = shared(f"{CLINVAR38}/clinvar_20241111.chr1_11_records.ids_replaced.vcf.gz")
    add_ok(cli, path)
    name = "clinvar-GRCh38-2024-11-11"
    m = manifest(store_dir, name)
    assert m["records"] == 11
    assert m["tiers"] == {"pathogenic": 0, "uncertain": 9, "benign": 2, "conflicting": 0,
                          "other": 0}
    first = one(store_dir, name, "1", 69134, "A", "G")
    assert (first["classification"], first["variation_id"], first["gene"]) == (
        "Likely_benign", "1", "OR4F5")


def test_sites_only_file_is_refused(cli, store_dir):
    path = shared(f"{CLINVAR37}/clinvar_20230318.sites_only_no_info.vcf.gz")
    res = cli("snapshot", "add", path)
    assert res.code == 3
    assert res.out == ""
    lines = res.err.splitlines()
    assert len(lines) == 1, res.err
    assert str(path) in lines[0]
    assert "no classification field" in lines[0]
    assert names(cli) == []


# ------------------------------------------------------------------------------ variant_summary
def test_variant_summary_2024_layout_needs_assembly(cli):
    path = shared(f"{SUMMARY}/variant_summary.2024_layout.sample.txt")
    res = cli("snapshot", "add", path, "--release-date", "2024-02-01")
    assert res.code == 2
    assert res.out == ""
    assert len(res.err.splitlines()) == 1
    assert "--assembly" in res.err and str(path) in res.err
    assert names(cli) == []


def test_variant_summary_2024_layout(cli, store_dir):
    path = shared(f"{SUMMARY}/variant_summary.2024_layout.sample.txt")
    add_ok(cli, path, "--assembly", "GRCh38", "--release-date", "2024-02-01")
    name = "clinvar-summary-GRCh38-2024-02-01"
    assert names(cli) == [name]
    m = manifest(store_dir, name)
    assert m["source_kind"] == "variant-summary"
    assert m["records"] == 2
    assert m["skipped"] == {"other_assembly": 2}
    kras = one(store_dir, name, "12", 25245351, "C", "A")
    assert (kras["classification"], kras["tier"]) == ("Pathogenic", "pathogenic")
    assert (kras["review_status"], kras["stars"]) == ("criteria_provided,_single_submitter", 1)
    assert kras["raw_review_status"] == "criteria provided, single submitter"
    assert (kras["onc_classification"], kras["sci_classification"]) == (
        "Oncogenic", "Tier I - Strong")
    assert kras["gene"] == "KRAS"
    egfr = one(store_dir, name, "7", 55181378, "C", "T")
    assert egfr["classification"] is None and egfr["tier"] is None
    assert egfr["sci_classification"] == "Tier I - Strong"


def test_variant_summary_2021_layout_na_rows_skipped_and_counted(cli, store_dir):
    path = shared(f"{SUMMARY}/variant_summary.2021_layout.12_rows.txt.gz")
    add_ok(cli, path, "--assembly", "GRCh37", "--release-date", "2021-06-01", "--name", "vs37")
    m = manifest(store_dir, "vs37")
    assert m["records"] == 5
    assert m["skipped"] == {"no_vcf_coordinates": 1, "other_assembly": 6}
    assert m["tiers"] == {"pathogenic": 4, "uncertain": 1, "benign": 0, "conflicting": 0,
                          "other": 0}
    # Start is 4827361 there, PositionVCF 4827360: coordinates come from the VCF columns.
    r = one(store_dir, "vs37", "7", 4827360, "GCTGCTGGACCTGCC", "G")
    assert (r["classification"], r["variation_id"]) == ("Pathogenic", "3")
    assert rows(store_dir, "vs37", "chrom = '20'") == []


def test_variant_summary_older_layout_grch38(cli, store_dir):
    path = shared(f"{SUMMARY}/variant_summary.10_rows.txt.gz")
    add_ok(cli, path, "--assembly", "GRCh38", "--release-date", "2020-01-01", "--name", "vs38")
    m = manifest(store_dir, "vs38")
    assert m["records"] == 5
    assert m["skipped"] == {"other_assembly": 5}
    assert m["stars"] == {"1": 2, "2": 1, "3": 1, "4": 1}
    r = one(store_dir, "vs38", "11", 5225486, "TTA", "T")  # Start says 5225487
    assert (r["classification"], r["tier"], r["raw_classification"]) == (
        "Likely_pathogenic", "pathogenic", "Likely pathogenic")
    assert r["last_evaluated"] == "Dec 20, 2018"


def test_variant_summary_both_assemblies_from_one_file(cli, store_dir):
    """One variant_summary file holds two snapshots' worth of rows: GRCh37 and GRCh38 imports of
    the same file are different content, not a re-add of identical content."""
    path = shared(f"{SUMMARY}/variant_summary.10_rows.txt.gz")
    add_ok(cli, path, "--assembly", "GRCh37", "--release-date", "2020-01-01")
    err = add_ok(cli, path, "--assembly", "GRCh38", "--release-date", "2020-01-01")
    assert "already stored" not in err
    assert names(cli) == ["clinvar-summary-GRCh37-2020-01-01", "clinvar-summary-GRCh38-2020-01-01"]
    assert manifest(store_dir, "clinvar-summary-GRCh38-2020-01-01")["assembly"] == "GRCh38"


def test_variant_summary_semicolon_secondary_terms(cli, store_dir, tmp_path):
    """variant_summary joins secondary terms with '; ' ("Pathogenic; risk factor")."""
    header = ["AlleleID", "Type", "Name", "GeneID", "GeneSymbol", "HGNC_ID",
              "ClinicalSignificance", "ClinSigSimple", "LastEvaluated", "RS# (dbSNP)",
              "nsv/esv (dbVar)", "RCVaccession", "PhenotypeIDS", "PhenotypeList", "Origin",
              "OriginSimple", "Assembly", "ChromosomeAccession", "Chromosome", "Start", "Stop",
              "ReferenceAllele", "AlternateAllele", "Cytogenetic", "ReviewStatus",
              "NumberSubmitters", "Guidelines", "TestedInGTR", "OtherIDs",
              "SubmitterCategories", "VariationID", "PositionVCF", "ReferenceAlleleVCF",
              "AlternateAlleleVCF"]
    values = dict.fromkeys(header, "-")
    values.update({"ClinicalSignificance": "Pathogenic; risk factor", "Assembly": "GRCh38",
                   "Chromosome": "14", "ReviewStatus": "criteria provided, single submitter",
                   "VariationID": "17967", "PositionVCF": "94378610",
                   "ReferenceAlleleVCF": "C", "AlternateAlleleVCF": "T"})
    path = tmp_path / "variant_summary.txt"
    path.write_text("#" + "\t".join(header) + "\n" + "\t".join(values[h] for h in header) + "\n")
    add_ok(cli, path, "--release-date", "2024-03-01")
    r = one(store_dir, "clinvar-summary-GRCh38-2024-03-01", "14", 94378610, "C", "T")
    assert (r["classification"], r["tier"]) == ("Pathogenic|risk_factor", "pathogenic")


# ------------------------------------------------------------------------------ lab tables
def _macarthur_vcf_tiers(path: Path) -> Counter[str]:
    return Counter(independent_tier(info["CLINICAL_SIGNIFICANCE"]) for _, info in read_vcf(path))


def test_macarthur_vcf_2018(cli, store_dir):
    path = shared(f"{CUSTOM}/macarthur_clinvar_alleles.b38.release201803.vcf")
    add_ok(cli, path, "--format", "table", "--mapping", MAPPINGS / "macarthur-vcf.toml",
           "--assembly", "GRCh38")
    name = "macarthur-GRCh38-2018-03-01"
    assert names(cli) == [name]
    m = manifest(store_dir, name)
    assert m["source_kind"] == "table"
    assert m["records"] == 515
    assert m["mapping"]["file"] == "macarthur-vcf.toml"
    assert {k: v for k, v in m["tiers"].items() if v} == dict(_macarthur_vcf_tiers(path))
    assert m["unknown_terms"] == {}
    r = one(store_dir, name, "1", 1014143, "C", "T")
    assert (r["classification"], r["tier"], r["gene"], r["variation_id"]) == (
        "Pathogenic", "pathogenic", "ISG15", "183381")
    assert (r["review_status"], r["stars"]) == ("no_assertion_criteria_provided", 0)
    b = one(store_dir, name, "1", 1014042, "G", "A")
    assert b["raw_review_status"] == "criteria_provided..single_submitter"
    assert (b["review_status"], b["stars"]) == ("criteria_provided,_single_submitter", 1)
    assert b["last_evaluated"] == "May_26..2017"


def test_macarthur_vcf_2017_lists_of_terms(cli, store_dir):
    path = shared(f"{CUSTOM}/macarthur_clinvar_alleles.b38.release20170202.vcf")
    add_ok(cli, path, "--format", "table", "--mapping", MAPPINGS / "macarthur-vcf.toml",
           "--assembly", "GRCh38")
    m = manifest(store_dir, "macarthur-GRCh38-2017-02-02")
    assert m["records"] == 698
    expected = _macarthur_vcf_tiers(path)
    assert {k: v for k, v in m["tiers"].items() if v} == dict(expected)
    assert m["tiers"]["conflicting"] == 32
    # identifier = ["VARIATION_ID", "MEASURESET_ID"]: the 2017 file only has the second.
    ids = [r["variation_id"] for r in rows(store_dir, "macarthur-GRCh38-2017-02-02")]
    assert all(i and i.isdigit() for i in ids)


def test_macarthur_tsv(cli, store_dir):
    path = shared(f"{CUSTOM}/macarthur_clinvar_alleles.b38.release201803.tsv")
    add_ok(cli, path, "--format", "table", "--mapping", MAPPINGS / "macarthur-tsv.toml",
           "--assembly", "GRCh38")
    name = "macarthur-tsv-GRCh38-2018-03-01"
    m = manifest(store_dir, name)
    lines = path.read_text().splitlines()
    cols = lines[0].split("\t")
    body = [dict(zip(cols, line.split("\t"), strict=True)) for line in lines[1:]]
    assert m["records"] == len(body) == 749
    expected = Counter(independent_tier(r["clinical_significance"]) for r in body)
    assert {k: v for k, v in m["tiers"].items() if v} == dict(expected)
    r = one(store_dir, name, "1", 1014143, "C", "T")
    assert (r["classification"], r["raw_review_status"], r["stars"]) == (
        "Pathogenic", "no assertion criteria provided", 0)
    risk = rows(store_dir, name, "raw_classification = 'Benign, risk factor'")
    assert [(x["classification"], x["tier"]) for x in risk] == [("Benign|risk_factor", "benign")]


def test_table_needs_assembly(cli):
    path = shared(f"{CUSTOM}/macarthur_clinvar_alleles.b38.release201803.vcf")
    res = cli("snapshot", "add", path, "--format", "table", "--mapping",
              MAPPINGS / "macarthur-vcf.toml")
    assert res.code == 2
    assert "--assembly" in res.err
    assert names(cli) == []


def test_table_needs_mapping(cli):
    path = shared(f"{CUSTOM}/macarthur_clinvar_alleles.b38.release201803.tsv")
    res = cli("snapshot", "add", path, "--format", "table", "--assembly", "GRCh38")
    assert res.code == 2
    assert "--mapping" in res.err


# ---------------------------------------------------------- alleles that are not plain bases
# (Typed, unlike the tests above: they call only conftest.invoke and the helpers below.)
def add_to(store: Path, *args: str | Path) -> str:
    """`snapshot add` that must succeed; its stderr."""
    res = invoke(store, "snapshot", "add", *args)
    assert res.code == 0 and res.out == "", res.err
    return res.err


def stored_manifest(store: Path, name: str) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(
        (store / "snapshots" / name / "manifest.json").read_text())
    return shown


def stored_names(store: Path) -> list[str]:
    folder = store / "snapshots"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def stored_alleles(store: Path, name: str) -> list[tuple[str, int, str, str]]:
    path = store / "snapshots" / name / "variants.parquet"
    with duckdb.connect() as con:
        found: list[tuple[str, int, str, str]] = con.execute(
            f"SELECT chrom, pos, ref, alt FROM read_parquet('{path}') ORDER BY ALL").fetchall()
    return found


# (ref, alt) at 1:100+i of a ClinVar-format VCF, and what becomes of each.
CLINVAR_ALLELES = [
    ("A", "G", "kept"), ("acg", "a", "kept"), ("T", "TTA", "kept"),
    ("A", "G ", "invalid_allele"), ("C", "-", "invalid_allele"), ("G", "T/A", "invalid_allele"),
    ("R", "A", "invalid_allele"), ("A ", "G", "invalid_allele"),
    ("G", "<DEL>", "symbolic_alt"), ("G", "*", "symbolic_alt"),
    ("G", "A,T", "multi_allelic_row"), ("G", ".", "alt_missing"),
]


def test_clinvar_vcf_alleles_that_are_not_bases_are_skipped_by_both_readers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """REF or ALT with anything but A, C, G, T, N (`G ` with a blank, `-`, `T/A`, an IUPAC
    code) was stored and could never match; skipped and counted now, by the compiled
    scanner and the SQL reader alike (the rule is in the SQL both share)."""
    records = [("1", 100 + i, ref, alt, "Pathogenic", 2, "GENE1", None)
               for i, (ref, alt, _) in enumerate(CLINVAR_ALLELES)]
    path = write_clinvar(tmp_path / "clinvar_20240301.vcf", records)
    expected = Counter(fate for _, _, fate in CLINVAR_ALLELES if fate != "kept")
    name = "clinvar-GRCh38-2024-03-01"
    results = []
    for reader in ("scanner", "sql"):
        if reader == "scanner" and not vcfscan.available():
            continue
        if reader == "sql":
            monkeypatch.setattr(vcfscan, "_vcfscan", None)
        store = tmp_path / reader
        err = add_to(store, path)
        assert stored_manifest(store, name)["skipped"] == dict(expected)
        assert "invalid_allele=5" in err, err
        alleles = stored_alleles(store, name)
        assert alleles == [("1", 100, "A", "G"), ("1", 101, "ACG", "A"), ("1", 102, "T", "TTA")]
        results.append((err.replace(str(store), "STORE"), alleles))
    assert all(r == results[0] for r in results)


# ------------------------------------------------------------------ the release date
def clinvar_file(tmp_path: Path, file_name: str, file_date: str, n: int = 20) -> Path:
    records = [("1", 1000 + 10 * i, "A", "G", "Benign", 2, "GENE1", None) for i in range(n)]
    path = write_clinvar(tmp_path / file_name, records)
    path.write_text(path.read_text().replace("##fileDate=2024-03-01\n",
                                             f"##fileDate={file_date}\n"))
    return path


@pytest.mark.parametrize("file_date", ["2024-4-7", "", "April 2024", "2024-02-30"])
def test_a_file_date_that_is_not_a_date_is_refused(tmp_path: Path, file_date: str) -> None:
    """It was replaced by the date in the file name without a word, and that date decides
    latest/previous, the direction of a diff, staleness and suspicion."""
    path = clinvar_file(tmp_path, "clinvar_20240101.vcf", file_date)
    store = tmp_path / "store"
    res = invoke(store, "snapshot", "add", path)
    assert res.code == 3 and res.out == ""
    assert res.err == (f"varreinterp: error: {path}:2: ##fileDate={file_date} is not a date "
                       "(YYYY-MM-DD); give --release-date YYYY-MM-DD to import the file\n")
    assert stored_names(store) == []


def test_an_explicit_release_date_imports_a_file_with_a_bad_file_date(tmp_path: Path) -> None:
    path = clinvar_file(tmp_path, "clinvar_20240101.vcf", "2024-4-7")
    store = tmp_path / "store"
    err = add_to(store, path, "--release-date", "2024-04-07")
    assert "WARNING" not in err, err
    assert stored_names(store) == ["clinvar-GRCh38-2024-04-07"]
    assert stored_manifest(store, "clinvar-GRCh38-2024-04-07")["release_date"] == "2024-04-07"


def test_a_file_date_that_contradicts_the_file_name_warns_once(tmp_path: Path) -> None:
    """The header wins (as before), but the contradiction is said, naming both dates."""
    store = tmp_path / "store"
    agreeing = clinvar_file(tmp_path, "clinvar_20241111.vcf", "2024-11-11")
    assert "WARNING" not in add_to(store, agreeing)
    path = clinvar_file(tmp_path, "clinvar_20241208.vcf", "2024-11-11", n=21)
    err = add_to(store, path, "--name", "clinvar-GRCh38-dec")
    warnings = [line for line in err.splitlines() if "WARNING" in line]
    assert warnings == [f"varreinterp: WARNING: {path}: the header's ##fileDate=2024-11-11 "
                        "(line 2) differs from the date in the file name (2024-12-08); the "
                        "header's date 2024-11-11 is used"], err
    assert stored_manifest(store, "clinvar-GRCh38-dec")["release_date"] == "2024-11-11"


# ------------------------------------------------------------ a cut release of the same date
def test_a_cut_copy_with_the_same_release_date_is_suspect(tmp_path: Path) -> None:
    """Only strictly earlier releases were yardsticks: a second import of one release date
    with far fewer records (a cut file) was stored 'ok' and became latest."""
    store = tmp_path / "store"
    add_to(store, clinvar_file(tmp_path, "clinvar_20241111.vcf", "2024-11-11"))
    cut = clinvar_file(tmp_path, "cut.vcf", "2024-11-11", n=14)
    err = add_to(store, cut, "--name", "clinvar-GRCh38-cut")
    reason = ("14 records against 20 in clinvar-GRCh38-2024-11-11 (30.0% fewer, more than "
              "the 5% allowed)")
    assert f"stored as clinvar-GRCh38-cut but marked SUSPECT: {reason}" in err, err
    assert stored_manifest(store, "clinvar-GRCh38-cut")["suspect"] == reason
    # Within the threshold (19 of 20), the same date is no reason for suspicion.
    add_to(store, clinvar_file(tmp_path, "near.vcf", "2024-11-11", n=19), "--name", "near")
    assert stored_manifest(store, "near")["suspect"] is None


def test_a_fetched_release_repeating_an_older_date_warns_and_is_suspect(tmp_path: Path) -> None:
    """`clinvar_20241208.vcf.gz` whose header says 2024-11-11, 27% smaller than the stored
    2024-11-11 release: said on stderr, and marked suspect instead of becoming latest."""
    full = clinvar_file(tmp_path, "full.vcf", "2024-11-11", n=11)
    cut = clinvar_file(tmp_path, "cut.vcf", "2024-11-11", n=8)
    store = tmp_path / "store"
    with NcbiMirror(tmp_path / "mirror") as mirror:
        mirror.add("vcf_GRCh38/clinvar_20241111.vcf.gz", gzip.compress(full.read_bytes()))
        mirror.add("vcf_GRCh38/clinvar_20241208.vcf.gz", gzip.compress(cut.read_bytes()))
        first = invoke(store, "snapshot", "fetch", "--assembly", "GRCh38", "--release",
                       "2024-11-11", "--mirror", mirror.base_url)
        assert first.code == 0 and "WARNING" not in first.err, first.err
        second = invoke(store, "snapshot", "fetch", "--assembly", "GRCh38", "--mirror",
                        mirror.base_url)
    assert not mirror.errors, mirror.errors
    assert second.code == 0, second.err
    warnings = [line for line in second.err.splitlines() if "WARNING" in line]
    assert len(warnings) == 2, second.err
    assert "##fileDate=2024-11-11 (line 2) differs from the date in the file name " \
        "(2024-12-08)" in warnings[0]
    assert "stored as clinvar-GRCh38-2024-12-08 but marked SUSPECT: 8 records against 11 " \
        "in clinvar-GRCh38-2024-11-11" in warnings[1]
    assert stored_manifest(store, "clinvar-GRCh38-2024-12-08")["suspect"] is not None


def test_numeric_format_counts_each_alt_once(cli, store_dir, tmp_path):
    """Pre-2017 CLNALLE: every ALT is stored or skipped once (an ALT refused by its CLNALLE
    entry was also counted as alt_not_classified: 7 counts for 4 ALTs)."""
    head = ("##fileformat=VCFv4.0\n##fileDate=20160301\n##reference=GRCh37\n"
            + "".join(f'##INFO=<ID={k},Number=.,Type=String,Description="x">\n'
                      for k in ("CLNALLE", "CLNSIG", "CLNREVSTAT"))
            + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    rows = ["1\t1000\trs1\tA\tG\t.\t.\tCLNALLE=-1;CLNSIG=5;CLNREVSTAT=single",
            "1\t2000\trs2\tA\tG\t.\t.\tCLNALLE=0;CLNSIG=5;CLNREVSTAT=single",
            "1\t3000\trs3\tA\t.\t.\t.\tCLNALLE=1;CLNSIG=5;CLNREVSTAT=single",
            "1\t4000\trs4\tA\tC\t.\t.\tCLNALLE=1;CLNSIG=2;CLNREVSTAT=single",
            "1\t5000\trs5\tA\tC,<DEL>,T\t.\t.\tCLNALLE=2,3;CLNSIG=5,4;CLNREVSTAT=single,single",
            "1\t6000\trs6\tA\tG\t.\t.\tCLNALLE=0,1;CLNSIG=5,4;CLNREVSTAT=single,single",
            "1\t7000\trs7\tA\tG,T\t.\t.\tCLNALLE=-1,-1,1;CLNSIG=5,5,4;"
            "CLNREVSTAT=single,single,single"]
    path = tmp_path / "old.vcf"
    path.write_text(head + "\n".join(rows) + "\n")
    add_ok(cli, path)
    m = manifest(store_dir, "clinvar-GRCh37-2016-03-01")
    assert m["records"] == 4  # 4000 A>C, 5000 A>T, 6000 A>G, 7000 A>G
    # 7000's two -1 entries account for its one unclassified ALT (T), not for two
    assert m["skipped"] == {"clnalle_not_an_alt": 2, "clnalle_ref_allele": 1, "alt_missing": 1,
                            "symbolic_alt": 1, "alt_not_classified": 1}
    assert m["records"] + sum(m["skipped"].values()) == 10  # the ALTs of the file


def test_variant_summary_rows_that_cannot_match_are_counted(cli, store_dir, tmp_path):
    """Rows with a `-`, symbolic, multi-allelic or unchanged allele, or a contig no build has,
    are counted as the other sources count them, not stored to match nothing."""
    lines = shared(f"{SUMMARY}/variant_summary.2024_layout.sample.txt").read_text().splitlines()
    header, rows = lines[0], [r.split("\t") for r in lines[1:] if "\tGRCh38\t" in r]
    kras = rows[0]  # 12:25245351 C>A, Pathogenic
    variants = [("12", "25245351", "C", "A"), ("12", "100", "A", "-"), ("12", "200", "A", "<DEL>"),
                ("12", "300", "G", "G,T"), ("12", "400", "AT", "AT"), ("Un", "500", "C", "T"),
                ("na", "600", "C", "T")]
    body = []
    for chrom, pos, ref, alt in variants:
        row = list(kras)
        row[18], row[31], row[32], row[33] = chrom, pos, ref, alt
        body.append("\t".join(row))
    path = tmp_path / "variant_summary.txt"
    path.write_text("\n".join([header, *body]) + "\n")
    add_ok(cli, path, "--assembly", "GRCh38", "--release-date", "2024-02-01")
    m = manifest(store_dir, "clinvar-summary-GRCh38-2024-02-01")
    assert m["records"] == 1
    assert m["skipped"] == {"invalid_allele": 2, "symbolic_alt": 1, "multi_allelic_row": 1,
                            "invalid_contig": 2}


def test_old_layout_variant_summary_rows_that_cannot_match_are_counted(cli, store_dir,
                                                                       tmp_path):
    """The layout without VCF columns follows the same rule (Start/ReferenceAllele/...)."""
    lines = shared(f"{SUMMARY}/variant_summary.2024_layout.sample.txt").read_text().splitlines()
    header = lines[0].split("\t")
    kras = next(r.split("\t") for r in lines[1:] if "\tGRCh38\t" in r)
    keep = [i for i, name in enumerate(header) if name not in (
        "PositionVCF", "ReferenceAlleleVCF", "AlternateAlleleVCF")]
    body = []
    for chrom, start, ref, alt in [("12", "25245351", "C", "A"), ("Un", "100", "C", "A"),
                                   ("12", "300", "C", "C")]:
        row = list(kras)
        row[18], row[19], row[20], row[21], row[22] = chrom, start, start, ref, alt
        body.append("\t".join(row[i] for i in keep))
    path = tmp_path / "variant_summary.txt"
    path.write_text("\n".join(["\t".join(header[i] for i in keep), *body]) + "\n")
    add_ok(cli, path, "--assembly", "GRCh38", "--release-date", "2024-02-01")
    m = manifest(store_dir, "clinvar-summary-GRCh38-2024-02-01")
    assert (m["records"], m["skipped"]) == (1, {"invalid_contig": 1, "invalid_allele": 1})
