"""Classification tables in other people's layouts: the MacArthur-lab ClinVar tables (VCF and
TSV) with the shipped mappings, submitter term lists in any order, a 2015-style lab VCF with
a broken header, a mapping naming a field no record carries, and the older 30-column ClinVar
variant_summary (no *VCF columns: indels need --reference for their anchor base).

Results are read from the snapshot's own Parquet file (`STORE/snapshots/NAME/variants.parquet`)
and its manifest (`snapshot show NAME -f json`)."""

from __future__ import annotations

import gzip
import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from builders import LAB_MAPPING, add, only_snapshot
from conftest import MAPPINGS, invoke, shared

CUSTOM = "clinvar/custom_format"
VCF_2017 = f"{CUSTOM}/macarthur_clinvar_alleles.b38.release20170202.vcf"
VCF_2018 = f"{CUSTOM}/macarthur_clinvar_alleles.b38.release201803.vcf"
TSV_2018 = f"{CUSTOM}/macarthur_clinvar_alleles.b38.release201803.tsv"
VCF_MAPPING = MAPPINGS / "macarthur-vcf.toml"
TSV_MAPPING = MAPPINGS / "macarthur-tsv.toml"
SUMMARY_2021 = "clinvar/variant_summary/variant_summary.2021_layout.12_rows.txt.gz"
CONFLICTING = "Conflicting_classifications_of_pathogenicity"
BLB = "Benign/Likely_benign"
PLP = "Pathogenic/Likely_pathogenic"
WARNING = "varreinterp: WARNING: "
INFO = "varreinterp: INFO: "

Key = tuple[str, int, str, str]


def parquet_rows(store: Path, name: str) -> dict[Key, dict[str, Any]]:
    import pyarrow.parquet as pq

    table = pq.read_table(store / "snapshots" / name / "variants.parquet")
    return {(str(r["chrom"]), int(r["pos"]), str(r["ref"]), str(r["alt"])): r
            for r in table.to_pylist()}


def manifest(store: Path, name: str) -> dict[str, Any]:
    res = invoke(store, "snapshot", "show", name, "-f", "json")
    assert res.code == 0, res.err
    shown = json.loads(res.out.splitlines()[0])
    assert isinstance(shown, dict)
    return shown


def bare(chrom: str) -> str:
    c = chrom[3:] if chrom.lower().startswith("chr") else chrom
    return "MT" if c.upper() in ("M", "MT") else c


