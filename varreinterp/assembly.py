"""Genome builds and contig naming.

Matching compares contigs with the 'chr' prefix removed and the mitochondrion spelled 'MT', so
`chr1`/`1` and `chrM`/`MT` are equal; outputs keep the patient's own spelling.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Assembly(StrEnum):
    GRCh37 = "GRCh37"
    GRCh38 = "GRCh38"


# chr1 length tells the builds apart (DOMAIN.md); a few more for headers without chr1.
_CONTIG_LENGTHS: dict[Assembly, dict[str, int]] = {
    Assembly.GRCh37: {"1": 249250621, "2": 243199373, "20": 63025520, "21": 48129895,
                      "X": 155270560, "MT": 16569},
    Assembly.GRCh38: {"1": 248956422, "2": 242193529, "20": 64444167, "21": 46709983,
                      "X": 156040895, "MT": 16569},
}

_REFERENCE_PATTERNS = [
    (re.compile(r"grch37|hg19|b37|hs37|human_g1k_v37|ncbi37", re.I), Assembly.GRCh37),
    (re.compile(r"grch38|hg38|b38|hs38", re.I), Assembly.GRCh38),
]


def normalize_contig(name: str) -> str:
    """Matching key for a contig name."""
    bare = name[3:] if name[:3].lower() == "chr" else name
    return "MT" if bare.upper() in ("M", "MT") else bare


# The same rule for DuckDB queries over a column named by the caller (no regex: it runs on
# every record of a ClinVar release).
def contig_sql(column: str) -> str:
    bare = (f"(CASE WHEN lower(left({column}, 3)) = 'chr' THEN substr({column}, 4) "
            f"ELSE {column} END)")
    return f"(CASE WHEN upper({bare}) IN ('M', 'MT') THEN 'MT' ELSE {bare} END)"


def parse_assembly(text: str) -> Assembly | None:
    """Recognise a build from an option value or a `##reference` header value."""
    found = {a for pattern, a in _REFERENCE_PATTERNS if pattern.search(text)}
    return found.pop() if len(found) == 1 else None


def assembly_from_contig_lengths(lengths: dict[str, int]) -> Assembly | None:
    """Infer the build from `##contig` lengths; None when they do not decide it."""
    votes: set[Assembly] = set()
    for name, length in lengths.items():
        key = normalize_contig(name)
        for assembly, known in _CONTIG_LENGTHS.items():
            if key != "MT" and known.get(key) == length:
                votes.add(assembly)
    return votes.pop() if len(votes) == 1 else None
