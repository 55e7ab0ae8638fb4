"""Patient VCFs in, carried normalized alleles out. The one module that reads patient VCFs.

The text is parsed columnar by DuckDB (about 5-10x faster than a per-record loop); only the few
alleles that need it (multi-allelic leftovers, untrimmed alleles, indels to left-align against a
FASTA) go through Python. BCF is first rewritten as VCF text by htslib (pysam).

`load()` returns a `PatientCalls` handle naming the DuckDB relations it created (each load gets
its own names, so several files can live on one connection):
  rec      one row per data line read: rid (0-based data-line index), chrom, pos, ref, alt,
           filter, complex, g_i (every line, or with `sites` the lines the prefilter kept)
  allele   one row per ALT after splitting: rid, ai (1-based ALT index), chrom (patient's
           spelling), key_chrom, pos/ref/alt (normalized), skip (reason, NULL when usable)
  carried  one row per (sample, usable allele) whose genotype contains that allele
"""

from __future__ import annotations

import itertools
import logging
import re
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, overload

from varreinterp import bgzf, db, genotypes
from varreinterp.assembly import (
    Assembly,
    ContigPolicy,
    ContigSkip,
    assembly_from_contig_lengths,
    contig_sql,
    declared_contig_ids,
    declared_contig_lengths,
    normalize_contig,
    other_build,
    parse_assembly,
)
from varreinterp.errors import AssemblyMismatchError, InputError, UsageError
from varreinterp.genotypes import GenotypeScan
from varreinterp.normalize import invalid_allele_sql, left_align, needs_trim, trim
from varreinterp.prefilter import Prefiltered, Sites, prefilter
from varreinterp.textfile import header_lines_of, open_text, raw_field

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger("varreinterp")


class Zygosity(StrEnum):
    HET = "het"
    HOM = "hom"
    HEMI = "hemi"
    UNKNOWN = "unknown"


class Skip(StrEnum):
    """Why an allele, or a sample's call of it, is not reported. Every one is counted."""

    REFERENCE_BLOCK = "reference_block"  # gVCF blocks and other ALT=. reference calls
    NON_REF_ALLELE = "gvcf_non_ref_allele"
    SYMBOLIC = "symbolic_allele"
    STAR = "star_allele"
    INVALID = "invalid_allele"
    REF_MISMATCH = "ref_mismatch"
    FILTERED = "filtered_not_pass"
    # per sample
    NO_CALL = "no_call"
    HALF_CALL = "half_call"
    HOM_REF = "hom_ref"
    OTHER_ALLELE = "other_allele_called"
    NO_GENOTYPE = "no_genotype"
    DUPLICATE_RECORD = "duplicate_record"  # the same carried allele again: reported once
    # per contig (assembly.ContigPolicy)
    NON_RCRS_MITOCHONDRION = ContigSkip.NON_RCRS_MITOCHONDRION.value
    UNVERIFIED_MITOCHONDRION = ContigSkip.UNVERIFIED_MITOCHONDRION.value
    OTHER_BUILD_CONTIG = ContigSkip.OTHER_BUILD_CONTIG.value


@dataclass
class VcfHeader:
    path: Path
    text_path: Path  # VCF text to read (a temporary conversion for BCF)
    lines: list[str]
    samples: list[str]
    contigs: dict[str, int]
    reference: str | None
    workdir: Path  # private temporary folder of this run (inside the store)
    # The build `check_assembly` assumed for a header that does not tell it (the snapshot's)
    assumed: Assembly | None = None

    @property
    def n_lines(self) -> int:
        return len(self.lines)

    def assembly(self) -> Assembly | None:
        by_length = assembly_from_contig_lengths(_with_accessions(self.lines, self.contigs))
        by_name = parse_assembly(self.reference) if self.reference else None
        if by_length and by_name and by_length != by_name:
            raise InputError(f"header contradicts itself: ##reference={self.reference} but "
                             f"##contig lengths are {by_length.value}", self.path)
        return by_length or by_name


@dataclass
class ReadStats:
    """What happened to every record, allele and call of one file."""

    path: str
    records: int = 0
    alleles: int = 0
    calls: int = 0
    carried: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def not_reported(self) -> str:
        """What was counted and not reported, for the per-file log line of every command."""
        return ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items()) if v) or "nothing"

    def ref_mismatch_warning(self, reference: Path | None) -> str | None:
        """The warning every command gives when calls were dropped because `reference`
        contradicts their REF: counted only, they read as "nothing to report" (a FASTA of
        another version, or an index (.fai) left from an older file, drops most of them)."""
        n = self.skipped.get(Skip.REF_MISMATCH.value, 0)
        if not n or reference is None:
            return None
        return (f"{self.path}: {n} call(s) not reported because their REF disagrees with "
                f"--reference {reference} (ref_mismatch): check that the FASTA and its index "
                "are this file's reference")

    def to_json(self) -> dict[str, object]:
        return {"file": self.path, "records": self.records, "alleles": self.alleles,
                "calls": self.calls, "carried": self.carried, "skipped": dict(self.skipped)}


