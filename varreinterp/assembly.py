"""Genome builds and contig naming.

Matching compares contigs with the 'chr' prefix removed and the mitochondrion spelled 'MT', so
`chr1`/`1` and `chrM`/`MT` are equal; outputs keep the patient's own spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Assembly(StrEnum):
    GRCh37 = "GRCh37"
    GRCh38 = "GRCh38"


# The primary chromosomes' lengths tell the builds apart (DOMAIN.md: chr1 is 249,250,621 in
# GRCh37 and 248,956,422 in GRCh38); every one is listed, so a header that declares any of them
# at another length is seen to be neither build.
_PRIMARY = [str(n) for n in range(1, 23)] + ["X", "Y"]
PRIMARY_CONTIGS = frozenset([*_PRIMARY, "MT"])  # matching keys of the assembled chromosomes
_CONTIG_LENGTHS: dict[Assembly, dict[str, int]] = {
    Assembly.GRCh37: dict(zip(_PRIMARY, [
        249250621, 243199373, 198022430, 191154276, 180915260, 171115067, 159138663, 146364022,
        141213431, 135534747, 135006516, 133851895, 115169878, 107349540, 102531392, 90354753,
        81195210, 78077248, 59128983, 63025520, 48129895, 51304566, 155270560, 59373566],
        strict=True)),
    Assembly.GRCh38: dict(zip(_PRIMARY, [
        248956422, 242193529, 198295559, 190214555, 181538259, 170805979, 159345973, 145138636,
        138394717, 133797422, 135086622, 133275309, 114364328, 107043718, 101991189, 90338345,
        83257441, 80373285, 58617616, 64444167, 46709983, 50818468, 156040895, 57227415],
        strict=True)),
}

_REFERENCE_PATTERNS = [
    # Homo_sapiens_assembly19/38: the Broad's (GATK's) b37 and hg38 references
    (re.compile(r"grch37|hg19|b37|hs37|human_g1k_v37|ncbi37|homo_sapiens_assembly19", re.I),
     Assembly.GRCh37),
    (re.compile(r"grch38|hg38|b38|hs38|homo_sapiens_assembly38", re.I), Assembly.GRCh38),
]
# Builds no snapshot is in: NCBI35/36 (hg17/hg18) and T2T-CHM13 (UCSC hs1).
_OTHER_BUILDS = re.compile(r"(?<![a-z0-9])(hg1[5-8]|ncbi3[4-6]|b36|hs36|chm13\w*|t2t\w*|hs1)"
                           r"(?![a-z0-9])", re.I)


# RefSeq accessions of the primary chromosomes (NCBI's names; ClinVar's HGVS uses them): the
# version tells the build, GRCh38's being GRCh37's plus one. NC_012920.1 is the rCRS itself;
# hg19's chrM (NC_001807) is not, and is left unmapped so that it matches nothing.
_GRCH37_VERSIONS = [10, 11, 11, 11, 9, 11, 13, 10, 11, 10, 9, 11, 10, 8, 9, 9, 10, 9, 9, 10, 8,
                    10, 10, 9]
_ACCESSIONS: dict[str, tuple[str, Assembly | None]] = {"NC_012920.1": ("MT", None)}
for _n, (_chrom, _v) in enumerate(zip(_PRIMARY, _GRCH37_VERSIONS, strict=True), start=1):
    _ACCESSIONS[f"NC_{_n:06d}.{_v}"] = (_chrom, Assembly.GRCh37)
    _ACCESSIONS[f"NC_{_n:06d}.{_v + 1}"] = (_chrom, Assembly.GRCh38)


def accession_build(name: str) -> Assembly | None:
    """The build a RefSeq chromosome accession belongs to (NC_000001.10: GRCh37); None for
    any other name (and for the rCRS, which both builds share)."""
    return _ACCESSIONS.get(name.upper(), ("", None))[1] if name[:3].upper() == "NC_" else None


def normalize_contig(name: str) -> str:
    """Matching key for a contig name."""
    if name[:3].upper() == "NC_" and name.upper() in _ACCESSIONS:
        return _ACCESSIONS[name.upper()][0]
    bare = name[3:] if name[:3].lower() == "chr" else name
    if bare.upper() in ("M", "MT"):
        return "MT"
    return bare.upper() if bare.upper() in ("X", "Y") else bare


_CONTIG_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*")
_AUTOSOMES = frozenset(str(i) for i in range(1, 23))


def plausible_contig(name: str) -> bool:
    """Whether a contig name written in a table could name a sequence of a human build: no
    blank, quote or other character an export leaves (`"chr1 "`, `chr 1`), and a number only
    as an autosome (`02`, `23` and `0` name no chromosome). Such a row could never match a
    patient's call."""
    if not _CONTIG_TOKEN.fullmatch(name):
        return False
    key = normalize_contig(name)
    return key in _AUTOSOMES if key.isdigit() else True


