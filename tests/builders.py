"""Builders shared by tests: hand-made ClinVar-format releases and patient VCFs, and readers of
what the CLI prints."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from conftest import CliResult, invoke
from oracle import bare, open_any

GRCH38_CONTIGS = {"chr1": 248956422, "chr2": 242193529, "chrX": 156040895, "chrM": 16569}
# The mapping of the lab table the lifecycle and routine tests import (a TSV with columns chrom,
# pos, ref, alt, class, review, gene; terms P/LP/VUS/LB).


def lab_mapping(*, gene: bool = True, terms: bool = True) -> str:
    """The mapping of the lab table the lifecycle and routine tests import (a TSV with columns
    chrom, pos, ref, alt, class, review[, gene]); with `terms`, classes are written P/LP/VUS/LB,
    else as ClinVar spells them."""
    text = """[source]
format = "tsv"
name = "mylab"

[columns]
contig = "chrom"
position = "pos"
ref = "ref"
alt = "alt"
classification = "class"
review_status = "review"
"""
    if gene:
        text += 'gene = "gene"\n'
    if terms:
        text += """
[terms]
"P" = "Pathogenic"
"LP" = "Likely_pathogenic"
"VUS" = "Uncertain_significance"
"LB" = "Likely_benign"
"""
    return text


LAB_TOML = lab_mapping()
# A mapping in any layout: fmt tsv or vcf, the column (or INFO key) names, and a release line.
LAB_MAPPING = """[source]
format = "{fmt}"
name = "mylab"
{release}
[columns]
contig = "{contig}"
position = "{pos}"
ref = "{ref}"
alt = "{alt}"
classification = "{cls}"
"""
SAMPLE_RELEASES = ("clinvar_GRCh38_2024-01-07.vcf", "clinvar_GRCh38_2024-06-02.vcf")


def store_with_sample_releases(store: Path) -> Path:
    """`store` holding the two bundled ClinVar releases (2024-01-07 and 2024-06-02)."""
    from conftest import SAMPLES, invoke

    for release in SAMPLE_RELEASES:
        r = invoke(store, "snapshot", "add", SAMPLES / release)
        assert r.code == 0, r.err
    return store


# The cohort index on disk (varreinterp/cohort_index.py): rows files under
# STORE/cohort/bins/<contig digest>/<bin>/, each with its key directory beside it. Tests read
# it directly (not through varreinterp) only through these.
KEYS_SUFFIX = ".keys.parquet"
IndexRow = tuple[str, int, str, str, str]  # key_chrom, pos, ref, alt, zygosity


def bins_dir(store: Path) -> Path:
    return store / "cohort" / "bins"


def index_files(store: Path) -> dict[str, int]:
    """Every index file on disk (rows files and key directories): name under cohort/bins ->
    size."""
    folder = bins_dir(store)
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.stat().st_size
            for p in sorted(folder.glob("*/*/*.parquet"))}


def rows_files(store: Path) -> list[Path]:
    return [bins_dir(store) / name for name in index_files(store)
            if not name.endswith(KEYS_SUFFIX)]


def sql_files(paths: list[Path]) -> str:
    """A DuckDB list literal of paths."""
    return "[" + ", ".join(f"'{p}'" for p in paths) + "]"


def index_rows(store: Path) -> dict[int, list[IndexRow]]:
    """Every row of the rows files on disk, by patient number, sorted."""
    import duckdb

    files = rows_files(store)
    if not files:
        return {}
    con = duckdb.connect()
    try:
        found = con.execute(f"""
            SELECT patient, key_chrom, pos, ref, alt, zygosity
            FROM read_parquet({sql_files(files)})""").fetchall()
    finally:
        con.close()
    out: dict[int, list[IndexRow]] = {}
    for number, chrom, pos, ref, alt, zygosity in found:
        out.setdefault(int(number), []).append((str(chrom), int(pos), str(ref), str(alt),
                                                str(zygosity)))
    return {n: sorted(rows) for n, rows in out.items()}


STATS_LINE = re.compile(r"(\d+) records, (\d+) alleles after splitting, (\d+) carried calls, "
                        r"(\d+) matched in (\S+); not reported: (.*)$", re.M)




def json_rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def hit_keys(rows: list[dict]) -> set[tuple]:
    return {(r["sample"], r["chrom"], r["pos"], r["ref"], r["alt"]) for r in rows}


def stats(err: str) -> dict[str, object]:
    """The per-file counts annotate logs on stderr."""
    m = STATS_LINE.search(err)
    assert m, f"no counts line on stderr:\n{err}"
    skipped = {}
    if m.group(6).strip() != "nothing":
        for part in m.group(6).split(", "):
            reason, n = part.rsplit(" ", 1)
            skipped[reason] = int(n)
    return {"records": int(m.group(1)), "alleles": int(m.group(2)), "carried": int(m.group(3)),
            "matched": int(m.group(4)), "skipped": skipped}





def clinvar_keys(path: Path, info_key: str = "CLNSIG") -> set[tuple[str, int, str, str]]:
    """Keys of the records that carry a classification, read with plain Python."""
    keys = set()
    with open_any(path) as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            info = dict(kv.split("=", 1) for kv in f[7].split(";") if "=" in kv)
            if info.get(info_key) and re.fullmatch(r"[ACGTN]+", f[4]):
                keys.add((bare(f[0]), int(f[1]), f[3].upper(), f[4].upper()))
    return keys


CLINVAR_HEADER = """##fileformat=VCFv4.1
##fileDate={date}
##source=ClinVar
##reference={assembly}
##INFO=<ID=CLNSIG,Number=.,Type=String,Description="Clinical significance for this single variant">
##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="ClinVar review status">
##INFO=<ID=CLNDN,Number=.,Type=String,Description="Preferred disease name">
##INFO=<ID=GENEINFO,Number=1,Type=String,Description="Gene(s) for the variant">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
"""

STARS_TO_REVIEW = {
    0: "no_assertion_criteria_provided",
    1: "criteria_provided,_single_submitter",
    2: "criteria_provided,_multiple_submitters,_no_conflicts",
    3: "reviewed_by_expert_panel",
    4: "practice_guideline",
}


def write_clinvar(path: Path, records: list[tuple], *, date: str = "2024-03-01",
                  assembly: str = "GRCh38") -> Path:
    """records: (chrom, pos, ref, alt, CLNSIG, stars, gene or None, CLNDN or None)."""
    lines = [CLINVAR_HEADER.format(date=date, assembly=assembly)]
    for i, (chrom, pos, ref, alt, sig, stars, gene, dn) in enumerate(records, start=1):
        info = [f"CLNSIG={sig}", f"CLNREVSTAT={STARS_TO_REVIEW[stars]}"]
        if gene:
            info.append(f"GENEINFO={gene}:{1000 + i}")
        if dn:
            info.append(f"CLNDN={dn}")
        lines.append(f"{chrom}\t{pos}\t{100 + i}\t{ref}\t{alt}\t.\t.\t{';'.join(info)}\n")
    path.write_text("".join(lines))
    return path


def write_patient(path: Path, samples: list[str], records: list[str], *,
                  contigs: dict[str, int] | None = None, extra_header: str = "") -> Path:
    """records: tab-separated CHROM POS ID REF ALT QUAL FILTER INFO FORMAT calls... (' ' ok)."""
    contigs = GRCH38_CONTIGS if contigs is None else contigs
    head = ["##fileformat=VCFv4.2"]
    head += [f"##contig=<ID={c},length={n}>" for c, n in contigs.items()]
    head += ['##FILTER=<ID=PASS,Description="All filters passed">',
             '##FILTER=<ID=LowQual,Description="Low quality">',
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">']
    if extra_header:
        head.append(extra_header)
    head.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO",
                           "FORMAT", *samples]))
    body = ["\t".join(r.split()) for r in records]
    text = "\n".join(head + body) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path




def add(store: Path, *args: str | Path) -> CliResult:
    """`snapshot add` that must succeed."""
    res = invoke(store, "snapshot", "add", *args)
    assert res.code == 0, res.err[-3000:]
    return res


def only_snapshot(store: Path) -> str:
    """The name of the store's one snapshot."""
    names = sorted(p.name for p in (store / "snapshots").iterdir())
    assert len(names) == 1, names
    return names[0]