def read_header(path: Path, workdir: Path) -> VcfHeader:
    if not path.exists():
        raise InputError("no such file", path)
    if not path.is_file():
        raise InputError("not a regular file", path)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    text_path = path
    bgzf.check_file(path)
    if magic[:3] == b"BCF" or (magic[:2] == b"\x1f\x8b" and _is_bcf(path)):
        text_path = _bcf_to_vcf(path, workdir)
    lines: list[str] = []
    for _, line in header_lines_of(text_path):  # counted as the data readers count them
        lines.append(line.rstrip("\r\n"))
        if "\r" in lines[-1]:  # readers disagree on where such a line ends: refuse it
            raise InputError("stray carriage return (CR) inside a header line", path, len(lines))
        if "\x00" in lines[-1]:
            raise InputError("a NUL byte inside a header line", path, len(lines))
    if not lines:
        raise InputError("empty file or missing VCF header (no '#' lines)", path)
    if not lines[0].startswith("##fileformat=VCF"):
        raise InputError("not a VCF: first line is not ##fileformat=VCF...", path, 1)
    if not lines[-1].startswith("#CHROM"):
        raise InputError("VCF header has no #CHROM line", path, len(lines))
    columns = lines[-1].lstrip("#").split("\t")
    if columns[:8] != ["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]:
        raise InputError("malformed #CHROM line", path, len(lines))
    samples = columns[9:]
    if "" in samples:  # a caller's bug (an extra tab): such a patient could not be named
        raise InputError(f"sample column {samples.index('') + 1} of the #CHROM line has an "
                         "empty name", path, len(lines))
    repeated = sorted(s for s, n in Counter(samples).items() if n > 1)
    if repeated:
        raise InputError(f"sample name(s) {', '.join(repeated)} appear in more than one column "
                         "of the #CHROM line", path, len(lines))
    reference = next((ln.split("=", 1)[1] for ln in lines if ln.startswith("##reference=")), None)
    contigs = declared_contig_lengths(lines)
    _refuse_other_build(path, reference, contigs)
    return VcfHeader(path, text_path, lines, samples, contigs, reference, workdir)


def _refuse_other_build(path: Path, reference: str | None, contigs: dict[str, int]) -> None:
    why = other_build(reference, contigs)
    if why:
        raise AssemblyMismatchError(f"another genome build: {why}; snapshots are GRCh37 or "
                                    "GRCh38, so its positions would match the wrong variants",
                                    path)


def peek_assembly(path: Path) -> Assembly | None:
    """The build a VCF's header declares, read cheaply (for choosing snapshots before the
    real read); None when it does not tell, InputError when the file is damaged."""
    if not path.is_file():
        return None
    lines: list[str] = []
    bgzf.check_file(path)  # htslib reads a BCF cut at a block boundary without a word
    with open(path, "rb") as fh:
        magic = fh.read(3)
    if magic == b"BCF" or _is_bcf(path):
        lines = _bcf_header_text(path).splitlines()
    else:
        for line in open_text(path):
            if not line.startswith("##"):
                break
            lines.append(line.rstrip("\r\n"))
    reference = next((ln.split("=", 1)[1] for ln in lines if ln.startswith("##reference=")),
                     None)
    contigs = declared_contig_lengths(lines)
    _refuse_other_build(path, reference, contigs)
    by_length = assembly_from_contig_lengths(_with_accessions(lines, contigs))
    return by_length or (parse_assembly(reference) if reference else None)


def _bcf_header_text(path: Path) -> str:
    """The header text of a BCF (BCF 2.2: magic 'BCF\\2\\2', its length, the text), read
    through the verified decompression: htslib cannot seek in a plain-gzip BCF."""
    import struct
    import zlib

    try:
        with bgzf.open_verified(path) as fh:
            head = fh.read(9)
            if len(head) < 9 or head[:3] != b"BCF":
                raise InputError("cannot read BCF header (not a BCF file)", path)
            (size,) = struct.unpack("<I", head[5:9])
            text = fh.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"cannot read BCF header ({exc})", path) from exc
    if len(text) < size:
        raise InputError("cannot read BCF header (the file ends inside it)", path)
    try:
        return text.rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("cannot read BCF header (not UTF-8 text)", path) from None


def _is_bcf(path: Path) -> bool:
    """Whether a gzip file holds BCF. Damage here is not this probe's to report: False lets
    the verified reader name it (a bad first deflate block raises zlib.error)."""
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(3) == b"BCF"
    except (OSError, EOFError, zlib.error):
        return False