# The same rule for DuckDB queries over a column named by the caller (no regex, and the
# accessions behind a prefix test: it runs on every record of a ClinVar release).
def contig_sql(column: str) -> str:
    bare = (f"(CASE WHEN lower(left({column}, 3)) = 'chr' THEN substr({column}, 4) "
            f"ELSE {column} END)")
    named = " ".join(f"WHEN '{acc}' THEN '{chrom}'" for acc, (chrom, _) in _ACCESSIONS.items())
    return (f"(CASE WHEN upper(left({column}, 3)) = 'NC_' THEN (CASE upper({column}) {named} "
            f"ELSE {column} END) "
            f"WHEN upper({bare}) IN ('M', 'MT') THEN 'MT' "
            f"WHEN upper({bare}) IN ('X', 'Y') THEN upper({bare}) ELSE {bare} END)")


_CONTIG_LINE = re.compile(r"##contig=<(.*)>")


def _contig_fields(lines: list[str]) -> list[dict[str, str]]:
    """The key=value fields of every `##contig` line that has an ID."""
    out = []
    for line in lines:
        m = _CONTIG_LINE.match(line)
        if m:
            fields = dict(kv.split("=", 1)
                          for kv in re.split(r",(?=\w+=)", m.group(1)) if "=" in kv)
            if "ID" in fields:
                out.append(fields)
    return out


def declared_contig_ids(lines: list[str]) -> list[str]:
    """Every `##contig` ID of a VCF's header lines, with or without a length."""
    return [f["ID"] for f in _contig_fields(lines)]


def declared_contig_lengths(lines: list[str]) -> dict[str, int]:
    """`##contig` lengths by ID, from a VCF's header lines (contigs without one left out)."""
    return {f["ID"]: int(f["length"]) for f in _contig_fields(lines)
            if f.get("length", "").isdigit()}


def parse_assembly(text: str) -> Assembly | None:
    """Recognise a build from an option value or a `##reference` header value."""
    found = {a for pattern, a in _REFERENCE_PATTERNS if pattern.search(text)}
    return found.pop() if len(found) == 1 else None


def assembly_from_contig_lengths(lengths: dict[str, int]) -> Assembly | None:
    """Infer the build from `##contig` lengths (and RefSeq accession names); None when they
    do not decide it."""
    votes: set[Assembly] = set()
    for name, length in lengths.items():
        by_name = accession_build(name)
        if by_name is not None:
            votes.add(by_name)
        key = normalize_contig(name)
        for assembly, known in _CONTIG_LENGTHS.items():
            if known.get(key) == length:
                votes.add(assembly)
    return votes.pop() if len(votes) == 1 else None


def other_build(reference: str | None, lengths: dict[str, int]) -> str | None:
    """Why a header (its `##reference` value and `##contig` lengths) is of a build that is
    neither GRCh37 nor GRCh38, or None. Such a file matches almost nothing, or worse, the
    wrong variants, so callers refuse it. Only when the lengths and the names of GRCh37/38 do
    not decide: then another build named in the reference's file name (hg18, T2T...), or a
    primary chromosome at an unknown length. That length counts
    only when nothing else names the build and the length is a whole chromosome's (more than
    half of GRCh37's and GRCh38's): extracts and test references declare cut contigs
    (chr1 of 54,321 bp), while another build's chr1 is 247-248 Mb."""
    if assembly_from_contig_lengths(lengths) or parse_assembly(reference or ""):
        return None
    # The file name only: folders are named anything (/mnt/T2T-lab/refs/GRCh38.fa).
    named = _OTHER_BUILDS.search(re.split(r"[/\\]", reference or "")[-1])
    if named:
        return f"##reference={reference} names {named.group(1)}, neither GRCh37 nor GRCh38"
    for name, length in lengths.items():
        expected = {a: known[key] for a, known in _CONTIG_LENGTHS.items()
                    if (key := normalize_contig(name)) in known}
        if expected and length not in expected.values() and length > min(expected.values()) // 2:
            return (f"contig {name} is {length:,} bp, the length of neither GRCh37 "
                    f"({expected[Assembly.GRCh37]:,}) nor GRCh38 ({expected[Assembly.GRCh38]:,})")
    return None