def lab_vcf_records(path: Path) -> dict[Key, str]:
    """Key -> CLINICAL_SIGNIFICANCE of the records with one plain ALT, read with plain Python."""
    out: dict[Key, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        info = dict(kv.split("=", 1) for kv in f[7].split(";") if "=" in kv)
        if "CLINICAL_SIGNIFICANCE" in info and f[4].upper().strip("ACGTN") == "":
            out[(bare(f[0]), int(f[1]), f[3].upper(), f[4].upper())] = \
                info["CLINICAL_SIGNIFICANCE"]
    return out


# ------------------------------------------------------------------------------ MacArthur
@pytest.mark.parametrize("relative,mapping", [(VCF_2017, VCF_MAPPING), (VCF_2018, VCF_MAPPING),
                                              (TSV_2018, TSV_MAPPING)],
                         ids=["vcf-2017", "vcf-2018", "tsv-2018"])
def test_macarthur_release_imports(tmp_path: Path, relative: str, mapping: Path) -> None:
    path = shared(relative)
    store = tmp_path / "store"
    add(store, path, "--mapping", mapping, "--assembly", "GRCh38")
    name = only_snapshot(store)
    rows = parquet_rows(store, name)
    if path.suffix == ".vcf":
        expected = lab_vcf_records(path)
        assert set(rows) == set(expected)
    else:
        data = path.read_text().splitlines()[1:]
        assert len(rows) == len({tuple(line.split("\t")[:4]) for line in data})
    assert all(r["tier"] for r in rows.values()), "a record without a tier"
    assert manifest(store, name)["records"] == len(rows)
    assert invoke(store, "snapshot", "verify").code == 0


# Each list of submitters' terms, in every order, and what ClinVar's aggregate is.
TERM_LISTS = {
    ("Benign", "Likely_benign", "Uncertain_significance"): (CONFLICTING, "conflicting"),
    ("Likely_benign", "Benign"): (BLB, "benign"),
    ("Pathogenic", "Likely_pathogenic"): (PLP, "pathogenic"),
    ("Likely_pathogenic", "Pathogenic", "Likely_pathogenic"): (PLP, "pathogenic"),
    ("Pathogenic", "Uncertain_significance", "Likely_pathogenic"): (CONFLICTING, "conflicting"),
}


def term_orders() -> list[tuple[str, str, str]]:
    """(joined list, expected classification, expected tier) for every distinct order."""
    out = []
    for terms, (classification, tier) in TERM_LISTS.items():
        for order in sorted(set(itertools.permutations(terms))):
            out.append(("|".join(order), classification, tier))
    return out


def test_submitter_term_lists_fold_in_any_order(tmp_path: Path) -> None:
    source = shared(VCF_2017)
    cases = term_orders()
    lines = source.read_text().splitlines()
    edited: dict[Key, tuple[str, str, str]] = {}
    seen: set[Key] = set()
    for i, line in enumerate(lines):
        if len(edited) == len(cases):
            break
        if line.startswith("#"):
            continue
        f = line.split("\t")
        key = (bare(f[0]), int(f[1]), f[3].upper(), f[4].upper())
        if len(f[3]) != 1 or len(f[4]) != 1 or key in seen:
            continue
        seen.add(key)
        case = cases[len(edited)]
        info = [kv if not kv.startswith("CLINICAL_SIGNIFICANCE=")
                else f"CLINICAL_SIGNIFICANCE={case[0]}" for kv in f[7].split(";")]
        f[7] = ";".join(info)
        lines[i] = "\t".join(f)
        edited[key] = case
    assert len(edited) == len(cases)
    copy = tmp_path / "macarthur_clinvar_alleles.b38.release20170202.vcf"
    copy.write_text("\n".join(lines) + "\n")
    store = tmp_path / "store"
    add(store, copy, "--mapping", VCF_MAPPING, "--assembly", "GRCh38")
    rows = parquet_rows(store, only_snapshot(store))
    wrong = {case[0]: (rows[key]["classification"], rows[key]["tier"])
             for key, case in edited.items()
             if (rows[key]["classification"], rows[key]["tier"]) != case[1:]}
    assert wrong == {}, f"term lists folded wrongly: {wrong}"


def old_lab_vcf(source: Path, path: Path) -> Path:
    """The 2015 export style: no ##fileformat line, every INFO header line declaring `MUT`
    whatever the records carry."""
    out = []
    for line in source.read_text().splitlines():
        if line.startswith("##fileformat"):
            continue
        if line.startswith("##INFO=<ID="):
            key = line[len("##INFO=<ID="):].split(",", 1)[0]
            line = f'##INFO=<ID=MUT,Number=1,Type=String,Description="{key}">'
        out.append(line)
    path.write_text("\n".join(out) + "\n")
    return path


def test_2015_style_lab_vcf_imports_with_one_warning(tmp_path: Path) -> None:
    source = shared(VCF_2017)
    reference = tmp_path / "reference"
    add(reference, source, "--mapping", VCF_MAPPING, "--assembly", "GRCh38")
    old = old_lab_vcf(source, tmp_path / "lab_export.vcf")
    assert "CLINICAL_SIGNIFICANCE=" in old.read_text() and "##fileformat" not in old.read_text()
    store = tmp_path / "store"
    res = add(store, old, "--mapping", VCF_MAPPING, "--assembly", "GRCh38",
              "--release-date", "2015-06-01")
    warnings = [line for line in res.err.splitlines() if line.startswith(WARNING)]
    # the 2015 export has no LAST_EVALUATED, which the example mapping names (for later files);
    # the real release it is made from declares GRCh37's contig lengths for GRCh38 data
    assert len(warnings) == 3 and "##fileformat" in warnings[0], res.err
    assert "no record carries LAST_EVALUATED" in warnings[1], res.err
    assert "##contig lengths are GRCh37's, but the file is imported as GRCh38" in warnings[2]
    assert [line for line in res.err.splitlines()
            if not line.startswith((WARNING, INFO))] == [], res.err
    rows = parquet_rows(store, only_snapshot(store))
    assert rows == parquet_rows(reference, only_snapshot(reference))


@pytest.mark.parametrize("field,line,replacement", [
    ("classification", 'classification = "CLINICAL_SIGNIFICANCE"',
     'classification = "CLIN_SIG_NOWHERE"'),
    ("ref", 'ref = "REF"', 'ref = "REF_NOWHERE"'),
    ("declared-only", 'classification = "CLINICAL_SIGNIFICANCE"', 'classification = "DECLARED"'),
])
def test_mapping_names_a_field_no_record_carries(tmp_path: Path, field: str, line: str,
                                                 replacement: str) -> None:
    source = shared(VCF_2017)
    text = VCF_MAPPING.read_text()
    assert line in text
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(text.replace(line, replacement))
    table = tmp_path / "macarthur_clinvar_alleles.b38.release20170202.vcf"
    # DECLARED has a header line but no record carries it: fields are found in the data.
    table.write_text(source.read_text().replace(
        "##INFO=<ID=MEASURESET_TYPE,",
        '##INFO=<ID=DECLARED,Number=1,Type=String,Description="declared only">\n'
        "##INFO=<ID=MEASURESET_TYPE,", 1))
    store = tmp_path / "store"
    res = invoke(store, "snapshot", "add", table, "--mapping", mapping, "--assembly", "GRCh38")
    assert res.code == 3, (res.code, res.err)
    errors = [x for x in res.err.splitlines() if not x.startswith((INFO, WARNING))]
    assert len(errors) == 1 and errors[0].startswith("varreinterp: error: "), res.err
    assert "no record carries" in errors[0] and str(table) in errors[0], errors[0]
    assert replacement.split('"')[1] in errors[0], errors[0]
    assert not (store / "snapshots").is_dir() or list((store / "snapshots").iterdir()) == []


# ------------------------------------------------------------------------------ variant_summary
DROPPED = ["VariationID", "PositionVCF", "ReferenceAlleleVCF", "AlternateAlleleVCF"]
OLD_TAIL = ["ReviewStatus", "NumberSubmitters", "Guidelines", "TestedInGTR", "OtherIDs",
            "SubmitterCategories"]
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


def reference_sequence(length: int = 300) -> str:
    rng = random.Random(2016)
    return "".join(rng.choice("ACGT") for _ in range(length))


def write_fasta(path: Path, contig: str, seq: str) -> Path:
    import pysam

    path.write_text(f">{contig}\n" + "\n".join(seq[i:i + 60] for i in range(0, len(seq), 60))
                    + "\n")
    pysam.faidx(str(path))
    return path


def other_base(base: str) -> str:
    return COMPLEMENT[base]


def hand_rows(seq: str) -> dict[str, dict[str, str]]:
    """The hand-made GRCh37 rows on contig 22 (Start/Stop are 1-based, old layout)."""
    def row(start: int, stop: int, ref: str, alt: str, sig: str, allele: int) -> dict[str, str]:
        return {"#AlleleID": str(allele), "Type": "hand-made", "Name": f"hand{allele}",
                "GeneID": "-1", "GeneSymbol": "HAND", "HGNC_ID": "-",
                "ClinicalSignificance": sig, "ClinSigSimple": "1", "LastEvaluated": "-",
                "RS# (dbSNP)": "-1", "nsv/esv (dbVar)": "-", "RCVaccession": f"RCV{allele}",
                "PhenotypeIDS": "-", "PhenotypeList": "not provided", "Origin": "germline",
                "OriginSimple": "germline", "Assembly": "GRCh37",
                "ChromosomeAccession": "NC_000022.10", "Chromosome": "22",
                "Start": str(start), "Stop": str(stop), "ReferenceAllele": ref,
                "AlternateAllele": alt, "Cytogenetic": "22q11",
                "ReviewStatus": "criteria provided, single submitter",
                "NumberSubmitters": "1", "Guidelines": "-", "TestedInGTR": "N",
                "OtherIDs": "-", "SubmitterCategories": "2"}

    wrong = "".join(other_base(b) for b in seq[199:201])
    return {
        "snv": row(50, 50, seq[49], other_base(seq[49]), "Pathogenic", 900001),
        "mnv": row(80, 81, seq[79:81], "".join(other_base(b) for b in seq[79:81]),
                   "Likely benign", 900002),
        "deletion": row(120, 122, seq[119:122], "-", "Uncertain significance", 900003),
        "insertion": row(160, 161, "-", "TTG", "Benign", 900004),
        "bad-deletion": row(200, 201, wrong, "-", "Pathogenic", 900005),
    }


@pytest.fixture
def old_summary(tmp_path: Path) -> tuple[Path, str]:
    """A 30-column variant_summary: the real 2021 rows without the four *VCF/VariationID
    columns, plus the hand-made rows."""
    real = shared(SUMMARY_2021)
    lines = gzip.decompress(real.read_bytes()).decode().splitlines()
    header = lines[0].split("\t")
    keep = [i for i, name in enumerate(header) if name not in DROPPED]
    columns = [header[i] for i in keep]
    assert len(columns) == 30 and columns[-len(OLD_TAIL):] == OLD_TAIL, columns
    out = ["\t".join(columns)]
    out += ["\t".join(line.split("\t")[i] for i in keep) for line in lines[1:]]
    seq = reference_sequence()
    out += ["\t".join(r[c] for c in columns) for r in hand_rows(seq).values()]
    path = tmp_path / "variant_summary.old_layout.txt.gz"
    path.write_bytes(gzip.compress(("\n".join(out) + "\n").encode()))
    return path, seq


NAME = "clinvar-summary-GRCh37-2016-01-01"


def import_summary(store: Path, path: Path, *extra: str | Path) -> dict[Key, dict[str, Any]]:
    add(store, path, "--assembly", "GRCh37", "--release-date", "2016-01-01", *extra)
    assert only_snapshot(store) == NAME
    return {k: v for k, v in parquet_rows(store, NAME).items() if k[0] == "22"}


def test_old_variant_summary_without_reference(tmp_path: Path,
                                               old_summary: tuple[Path, str]) -> None:
    path, seq = old_summary
    store = tmp_path / "store"
    rows = import_summary(store, path)
    mnv = "".join(other_base(b) for b in seq[79:81])
    assert set(rows) == {("22", 50, seq[49], other_base(seq[49])), ("22", 80, seq[79:81], mnv)}
    assert rows[("22", 50, seq[49], other_base(seq[49]))]["classification"] == "Pathogenic"
    assert rows[("22", 80, seq[79:81], mnv)]["classification"] == "Likely_benign"
    skipped = manifest(store, NAME)["skipped"]
    assert skipped.get("indel_needs_reference") == 3, skipped  # both indels + the bad one


def test_old_variant_summary_with_reference(tmp_path: Path,
                                            old_summary: tuple[Path, str]) -> None:
    path, seq = old_summary
    fasta = write_fasta(tmp_path / "small.fa", "22", seq)
    store = tmp_path / "store"
    rows = import_summary(store, path, "--reference", fasta)
    # POS=Start-1, REF=anchor+deleted (119 GTAG>G), then left-aligned as bcftools norm -f does
    deletion = ("22", 118, seq[117:121], seq[117])
    insertion = ("22", 160, seq[159], seq[159] + "TTG")  # POS=Start, ALT=anchor+inserted
    mnv = "".join(other_base(b) for b in seq[79:81])
    assert set(rows) == {("22", 50, seq[49], other_base(seq[49])), ("22", 80, seq[79:81], mnv),
                         deletion, insertion}
    assert rows[deletion]["classification"] == "Uncertain_significance"
    assert rows[insertion]["classification"] == "Benign"
    skipped = manifest(store, NAME)["skipped"]
    assert skipped.get("ref_mismatch") == 1, skipped
    assert not skipped.get("indel_needs_reference"), skipped


# ------------------------------------------------------- rows that can never match a patient
# (ref, alt, class) at 1:1000+i; what each row becomes: a stored key or a skip reason.
ALLELE_ROWS: list[tuple[str, str, str, str]] = [
    ("G", "A", "Benign", "kept"),
    ("a", "gt", "Pathogenic", "kept"),  # lower case is only upper-cased
    ("ACG", "A", "Likely_benign", "kept"),
    ("A", "G ", "Pathogenic", "invalid_allele"),  # a spreadsheet's trailing blank
    ("C", "-", "Pathogenic", "invalid_allele"),  # lab notation for a deletion
    ("-", "T", "Pathogenic", "invalid_allele"),
    ("G", "T/A", "Pathogenic", "invalid_allele"),
    (" G", "A", "Benign", "invalid_allele"),  # a leading blank on REF
    ("G", "R", "Benign", "invalid_allele"),  # an IUPAC code is no allele
    ("G", "T/A", "", "invalid_allele"),  # counted once, though unclassified too
    ("G", "<DEL>", "Pathogenic", "symbolic_alt"),
    ("G", "*", "Pathogenic", "symbolic_alt"),
    ("G", "A,T", "Pathogenic", "multi_allelic_row"),
    ("G", "", "Pathogenic", "alt_missing"),
    ("G", "C", "", "no_classification"),
]


def lab_table(tmp_path: Path, fmt: str) -> tuple[Path, Path]:
    """ALLELE_ROWS as a TSV or a VCF-like lab table, and its mapping."""
    if fmt == "tsv":
        lines = ["chrom\tpos\tref\talt\tclass"]
        lines += [f"1\t{1000 + i}\t{ref}\t{alt}\t{cls}"
                  for i, (ref, alt, cls, _) in enumerate(ALLELE_ROWS)]
        names = {"contig": "chrom", "pos": "pos", "ref": "ref", "alt": "alt", "cls": "class"}
    else:
        lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
        lines += [f"1\t{1000 + i}\t.\t{ref}\t{alt}\t.\t.\t" + (f"CLS={cls}" if cls else ".")
                  for i, (ref, alt, cls, _) in enumerate(ALLELE_ROWS)]
        names = {"contig": "CHROM", "pos": "POS", "ref": "REF", "alt": "ALT", "cls": "CLS"}
    table = tmp_path / f"lab.{fmt}"
    table.write_text("\n".join(lines) + "\n")
    mapping = tmp_path / f"lab-{fmt}.toml"
    mapping.write_text(LAB_MAPPING.format(fmt=fmt, release='release_date = "2024-01-01"',
                                          **names))
    return table, mapping


@pytest.mark.parametrize("fmt", ["tsv", "vcf"])
def test_lab_rows_whose_alleles_are_not_bases_are_skipped_and_counted(
        tmp_path: Path, fmt: str) -> None:
    """`G ` (a trailing blank), `-`, `T/A`, an IUPAC code: stored, such a row never matched a
    patient and the import said 'skipped: none'. Each skipped row is counted under one reason;
    the symbolic, multi-allelic and missing ALT keep theirs."""
    table, mapping = lab_table(tmp_path, fmt)
    store = tmp_path / "store"
    res = add(store, table, "--mapping", mapping, "--assembly", "GRCh37")
    name = only_snapshot(store)
    expected: dict[str, int] = {}
    for _, _, _, fate in ALLELE_ROWS:
        if fate != "kept":
            expected[fate] = expected.get(fate, 0) + 1
    assert manifest(store, name)["skipped"] == expected
    summary = ", ".join(f"{k}={v}" for k, v in sorted(expected.items()))
    assert f"skipped: {summary}" in res.err, res.err
    assert expected["invalid_allele"] == 7
    assert set(parquet_rows(store, name)) == {("1", 1000, "G", "A"), ("1", 1001, "A", "GT"),
                                              ("1", 1002, "ACG", "A")}


def test_a_mapping_release_date_that_is_not_a_date_is_refused(tmp_path: Path) -> None:
    """It was replaced by the file's ##fileDate or name without a word."""
    table, mapping = lab_table(tmp_path, "tsv")
    text = mapping.read_text().replace('"2024-01-01"', '"2024-4-7"')
    mapping.write_text(text)
    store = tmp_path / "store"
    res = invoke(store, "snapshot", "add", table, "--mapping", mapping, "--assembly", "GRCh37")
    assert res.code == 2 and res.out == ""
    assert f"{mapping}:4: [source] release_date '2024-4-7' is not a date" in res.err, res.err
    assert not (store / "snapshots").exists() or not any((store / "snapshots").iterdir())


def test_a_lab_vcf_with_a_bad_file_date_needs_an_explicit_release_date(tmp_path: Path) -> None:
    """The header's ##fileDate dates a lab VCF unless the mapping or --release-date does."""
    table, mapping = lab_table(tmp_path, "vcf")
    table.write_text(table.read_text().replace("##fileformat=VCFv4.2\n",
                                               "##fileformat=VCFv4.2\n##fileDate=2024-4-7\n"))
    mapping.write_text(mapping.read_text().replace('release_date = "2024-01-01"', ""))
    store = tmp_path / "store"
    args = ("snapshot", "add", table, "--mapping", mapping, "--assembly", "GRCh37")
    res = invoke(store, *args)
    assert res.code == 3 and res.out == ""
    assert f"{table}:2: ##fileDate=2024-4-7 is not a date" in res.err, res.err
    assert not (store / "snapshots").exists() or not any((store / "snapshots").iterdir())
    add(store, *args[2:], "--release-date", "2024-04-07")
    assert manifest(store, only_snapshot(store))["release_date"] == "2024-04-07"