def _bcf_to_vcf(path: Path, workdir: Path) -> Path:
    """htslib rewrites BCF as VCF text so one columnar reader serves both. The BGZF layer is
    verified and inflated by us first (bgzf.py), so damage gets our one-line error, not
    htslib's messages on stderr."""
    import pysam

    plain = bgzf.decompressed_text(path, workdir, text=False)
    out = Path(tempfile.mkstemp(suffix=".vcf", dir=workdir)[1])
    previous = pysam.set_verbosity(0)
    try:
        with pysam.VariantFile(str(plain)) as src, \
                pysam.VariantFile(str(out), "w", header=src.header) as dst:
            for rec in src:
                dst.write(rec)
    except (OSError, ValueError) as exc:
        raise InputError("cannot read BCF: malformed record data", path) from exc
    finally:
        pysam.set_verbosity(previous)
        if plain != path:
            plain.unlink(missing_ok=True)
    return out


def _with_accessions(lines: list[str], lengths: dict[str, int]) -> dict[str, int]:
    """`##contig` lengths, plus the IDs declared without one (0: no length vote), whose RefSeq
    accession names still tell the build."""
    return {**dict.fromkeys(declared_contig_ids(lines), 0), **lengths}


def check_assembly(header: VcfHeader, expected: str, what: str) -> None:
    found = header.assembly()
    if found is None:
        header.assumed = Assembly(expected)
        log.warning("%s: the header does not tell the genome build (no ##reference, no known "
                    "##contig lengths); assuming %s like %s", header.path, expected, what)
    elif found.value != expected:
        raise AssemblyMismatchError(
            f"genome build mismatch: the VCF is {found.value} (from its header) but {what} is "
            f"{expected}", header.path)


class FastaReference:
    """pysam.FastaFile addressed by the patient's contig names, compared chr-insensitively.
    htslib is silenced around every call: a damaged FASTA is one InputError naming it, not
    htslib's lines on stderr and a ValueError."""

    def __init__(self, path: Path, workdir: Path):
        import pysam

        if not path.is_file():
            raise InputError("reference FASTA: no such file", path)
        bgzf.check_file(path, newline=False)
        previous = pysam.set_verbosity(0)
        try:
            self._fasta = pysam.FastaFile(str(_indexable(path, workdir)))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot open reference FASTA ({' '.join(str(exc).split())})",
                             path) from exc
        finally:
            pysam.set_verbosity(previous)
        self.path = path
        self._names = {normalize_contig(n): n for n in self._fasta.references}
        _check_plain_index(path)

    def has(self, contig: str) -> bool:
        return normalize_contig(contig) in self._names

    def lengths(self) -> dict[str, int]:
        """Contig lengths by the FASTA's own names (from its index: no sequence is read)."""
        return dict(zip(self._fasta.references, self._fasta.lengths, strict=True))

    def fetch(self, contig: str, start: int, end: int) -> str:
        """Bases [start, end) of a contig the FASTA has; InputError when they cannot be read
        (a corrupt block of a bgzipped FASTA surfaces only here, the index being intact)."""
        import pysam

        name = self._names[normalize_contig(contig)]
        previous = pysam.set_verbosity(0)
        try:
            return str(self._fasta.fetch(name, start, end))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read reference FASTA at {name}:{start + 1}-{end} "
                             f"({' '.join(str(exc).split())}): corrupt or truncated",
                             self.path) from exc
        finally:
            pysam.set_verbosity(previous)


def _check_plain_index(path: Path) -> None:
    """An index (.fai) is trusted by htslib: one left from an older or edited FASTA reads other
    bases at every position (each REF then a ref_mismatch, each indel left-aligned wrongly).
    For a plain FASTA its entries are checked against the file: each sequence starts right
    after its own '>' line, and its lines end where the index says. (A bgzipped FASTA's
    offsets are into the inflated text: not checked.)"""
    fai = Path(str(path) + ".fai")
    with open(path, "rb") as fh:
        if fh.read(2) == b"\x1f\x8b" or not fai.is_file():
            return
        size = fh.seek(0, 2)
        for n, line in enumerate(fai.read_text(errors="replace").splitlines(), start=1):
            fields = line.split("\t")
            try:
                name, length, offset, bases, width = fields[0], *map(int, fields[1:5])
            except ValueError:
                raise InputError(f"reference FASTA index {fai}: line {n} is not an index "
                                 "entry", path) from None
            fh.seek(max(offset - 256 - len(name), 0))
            before = fh.read(min(offset, 256 + len(name)))
            header = before[:-1].rsplit(b"\n", 1)[-1] if before.endswith(b"\n") else b""
            ok = header.startswith(b">") and header[1:].split()[:1] == [name.encode()]
            if ok and length > bases > 0:  # the first line ends where the index says
                fh.seek(offset + bases)
                ok = fh.read(width - bases) in (b"\n", b"\r\n")
            if not ok or offset + length > size:
                raise InputError(f"reference FASTA index {fai} does not fit the FASTA (sequence "
                                 f"{name} is not where line {n} puts it): an index left from "
                                 "another file? remove it to have it rebuilt", path)