class ContigSkip(StrEnum):
    """Why every call on a contig is not matched (counted under these names)."""

    NON_RCRS_MITOCHONDRION = "non_rcrs_mitochondrion"  # UCSC hg19's chrM: other coordinates
    UNVERIFIED_MITOCHONDRION = "unverified_mitochondrion"  # chrM of a GRCh37 file, no length
    OTHER_BUILD_CONTIG = "other_build_contig"  # NC_000001.10 (GRCh37) in a file not GRCh37


RCRS_LENGTH = 16569  # NC_012920: GRCh37 MT, GRCh38 chrM/MT and ClinVar
HG19_CHRM_LENGTH = 16571  # NC_001807, UCSC hg19's chrM: positions drift by 1-2 after m.310


@dataclass(frozen=True)
class ContigPolicy:
    """Which contigs of one file may not be matched, whatever their positions.

    A RefSeq accession names its build (NC_000001.10 is GRCh37's chr1, .11 GRCh38's): one
    that is not the file's build, or in a file whose header does not tell its build, is not
    matched.

    Mitochondrial contigs are matched to rCRS positions only when they are the rCRS.

    A contig is never matched when its declared length (or the FASTA's) is hg19's 16,571; when
    its length is unknown, a `chrM`/`M` of a GRCh37 (hg19) file is not trusted either, since
    UCSC hg19 spells its non-rCRS mitochondrion that way. `MT`, and any 16,569 bp contig, are
    the rCRS."""

    declared: dict[str, int]  # ##contig lengths, by the file's names
    sequence: dict[str, int]  # --reference lengths, by contig key
    build: Assembly | None

    def length(self, name: str) -> int | None:
        return self.sequence.get(normalize_contig(name), self.declared.get(name))

    def verdict(self, name: str) -> ContigSkip | None:
        named = accession_build(name)
        if named is not None and named is not self.build:
            return ContigSkip.OTHER_BUILD_CONTIG
        if normalize_contig(name) != "MT":
            return None
        length = self.length(name)
        if length == HG19_CHRM_LENGTH:
            return ContigSkip.NON_RCRS_MITOCHONDRION
        if length == RCRS_LENGTH:
            return None
        if length is not None:
            return ContigSkip.UNVERIFIED_MITOCHONDRION
        if name.upper() in ("CHRM", "M") and self.build is not Assembly.GRCh38:
            return ContigSkip.UNVERIFIED_MITOCHONDRION
        return None

    def explain(self, name: str, verdict: ContigSkip,
                outcome: str = "its calls are not matched",
                remedy: str = "declare ##contig=<ID=...,length=16569> or give --reference",
                ) -> str:
        if verdict is ContigSkip.OTHER_BUILD_CONTIG:
            return (f"contig {name} is {accession_build(name)}'s chromosome "
                    f"{normalize_contig(name)}, but the file is "
                    f"{self.build.value if self.build else 'of no stated build'}; {outcome}")
        length = self.length(name)
        if verdict is ContigSkip.NON_RCRS_MITOCHONDRION:
            return (f"contig {name} is {length:,} bp: UCSC hg19's chrM (NC_001807), not the rCRS "
                    f"that ClinVar uses; {outcome}")
        if length is not None:
            return (f"contig {name} is {length:,} bp, neither the rCRS ({RCRS_LENGTH:,}) nor "
                    f"hg19's chrM ({HG19_CHRM_LENGTH:,}); {outcome}")
        return (f"contig {name} has no declared length in a "
                f"{self.build.value if self.build else 'build-less'} file: it may be UCSC "
                f"hg19's chrM, which is not the rCRS; {outcome} ({remedy})")