def _indexable(path: Path, workdir: Path) -> Path:
    """pysam needs plain or BGZF text and writes a missing .fai beside the file: a plain-gzip
    FASTA is decompressed, and one in a read-only folder without an index is linked, into the
    run's private temporary folder."""
    import gzip
    import os
    import shutil

    with open(path, "rb") as fh:
        head = fh.read(16)
    is_gzip = head[:2] == b"\x1f\x8b"
    is_bgzf = is_gzip and head[12:14] == b"BC"
    if is_gzip and not is_bgzf:
        plain = workdir / (path.name.removesuffix(".gz") or "reference.fa")
        try:
            with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (OSError, EOFError) as exc:
            raise InputError("reference FASTA: truncated or corrupt gzip", path) from exc
        return plain
    has_index = Path(str(path) + ".fai").exists() and (
        not is_bgzf or Path(str(path) + ".gzi").exists())
    if has_index or os.access(path.parent, os.W_OK):
        return path
    link = workdir / path.name
    link.symlink_to(path.resolve())
    return link


def select_samples(header: VcfHeader, wanted: list[str] | None) -> list[int]:
    if not header.samples:
        raise InputError("the VCF has no sample columns (sites-only): no patient to annotate",
                         header.path)
    if not wanted:
        return list(range(len(header.samples)))
    return [i for i, s in enumerate(header.samples) if s in wanted]


def skip_sql(a: str, n_alt: str, pass_only: bool) -> str:
    """Why an ALT `a` is not a usable allele (NULL when it is): one rule for every path."""
    return f"""CASE
        WHEN length({a}) = 1 AND length(ref) = 1 AND {a} IN ('A', 'C', 'G', 'T')
             AND ref IN ('A', 'C', 'G', 'T') {"AND filter IN ('PASS', '.')" if pass_only else ""}
            THEN NULL
        WHEN ({a} IN ('<NON_REF>', '<*>') AND {n_alt} = 1) OR {a} IN ('.', '')
            THEN '{Skip.REFERENCE_BLOCK.value}'
        WHEN {a} IN ('<NON_REF>', '<*>') THEN '{Skip.NON_REF_ALLELE.value}'
        WHEN {a} = '*' THEN '{Skip.STAR.value}'
        WHEN {a} LIKE '%<%' OR {a} LIKE '%[%' OR {a} LIKE '%]%' THEN '{Skip.SYMBOLIC.value}'
        WHEN {invalid_allele_sql(a, 'ref')} THEN '{Skip.INVALID.value}'
        {"WHEN filter NOT IN ('PASS', '.') THEN '" + Skip.FILTERED.value + "'"
         if pass_only else ""}
        END"""


_LOADS = itertools.count()


class _Relation:
    """The name of one of a load's relations: the load's prefix and the attribute's name, so
    that two loads on one connection never share a table."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, calls: None, owner: type) -> _Relation: ...

    @overload
    def __get__(self, calls: PatientCalls, owner: type | None = None) -> str: ...

    def __get__(self, calls: PatientCalls | None, owner: type | None = None) -> str | _Relation:
        return self if calls is None else calls.prefix + self.name

    def __set__(self, calls: PatientCalls, value: object) -> None:
        raise AttributeError(f"{self.name} is named by the load's prefix; it cannot be set")


@dataclass
class PatientCalls:
    """One patient file read into DuckDB: the names of the relations `load()` created on `con`
    (see the module docstring for their columns), the samples read and what happened to every
    record. Matching (`matching.py`) and the cohort index work from this handle only."""

    con: duckdb.DuckDBPyConnection
    header: VcfHeader
    sample_idx: list[int]
    stats: ReadStats
    pass_only: bool
    prefix: str
    code_text: list[str] = field(default_factory=list)  # GT string of each genotype code

    rec_table = _Relation()
    rec = _Relation()
    contigs = _Relation()
    complex_allele = _Relation()
    allele = _Relation()
    gtmap = _Relation()
    gtcounts = _Relation()
    gtcells = _Relation()
    carried = _Relation()

    @property
    def samples(self) -> list[str]:
        return [self.header.samples[i] for i in self.sample_idx]

    def drop(self) -> None:
        """Free this load's relations (a task indexing many files on one connection)."""
        for name, kind in self.con.execute(
                "SELECT table_name, table_type FROM information_schema.tables "
                "WHERE starts_with(table_name, ?)", [self.prefix]).fetchall():
            what = "VIEW" if kind == "VIEW" else "TABLE"
            self.con.execute(f"DROP {what} IF EXISTS {name}")

    def carried_sql(self, alleles: str | None = None, payload: Sequence[str] = ()) -> str:
        """(sample, allele) rows whose genotype carries the allele, from an allele relation
        (default: every allele of the file), with its `payload` columns carried through."""
        return _carried_sql(self, alleles or self.allele, payload)


def contig_policy(header: VcfHeader, reference: FastaReference | None) -> ContigPolicy:
    sequence = ({normalize_contig(k): v for k, v in reference.lengths().items()}
                if reference is not None else {})  # the sequence itself decides
    try:
        build = header.assembly() or header.assumed
    except InputError:
        build = header.assumed
    return ContigPolicy(dict(header.contigs), sequence, build)


def load(
    con: duckdb.DuckDBPyConnection,
    header: VcfHeader,
    sample_idx: list[int],
    reference: FastaReference | None = None,
    pass_only: bool = False,
    sites: Sites | None = None,
) -> PatientCalls:
    """Read one file into new relations on `con` and return their handle.

    Genotypes are read by genotypes.scan (numpy, bytes), the first 9 columns by DuckDB. Most
    records (one ALT, nothing to trim, no indel to left-align) are used as they are; only the
    others are split and normalized. With `sites` (the positions of every variant the caller
    will look up), substitutions elsewhere are only counted (`prefilter`): `rec` and `allele`
    then hold the other records, and the stats still cover every record."""
    calls = PatientCalls(con, header, sample_idx, ReadStats(str(header.path)), pass_only,
                         f"p{next(_LOADS)}_")
    stats = calls.stats
    policy = contig_policy(header, reference)
    with tempfile.TemporaryDirectory(prefix="read-", dir=header.workdir) as tmp:
        pre = None
        if sites is not None:
            pre = prefilter(header.text_path, header.n_lines, len(header.samples), sample_idx,
                            sites, pass_only, reference is not None, Path(tmp),
                            lambda name: policy.verdict(name) is not None)
        scanned = _scan(calls, pre, Path(tmp))
        _create_rec(calls, scanned, reference is not None)
    stats.records = pre.records if pre else len(scanned.rids)
    _register_genotypes(calls, scanned)
    _refuse_malformed(calls)
    # Contig spellings are few: their matching keys are computed once, not per record.
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {calls.contigs} AS
                    SELECT chrom, {contig_sql('chrom')} AS key_chrom,
                           CAST(NULL AS VARCHAR) AS contig_skip
                    FROM (SELECT DISTINCT chrom FROM {calls.rec})""")
    _mark_contigs(calls, policy)
    if reference is not None:
        _warn_unsequenced(calls, reference)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {calls.complex_allele} AS
        WITH split AS (
            SELECT r.rid, r.chrom, c.key_chrom, c.contig_skip, pos, ref, filter, n_alt,
                   unnest(string_split(alt, ',')) AS a,
                   unnest(range(1, len(string_split(alt, ',')) + 1)) AS ai
            FROM {calls.rec} r JOIN {calls.contigs} c ON c.chrom = r.chrom WHERE complex)
        SELECT rid, CAST(ai AS INTEGER) AS ai, chrom, key_chrom, pos, ref, a AS alt,
               filter, coalesce({skip_sql('a', 'n_alt', pass_only)}, contig_skip) AS skip,
               n_alt
        FROM split
    """)
    _normalize_in_python(calls, reference)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {calls.allele} AS
        SELECT r.rid, 1 AS ai, r.chrom, c.key_chrom, pos, ref, alt, filter,
               coalesce({skip_sql('alt', '1', pass_only)}, c.contig_skip) AS skip, n_alt
        FROM {calls.rec} r JOIN {calls.contigs} c ON c.chrom = r.chrom WHERE NOT complex
        UNION ALL
        SELECT rid, ai, chrom, key_chrom, pos, ref, alt, filter, skip, n_alt
        FROM {calls.complex_allele}
    """)
    _genotypes(calls)
    if pre:
        _count_prefiltered(stats, pre)
    no_gt = stats.skipped.get(Skip.NO_GENOTYPE.value, 0)
    if stats.calls and no_gt == stats.calls:
        log.warning("%s: no record gives a GT for the selected samples (FORMAT without GT): "
                    "no genotype was read, so no call can be reported", header.path)
    return calls


_COLUMNS = ["chrom", "pos", "id", "ref", "alt", "qual", "filter", "info", "format"]


def _scan(calls: PatientCalls, pre: Prefiltered | None, tmp: Path) -> GenotypeScan:
    """Genotypes of the lines to read (all, or the prefilter's), and their first 9 columns."""
    header = calls.header
    n_cols = 9 + len(header.samples) if header.samples else 8
    narrow = tmp / "narrow.tsv"
    if pre is None:
        return genotypes.scan(header.text_path, header.n_lines, n_cols, calls.sample_idx,
                              narrow, tmp, header.path)
    return genotypes.scan(pre.kept, 0, n_cols, calls.sample_idx, narrow, tmp, header.path,
                          rids=pre.rids, source_skip=header.n_lines)


def _create_rec(calls: PatientCalls, scanned: GenotypeScan, left_align: bool) -> None:
    """`rec` from the narrow text, each row numbered with its data line."""
    con, header = calls.con, calls.header
    n_cols = 9 if header.samples else 8
    indel = "OR length(ref) <> length(alt)" if left_align else ""
    rids = f"{calls.prefix}rids"
    con.register(rids, {"rid": scanned.rids})
    try:
        try:
            with db.reading(header.path):
                con.execute(f"""
                    CREATE OR REPLACE TEMP TABLE {calls.rec_table} AS
                    SELECT p.rid, chrom, {db.strict_pos_sql('pos')} AS pos,
                           upper(ref) AS ref, upper(alt) AS alt,
                           coalesce(filter, '.') AS filter,  -- empty FILTER: missing, like '.'
                           CAST(CASE WHEN alt IN ('.', '') THEN 0
                                     ELSE len(string_split(alt, ',')) END AS INTEGER) AS n_alt,
                           (CASE WHEN length(alt) = 1 AND length(ref) = 1 THEN false
                                 ELSE contains(alt, ',') OR (length(ref) > 1 AND length(alt) > 1
                                      AND (ref[1] = alt[1] OR ref[-1] = alt[-1])) {indel}
                                 END) AS complex
                    FROM {db.read_delimited(scanned.narrow, _COLUMNS[:n_cols], skip=0)}
                         POSITIONAL JOIN {rids} p""")
        except InputError as exc:  # line L of the narrow text is data line rids[L - 1]
            if exc.line is None or not 0 < exc.line <= len(scanned.rids):
                raise
            raise InputError(exc.message, header.path,
                             header.n_lines + int(scanned.rids[exc.line - 1]) + 1) from exc
        # Line numbers travel by position: the columnar reader must have read every line.
        rows = db.scalar(con, f"SELECT count(*) FILTER (rid IS NOT NULL AND chrom IS NOT NULL)"
                              f" FROM {calls.rec_table}")
        if rows != len(scanned.rids):
            raise InputError(f"read {rows} of {len(scanned.rids)} records: the file's lines "
                             "could not all be read", header.path)
    finally:
        con.unregister(rids)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {calls.rec} AS SELECT * FROM {calls.rec_table}")


def _register_genotypes(calls: PatientCalls, scanned: GenotypeScan) -> None:
    """The scan's GT tables as DuckDB tables: gtcounts (rid, code, n), gtcells (rid, k, code),
    gtcodes (code, gt)."""
    con = calls.con
    tables = {
        calls.gtcounts: {"rid": scanned.count_rid, "code": scanned.count_code,
                         "n": scanned.count_n},
        calls.gtcells: {"rid": scanned.cell_rid, "k": scanned.cell_k,
                        "code": scanned.cell_code},
    }
    for name, columns in tables.items():
        con.register(f"{name}_np", columns)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_np")
        con.unregister(f"{name}_np")
    calls.code_text = scanned.code_text


def _mark_contigs(calls: PatientCalls, policy: ContigPolicy) -> None:
    """Contigs the policy refuses (an hg19 chrM, another build's accession) get a skip reason
    for all their alleles, and one warning each."""
    for (name,) in calls.con.execute(
            f"SELECT chrom FROM {calls.contigs} "
            "WHERE key_chrom = 'MT' OR upper(left(chrom, 3)) = 'NC_'").fetchall():
        verdict = policy.verdict(name)
        if verdict is None:
            continue
        calls.con.execute(f"UPDATE {calls.contigs} SET contig_skip = ? WHERE chrom = ?",
                          [verdict.value, name])
        log.warning("%s: %s", calls.header.path, policy.explain(name, verdict))


def _warn_unsequenced(calls: PatientCalls, reference: FastaReference) -> None:
    """One warning per contig of the file that the FASTA has no sequence for: its indels are
    only trimmed, not left-aligned, and no REF on it is checked, so a right-shifted indel
    misses its match. Counted on `rec`: with the prefilter, substitutions at no snapshot
    position are not read (they cannot match, FASTA or not)."""
    con = calls.con
    missing = [name for (name,) in con.execute(
        f"SELECT chrom FROM {calls.contigs} WHERE contig_skip IS NULL").fetchall()
        if not reference.has(name)]
    if not missing:  # the usual case costs one look at the few contig names
        return
    names = ", ".join(db.quote(name) for name in missing)
    for name, n in con.execute(f"""
            SELECT chrom, count(*) FROM {calls.rec} WHERE chrom IN ({names})
            GROUP BY chrom ORDER BY min(rid)""").fetchall():
        log.warning("%s: --reference %s has no sequence for contig %s: %d record(s) on it "
                    "were not left-aligned or REF-checked (only trimmed)", calls.header.path,
                    reference.path, name, n)


def _count_prefiltered(stats: ReadStats, pre: Prefiltered) -> None:
    """The substitutions the prefilter counted without reading: one usable allele each."""
    stats.alleles += pre.dropped
    if pre.filtered:
        stats.skipped[Skip.FILTERED.value] += pre.filtered
    for gt, n in pre.calls.items():
        _count_call(stats, gt, 1, n)


def _normalize_in_python(calls: PatientCalls, reference: FastaReference | None) -> None:
    """Trim shared bases (and left-align indels with a FASTA) for the alleles that need it;
    with a FASTA, a REF that disagrees with it is marked, not matched."""
    con = calls.con
    indel = "OR length(ref) <> length(alt)" if reference else ""
    rows = con.execute(f"""
        SELECT rid, ai, chrom, pos, ref, alt FROM {calls.complex_allele}
        WHERE skip IS NULL AND ((length(ref) > 1 AND length(alt) > 1
              AND (ref[1] = alt[1] OR ref[-1] = alt[-1])) {indel})
    """).fetchall()
    if not rows:
        return
    import pyarrow as pa

    fixed: dict[str, list[object]] = {k: [] for k in ("rid", "ai", "pos", "ref", "alt", "skip")}
    for rid, ai, chrom, pos, ref, alt in rows:
        skip = None
        if reference is not None:
            if not reference.has(chrom):
                skip = None  # no sequence for this contig (warned): trim only
                npos, nref, nalt = trim(pos, ref, alt)
            elif reference.fetch(chrom, pos - 1, pos - 1 + len(ref)).upper() != ref:
                skip, (npos, nref, nalt) = Skip.REF_MISMATCH.value, (pos, ref, alt)
            else:
                npos, nref, nalt = left_align(reference, chrom, pos, ref, alt)
        else:
            npos, nref, nalt = trim(pos, ref, alt) if needs_trim(ref, alt) else (pos, ref, alt)
        for key, value in zip(fixed, (rid, ai, npos, nref, nalt, skip), strict=True):
            fixed[key].append(value)
    table = pa.table({
        "rid": pa.array(fixed["rid"], pa.int64()), "ai": pa.array(fixed["ai"], pa.int32()),
        "pos": pa.array(fixed["pos"], pa.int64()), "ref": pa.array(fixed["ref"], pa.string()),
        "alt": pa.array(fixed["alt"], pa.string()), "skip": pa.array(fixed["skip"], pa.string()),
    })
    name = f"{calls.prefix}fixed_alleles"
    con.register(name, table)
    con.execute(f"""
        UPDATE {calls.complex_allele} SET pos = f.pos, ref = f.ref, alt = f.alt, skip = f.skip
        FROM {name} f WHERE {calls.complex_allele}.rid = f.rid
                        AND {calls.complex_allele}.ai = f.ai
    """)
    con.unregister(name)


def genotype_status(gt: str | None, ai: int) -> tuple[str, str | None]:
    """(status, zygosity) of allele `ai` in one GT string: 'carried' or a Skip reason."""
    if not gt:
        return Skip.NO_GENOTYPE.value, None
    # An index is a number, as htslib reads it: '01' is allele 1 (a string compare missed it)
    tokens = [str(int(t)) if t.isascii() and t.isdigit() else t
              for t in gt.replace("|", "/").split("/")]
    if all(t == "." for t in tokens):
        return Skip.NO_CALL.value, None
    if "." in tokens:
        return Skip.HALF_CALL.value, None
    if str(ai) not in tokens:
        if all(t == "0" for t in tokens):
            return Skip.HOM_REF.value, None
        return Skip.OTHER_ALLELE.value, None
    if len(tokens) == 1:
        return "carried", Zygosity.HEMI.value
    if len(tokens) == 2:
        both = tokens.count(str(ai)) == 2
        return "carried", (Zygosity.HOM if both else Zygosity.HET).value
    return "carried", Zygosity.UNKNOWN.value


def _genotypes(calls: PatientCalls) -> None:
    """Check every GT against its record, count alleles and calls, then build `gtmap` (one
    row per carrying GT code and ALT index) and the `carried` view. Counting works on the
    per-line GT counts, so its cost does not grow with the number of samples."""
    con, stats, text = calls.con, calls.stats, calls.code_text
    for skip, n in con.execute(
            f"SELECT skip, count(*) FROM {calls.allele} GROUP BY ALL").fetchall():
        stats.alleles += n
        if skip is not None:
            stats.skipped[skip] += n
    carrying: list[tuple[int, int, str]] = []
    max_ai = int(db.scalar(con, f"SELECT coalesce(max(ai), 1) FROM {calls.complex_allele}")
                 or 1)
    for ai, code, n in con.execute(f"""
            SELECT a.ai, c.code, sum(c.n)::BIGINT FROM {calls.allele} a
            JOIN {calls.gtcounts} c USING (rid) WHERE a.skip IS NULL GROUP BY ALL""").fetchall():
        _count_call(stats, text[code], ai, n)
    for (code,) in con.execute(f"SELECT DISTINCT code FROM {calls.gtcells}").fetchall():
        for ai in range(1, max_ai + 1):
            status, zygosity = genotype_status(text[code], ai)
            if status == "carried" and zygosity is not None:
                carrying.append((code, ai, zygosity))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {calls.gtmap} "
                "(code BIGINT, ai INTEGER, zygosity VARCHAR)")
    if carrying:
        con.executemany(f"INSERT INTO {calls.gtmap} VALUES (?, ?, ?)", carrying)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {calls.carried} AS {calls.carried_sql()}")


_GT_TOKEN = re.compile(r"[0-9]+|\.")


def gt_problem(gt: str, n_alt: int) -> str | None:
    """Why a GT string is not a genotype of a record with `n_alt` ALT alleles (VCF 4.3,
    1.6.2): alleles are '.' or indexes 0..n_alt, separated by '/' or '|'."""
    if not gt:
        return None  # no GT for this sample: counted as no_genotype
    for token in re.split(r"[/|]", gt):
        if not _GT_TOKEN.fullmatch(token):
            return f"GT {gt!r} holds {token!r}, which is not an allele index"
        if token != "." and int(token) > n_alt:
            return (f"GT {gt!r} names allele {token} but the record has "
                    f"{n_alt} ALT allele{'s' if n_alt != 1 else ''}")
    return None


def _refuse_malformed(calls: PatientCalls) -> None:
    """Refuse a file with a malformed record (POS, CHROM, REF, ALT) or genotype, naming the
    first line with one. Every GT must be a genotype of its record, whatever becomes of the
    record's alleles."""
    header = calls.header
    found: list[tuple[int, str]] = []
    row = db.first_row(calls.con, f"""
        SELECT rid, chrom, pos, ref, alt FROM {calls.rec}
        WHERE pos IS NULL OR pos < 1 OR chrom IS NULL OR ref IS NULL OR alt IS NULL
        ORDER BY rid LIMIT 1""")
    if row:
        pos = raw_field(header.text_path, header.n_lines + int(row[0]) + 1, 1)
        found.append((int(row[0]), f"malformed record (CHROM={row[1]!r} POS={pos!r} "
                                    f"REF={row[3]!r} ALT={row[4]!r})"))
    bad_gt = _first_bad_genotype(calls)
    if bad_gt:
        found.append(bad_gt)
    if found:
        rid, message = min(found)
        raise InputError(message, header.path, header.n_lines + rid + 1)


def _first_bad_genotype(calls: PatientCalls) -> tuple[int, str] | None:
    """(rid, message) of the first GT that is not a genotype of its record. Every GT that can
    be malformed names an allele other than 0 or is not a plain form, so it is among the
    scan's cells."""
    bad = {(code, n_alt) for code, n_alt in calls.con.execute(
        f"SELECT DISTINCT c.code, r.n_alt FROM {calls.gtcounts} c "
        f"JOIN {calls.rec_table} r USING (rid) WHERE r.n_alt IS NOT NULL").fetchall()
        if gt_problem(calls.code_text[code], n_alt)}
    if not bad:
        return None
    pairs = ", ".join(f"({code}, {n_alt})" for code, n_alt in sorted(bad))
    row = db.first_row(calls.con, f"""
        SELECT x.rid, x.k, x.code, r.n_alt FROM {calls.gtcells} x
        JOIN {calls.rec_table} r USING (rid)
        WHERE (x.code, r.n_alt) IN ({pairs}) ORDER BY x.rid, x.k LIMIT 1""")
    assert row is not None, "a malformed GT outside the scan's cells"
    rid, k, code, n_alt = (int(v) for v in row)
    sample = calls.header.samples[calls.sample_idx[k]]
    return rid, f"sample {sample}: {gt_problem(calls.code_text[code], n_alt)}"


def _count_call(stats: ReadStats, gt: str, ai: int, n: int) -> None:
    status, _ = genotype_status(gt, ai)
    stats.calls += n
    if status == "carried":
        stats.carried += n
    else:
        stats.skipped[status] += n


def _carried_sql(calls: PatientCalls, alleles: str, payload: Sequence[str]) -> str:
    extra = "".join(f", c.{p}" for p in payload)
    if not calls.sample_idx:  # sites-only use (no sample selected in this file): no calls
        return (f"SELECT NULL::VARCHAR AS sample, c.rid, c.ai, c.chrom, c.key_chrom, c.pos, "
                f"c.ref, c.alt, c.filter, NULL::VARCHAR AS zygosity{extra} FROM {alleles} c "
                "WHERE false")
    names = ", ".join(f"({k}, {db.quote(calls.header.samples[i])})"
                      for k, i in enumerate(calls.sample_idx))
    return (f"SELECT n.sample, c.rid, c.ai, c.chrom, c.key_chrom, c.pos, c.ref, c.alt, "
            f"c.filter, g.zygosity{extra} FROM {alleles} c "
            f"JOIN {calls.gtcells} x ON x.rid = c.rid "
            f"JOIN {calls.gtmap} g ON g.code = x.code AND g.ai = c.ai "
            f"JOIN (VALUES {names}) n(k, sample) ON n.k = x.k WHERE c.skip IS NULL")


def check_samples_exist(headers: list[VcfHeader], wanted: list[str] | None) -> None:
    if not wanted:
        return
    present = {s for h in headers for s in h.samples}
    missing = [s for s in wanted if s not in present]
    if missing:
        raise UsageError(f"--sample {', '.join(missing)}: not in any input VCF (samples: "
                         f"{', '.join(sorted(present)) or 'none'})")
