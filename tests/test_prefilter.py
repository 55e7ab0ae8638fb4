"""The numpy prefilter (varreinterp.prefilter) may change how fast a patient VCF is read, never
what is read: for any file and any sites, `patient_vcf.load` with `sites` gives the same ReadStats
as without, and `carried_at` against the keys at those sites gives the same rows (rid included).

Each comparison also checks which path ran: the prefiltered read really replaced the full one
(`rec` holds only the kept lines) where the fast path applies, and `prefilter()` returned None
where it does not, so an equivalence can never hold only because nothing was prefiltered.

Every test runs twice: with the compiled line scanner (_vcfscan.c) and with the numpy one it
stands in for where no C compiler built the extension."""

from __future__ import annotations

import dataclasses
import gzip
import random
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import pysam
import pytest
from conftest import shared
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from varreinterp import bgzf, patient_vcf, prefilter
from varreinterp.assembly import normalize_contig
from varreinterp.db import connect as duckdb_connect
from varreinterp.errors import InputError
from varreinterp.matching import carried_at

COLUMNS = ["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]
SAMPLES = ["S1", "S2", "S3"]


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def line_scanner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "numpy":
        monkeypatch.setattr(prefilter, "_vcfscan", None)
    elif prefilter._vcfscan is None:
        pytest.skip("the compiled scanner was not built (no C compiler): numpy runs alone")
    return str(request.param)


# ------------------------------------------------------------------------------ writing VCFs


@dataclass(frozen=True)
class Rec:
    chrom: str
    pos: int
    ref: str
    alt: str
    filter: str = "."
    format: str = "GT"
    gts: tuple[str, ...] = ("0/1", "1/1", "0/0")
    dropped: bool = False  # dropped by the prefilter with all 3 samples, no FASTA, no --pass-only

    def line(self, n_samples: int = 3) -> str:
        fields = [self.chrom, str(self.pos), ".", self.ref, self.alt, ".", self.filter, ".",
                  self.format, *self.gts[:n_samples]]
        return "\t".join(fields) + "\n"


def header_text(samples: Sequence[str]) -> str:
    return "##fileformat=VCFv4.2\n#" + "\t".join(COLUMNS + list(samples)) + "\n"


def vcf_text(records: Sequence[Rec], n_samples: int = 3) -> str:
    return header_text(SAMPLES[:n_samples]) + "".join(r.line(n_samples) for r in records)


def write(stem: Path, text: str, packing: str = "plain") -> Path:
    """`text` as stem.vcf, or stem.vcf.gz in bgzip (htslib) or plain gzip. Lone surrogates in
    `text` stand for bytes that are not UTF-8."""
    data = text.encode("utf-8", "surrogateescape")
    plain = stem.with_name(stem.name + ".vcf")
    plain.write_bytes(data)
    if packing == "plain":
        return plain
    packed = stem.with_name(stem.name + ".vcf.gz")
    if packing == "bgzf":
        pysam.tabix_compress(str(plain), str(packed), force=True)
    else:
        packed.write_bytes(gzip.compress(data))
    return packed


def write_small_blocks(stem: Path, text: str, first: int, size: int) -> Path:
    """stem.vcf.gz in BGZF whose first block holds `first` bytes of text and every other block
    `size` (then the empty end-of-file block), so that lines straddle blocks."""
    data = text.encode("utf-8", "surrogateescape")
    cuts = [0, *range(first, len(data), size), len(data)]
    out = []
    for piece in [data[a:b] for a, b in zip(cuts, cuts[1:], strict=False)] + [b""]:
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
        deflated = packer.compress(piece) + packer.flush()
        # gzip member with the BGZF extra field "BC" holding the member size minus one
        out.append(struct.pack("<4BI2BH2BHH", 31, 139, 8, 4, 0, 0, 255, 6, 66, 67, 2,
                               len(deflated) + 25)
                   + deflated + struct.pack("<II", zlib.crc32(piece), len(piece)))
    path = stem.with_name(stem.name + ".vcf.gz")
    path.write_bytes(b"".join(out))
    assert gzip.decompress(path.read_bytes()) == data
    assert len(bgzf.blocks(path.read_bytes())) == len(cuts)
    return path


def write_fasta(path: Path, contigs: dict[str, str]) -> Path:
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in contigs.items()))
    return path


# ------------------------------------------------------------------------------ comparing


def relation(rows: Sequence[tuple], columns: str, placeholder: tuple) -> str:
    """A VALUES relation (an empty one typed by `placeholder`)."""
    def literal(v: object) -> str:
        return "'" + v.replace("'", "''") + "'" if isinstance(v, str) else str(v)

    values = ", ".join("(" + ", ".join(literal(v) for v in row) + ")"
                       for row in (rows or [placeholder]))
    return f"(SELECT * FROM (VALUES {values}) t({columns}){'' if rows else ' WHERE false'})"


def sites_relation(sites: Sequence[tuple[str, int]]) -> str:
    return relation(sorted(set(sites)), "chrom, pos", ("", 0))


def keys_relation(keys: Sequence[tuple[str, int, str, str]]) -> str:
    return relation(keys, "chrom, pos, ref, alt", ("", 0, "", ""))


@contextmanager
def spying() -> Iterator[list[prefilter.Prefiltered | None]]:
    """What every `prefilter()` call made by `load` returned."""
    seen: list[prefilter.Prefiltered | None] = []

    def spy(*args, **kwargs):
        seen.append(prefilter.prefilter(*args, **kwargs))
        return seen[-1]

    with mock.patch.object(patient_vcf, "prefilter", spy):
        yield seen


@dataclass
class Read:
    outcome: dict | tuple  # ReadStats.to_json(), or (message, line) of the InputError raised
    keys_sql: str = ""  # every allele at a site (as the full read normalized it)
    rows: list[tuple] = field(default_factory=list)  # carried_at() at those keys
    rec_rows: int = 0
    pre: prefilter.Prefiltered | None = None


HIT_COLUMNS = "sample, chrom, pos, ref, alt, zygosity, filter, rid, ai"


def read(path: Path, sample_idx: list[int], pass_only: bool,
         reference: patient_vcf.FastaReference | None, workdir: Path, sites_sql: str,
         keys_sql: str | None = None) -> Read:
    """The full load() and the keys at the sites, or, given those keys, load() with sites;
    then carried_at() at the keys."""
    header = patient_vcf.read_header(path, workdir)
    con = duckdb_connect()
    sites = prefilter.load_sites(con, sites_sql) if keys_sql is not None else None
    with spying() as seen:
        try:
            calls = patient_vcf.load(con, header, sample_idx, reference, pass_only, sites)
            stats = calls.stats
        except InputError as exc:
            return Read((exc.message, exc.line), pre=seen[0] if seen else None)
    assert len(seen) == (sites is not None)
    if keys_sql is None:
        keys = con.execute(f"""
            SELECT DISTINCT a.key_chrom, a.pos, a.ref, a.alt FROM {calls.allele} a
            SEMI JOIN {sites_sql} s ON s.chrom = a.key_chrom AND s.pos = a.pos""").fetchall()
        keys_sql = keys_relation(keys)
    rows: list[tuple] = []
    if sample_idx:  # (carried_at() cannot be asked for no sample)
        carried_at(calls, keys_sql, "hits")
        rows = sorted(con.execute(f"SELECT {HIT_COLUMNS} FROM hits").fetchall(), key=repr)
    rec_rows = con.execute(f"SELECT count(*) FROM {calls.rec}").fetchall()[0][0]
    return Read(stats.to_json(), keys_sql, rows, rec_rows, seen[0] if seen else None)


def assert_equivalent(path: Path, sites: Sequence[tuple[str, int]],
                      sample_idx: list[int] | None = None, pass_only: bool = False,
                      reference: patient_vcf.FastaReference | None = None,
                      fast: bool = True) -> tuple[Read, Read]:
    """The invariant, plus which path ran (`fast`: the prefiltered read, else the full one)."""
    with tempfile.TemporaryDirectory(prefix="vri-prefilter-") as tmp:
        workdir = Path(tmp)
        if sample_idx is None:
            sample_idx = list(range(len(patient_vcf.read_header(path, workdir).samples)))
        sites_sql = sites_relation(sites)
        full = read(path, sample_idx, pass_only, reference, workdir, sites_sql)
        quick = read(path, sample_idx, pass_only, reference, workdir, sites_sql,
                     full.keys_sql or keys_relation([]))
    assert quick.outcome == full.outcome
    assert quick.rows == full.rows
    if not fast:
        assert quick.pre is None, "the fast path should not apply to this input"
    elif isinstance(quick.outcome, dict):
        assert quick.pre is not None, "the fast path did not apply"
        assert quick.rec_rows == quick.pre.records - quick.pre.dropped, "the full read ran"
    return full, quick


def kept_rids(read: Read) -> set[int]:
    assert read.pre is not None
    return set(read.pre.rids.tolist())


# ------------------------------------------------------------------------------ edge cases

# Sites in key form. Records are listed in file order (unsorted on purpose: contigs come back).
SITES = [("1", 3), ("1", 10), ("1", 22), ("1", 31), ("1", 40), ("1", 70), ("1", 123456789),
         ("MT", 150), ("Un_KI270743v1", 1000), ("X", 99), ("2", 11), ("1", 999)]
EDGE = [
    Rec("chr1", 1, "A", "C", "PASS", "GT:DP", ("0/1:5", "1|1:3", "0/0:9"), dropped=True),
    Rec("chr1", 5, "a", "g", ".", "GT", ("0/1", "./.", "1"), dropped=True),
    Rec("chr1", 7, "A", "T", "LowQual", "GT:DP", ("1/1", "0/1", "."), dropped=True),
    Rec("chr1", 9, "A", "C", gts=("0/1/1", "0/1", "0")),  # a 5-character GT: read in full
    Rec("chr1", 10, "C", "G", "PASS", gts=("./1", "0", "1/.")),  # at a site
    Rec("chr1", 12, "N", "A", "PASS", gts=("0/1", "0/1", "0|1"), dropped=True),
    Rec("chr1", 13, "A", "n", dropped=True),
    Rec("chr1", 14, "a", "a", gts=("1|0", "0|0", "1"), dropped=True),
    Rec("chr1", 20, "A", "AT", "PASS", dropped=True),  # nothing to trim: stays where it is
    Rec("chr1", 22, "A", "AT", "PASS"),  # at a site
    Rec("chr1", 30, "ACT", "AGT", "PASS", gts=("0/1", "0/1", "1/1")),  # trimmed to 31 C>G, a site
    Rec("chr1", 40, "CTT", "CT", "PASS", gts=("1/1", "0/1", "0/0")),
    Rec("chr1", 45, "CTT", "CT", "LowQual"),
    Rec("chr1", 46, "cTa", "Ct", "LowQual"),  # lowercase, same first base
    Rec("chr1", 50, "AC", "GT", "PASS", "GT:DP", ("0/1:1", "1/1:2", "0/0:3"), dropped=True),
    Rec("chr1", 52, "ac", "gT", dropped=True),
    Rec("chr1", 53, "ACGTACGT", "TTTTTTTA", dropped=True),  # the longest allele the scan reads
    Rec("chr1", 54, "ACGTACGTA", "TTTTTTTTT"),  # longer: read in full
    Rec("chr1", 60, "A", "G,T", "PASS", gts=("1/2", "0/2", "2")),
    Rec("chr1", 70, "A", "C,G,T,AC,AG,AT,CA,CC,CG,CT,GA", "PASS", gts=("10/11", "0/11", "11|3")),
    Rec("chr1", 71, "A", "C", gts=("1/0", "0|0", "."), dropped=True),
    Rec("chr1", 80, "A", "<DEL>", "PASS"),
    Rec("chr1", 81, "A", "<NON_REF>", gts=("0/0", "0/0", "./.")),
    Rec("chr1", 82, "A", "C,<NON_REF>"),
    Rec("chr1", 83, "A", "*"),
    Rec("chr1", 84, "A", ".", gts=("0/0", "./.", "0")),
    Rec("chr1", 85, "A", "C", format="DP:GT", gts=("5:0/1", "3:1/1", "2:0/0")),
    Rec("chr1", 86, "A", "C", gts=("0/1/1", "0/1", "1")),  # a triploid call
    Rec("chr1", 123456789, "G", "A", "PASS"),  # at a site
    Rec("chr1", 123456790, "G", "A", "PASS", dropped=True),
    Rec("chr1", 2000000000, "T", "C", "LowQual", dropped=True),
    Rec("1", 100, "A", "C", dropped=True),
    Rec("1", 999, "A", "C", "PASS"),  # a site, written without 'chr'
    Rec("chrM", 150, "A", "G", "PASS"),  # MT:150 is a site
    Rec("MT", 151, "A", "G", "PASS", dropped=True),
    Rec("chrUn_KI270742v1", 1000, "C", "T", dropped=True),
    Rec("chrUn_KI270743v1", 1000, "C", "T"),  # same length, differs in byte 14: a site
    Rec("chrUn_KI270742v1", 1000, "C", "T", dropped=True),
    Rec("chrX", 99, "G", "C", "PASS", gts=("1", "1", "0")),  # at a site
    Rec("chrX", 100, "G", "C", "PASS", gts=("1", "0", "."), dropped=True),
    Rec("chr1", 3, "T", "G"),  # chr1 again, at a site
    Rec("chr1", 4, "T", "G", dropped=True),
    # chr2 has a FASTA (CHR2): with it, these two indels left-align onto the site 2:11
    Rec("chr2", 19, "A", "AA", "PASS", dropped=True),
    Rec("chr2", 18, "AA", "A", "PASS", gts=("1/1", "0/1", "0/0"), dropped=True),
    Rec("chr2", 25, "CA", "GT", "PASS", dropped=True),  # same length: never moves
    Rec("chr2", 4, "T", "TT", dropped=True),  # REF disagrees with the FASTA
    Rec("chr2", 30, "T", "C", "LowQual", dropped=True),
]
CHR2 = "CGTACGTACG" + "T" + "A" * 8 + "GCATGCATGC" * 3  # 2:12-19 is a run of A
AT_SITES = {i for i, r in enumerate(EDGE) if (normalize_contig(r.chrom), r.pos) in SITES}
DROPPED = {i for i, r in enumerate(EDGE) if r.dropped}


def edge_file(tmp: Path, n_samples: int = 3, packing: str = "plain") -> Path:
    return write(tmp / f"edge_{n_samples}", vcf_text(EDGE, n_samples), packing)


@pytest.fixture(scope="module")
def fasta(tmp_path_factory: pytest.TempPathFactory) -> patient_vcf.FastaReference:
    work = tmp_path_factory.mktemp("fasta")
    return patient_vcf.FastaReference(write_fasta(work / "ref.fa", {"chr2": CHR2}), work)


SELECTIONS = {3: [[0, 1, 2], [0, 2], []], 1: [[0]]}


@pytest.mark.parametrize("packing", ["plain", "bgzf"])
@pytest.mark.parametrize("n_samples", [3, 1])
@pytest.mark.parametrize("pass_only", [False, True])
@pytest.mark.parametrize("with_fasta", [False, True])
def test_edge_cases(tmp_path, fasta, packing, n_samples, pass_only, with_fasta) -> None:
    path = edge_file(tmp_path, n_samples, packing)
    reference = fasta if with_fasta else None
    for sample_idx in SELECTIONS[n_samples]:
        full, quick = assert_equivalent(path, SITES, sample_idx, pass_only, reference)
        assert bool(full.rows) == bool(sample_idx)
        kept = kept_rids(quick)
        assert kept >= AT_SITES and len(kept) < len(EDGE)
        if reference is not None:  # an indel may left-align onto a site: never dropped
            assert kept >= {i for i, r in enumerate(EDGE) if len(r.ref) != len(r.alt)}
        elif sample_idx == [0, 1, 2]:
            assert kept == set(range(len(EDGE))) - DROPPED
            low_qual = sum(EDGE[i].filter == "LowQual" for i in DROPPED)
            assert quick.pre is not None and quick.pre.filtered == (low_qual if pass_only else 0)


def test_left_aligned_indels_are_matched_at_their_site(tmp_path, fasta) -> None:
    """The chr2 indels only reach the site 2:11 through the FASTA: the keys must hold them."""
    full, _ = assert_equivalent(edge_file(tmp_path), SITES, reference=fasta)
    assert {(r[2], r[3], r[4]) for r in full.rows if r[1] == "chr2"} == {
        (11, "T", "TA"), (11, "TA", "T")}
    assert isinstance(full.outcome, dict) and full.outcome["skipped"]["ref_mismatch"] == 1


@pytest.mark.parametrize("packing", ["plain", "bgzf"])
def test_header_only_and_no_final_newline(tmp_path, packing) -> None:
    assert_equivalent(write(tmp_path / "empty", header_text(SAMPLES), packing), SITES)
    if packing == "plain":  # refused before either path reads it: it may be cut
        return
    cut = write(tmp_path / "cut", vcf_text(EDGE).removesuffix("\n"), packing)
    _, quick = assert_equivalent(cut, SITES)
    assert kept_rids(quick) == set(range(len(EDGE))) - DROPPED  # the unfinished line included


# ------------------------------------------------------------------------------ chunks


def min_chunk(text: str) -> int:
    """The smallest chunk that holds the header and, wherever it starts, a line end."""
    return max(len(line) for line in [header_text(SAMPLES), *text.splitlines(True)])


@pytest.mark.parametrize("extra", [0, 1, 5, 13, 40, 61])
def test_plain_text_cut_into_small_chunks(tmp_path, monkeypatch, extra) -> None:
    text = vcf_text(EDGE)
    monkeypatch.setattr(prefilter, "_CHUNK_BYTES", min_chunk(text) + extra)
    assert len(text) > 12 * prefilter._CHUNK_BYTES
    _, quick = assert_equivalent(write(tmp_path / "edge", text), SITES)
    assert kept_rids(quick) == set(range(len(EDGE))) - DROPPED


@pytest.mark.parametrize(("blocks_per_chunk", "extra"), [(1, 0), (1, 3), (1, 31), (2, 0), (3, 7)])
def test_bgzf_with_small_blocks(tmp_path, monkeypatch, blocks_per_chunk, extra) -> None:
    text = vcf_text(EDGE)
    path = write_small_blocks(tmp_path / "edge", text, len(header_text(SAMPLES)) + 5,
                              min_chunk(text) + extra)
    monkeypatch.setattr(prefilter, "_CHUNK_BLOCKS", blocks_per_chunk)
    _, quick = assert_equivalent(path, SITES)
    assert kept_rids(quick) == set(range(len(EDGE))) - DROPPED


def test_chunks_too_small_fall_back(tmp_path, monkeypatch) -> None:
    """A chunk inside one line, or a header longer than the first chunk."""
    text = vcf_text(EDGE)
    long_line = vcf_text([*EDGE[:9], dataclasses.replace(EDGE[9], format="GT:" + "X" * 300),
                          *EDGE[10:]])
    monkeypatch.setattr(prefilter, "_CHUNK_BYTES", min_chunk(text))
    assert_equivalent(write(tmp_path / "long", long_line), SITES, fast=False)
    monkeypatch.setattr(prefilter, "_CHUNK_BYTES", len(header_text(SAMPLES)) - 1)
    assert_equivalent(write(tmp_path / "edge", text), SITES, fast=False)
    monkeypatch.setattr(prefilter, "_CHUNK_BLOCKS", 1)
    assert_equivalent(write_small_blocks(tmp_path / "blocks", text, 20, min_chunk(text)), SITES,
                      fast=False)


def test_many_bgzip_blocks(tmp_path, monkeypatch) -> None:
    """Thousands of lines in htslib's 64 KiB blocks, one block per chunk."""
    rng = random.Random(5)
    contigs = ["chr1", "chr2", "chrX", "chrUn_KI270742v1"]
    records = []
    for i in range(8000):
        ref, alt = rng.choice([("A", "G"), ("c", "t"), ("A", "AT"), ("CTT", "CT"), ("A", "G,T"),
                               ("G", "<DEL>"), ("AC", "GT"), ("N", "A")])
        fmt = rng.choice(["GT", "GT:DP"])
        gts = tuple(rng.choice(["0/1", "1|1", "0/0", "./.", "1", "./1"])
                    + (":7" if fmt == "GT:DP" else "") for _ in SAMPLES)
        records.append(Rec(contigs[i // 2000], 1000 + 3 * i, ref, alt,
                           rng.choice(["PASS", ".", "LowQual"]), fmt, gts))
    path = write(tmp_path / "many", vcf_text(records), "bgzf")
    assert len(bgzf.blocks(path.read_bytes())) >= 6
    monkeypatch.setattr(prefilter, "_CHUNK_BLOCKS", 1)
    sites = [(normalize_contig(r.chrom), r.pos) for r in records[::3]]
    for pass_only in (False, True):
        _, quick = assert_equivalent(path, sites, pass_only=pass_only)
        assert quick.pre is not None and quick.pre.dropped > 1000


# ------------------------------------------------------------------------------ fallbacks


def edit_line(k: int, edit: Callable[[str], str]) -> Callable[[str], str]:
    """A change to data line k of a VCF text."""
    def apply(text: str) -> str:
        lines = text.split("\n")
        at = k + sum(line.startswith("#") for line in lines)
        lines[at] = edit(lines[at])
        return "\n".join(lines)

    return apply


def set_field(k: int, column: int, value: str) -> Callable[[str], str]:
    def edit(line: str) -> str:
        fields = line.split("\t")
        fields[column] = value
        return "\t".join(fields)

    return edit_line(k, edit)


def after_filler(line: str) -> Callable[[str], str]:
    """`line` appended past the text read_header decodes with the header (which would refuse a
    file that is not UTF-8 before any record is read)."""
    return lambda text: text + "".join(r.line() for r in EDGE * 8) + line


FALLBACKS: dict[str, Callable[[str], str]] = {
    "crlf": lambda text: text.replace("\n", "\r\n"),
    "blank_line": edit_line(3, lambda line: line + "\n"),
    "blank_line_at_end": lambda text: text + "\n",
    "missing_column": edit_line(5, lambda line: line.rsplit("\t", 1)[0]),
    "extra_column": edit_line(5, lambda line: line + "\t0/1"),
    "non_numeric_pos": set_field(4, 1, "12a"),
    "pos_zero": set_field(1, 1, "0"),
    "pos_17_digits": set_field(1, 1, "1" + "0" * 16),
    "long_contig": set_field(7, 0, "chr" + "9" * 300),
    "non_utf8_contig": after_filler(EDGE[0].line().replace("chr1", "chr\udce9")),
    # Bytes that are not UTF-8 anywhere, even in a field the scan does not read of a line it
    # would drop: the full read refuses the file, so the scan must not accept it.
    "non_utf8_gt": after_filler(
        dataclasses.replace(EDGE[0], gts=("\udce9/1", "\udce9", "0/1")).line()),
    "non_utf8_filter_of_a_droppable_line": after_filler(
        dataclasses.replace(EDGE[0], filter="Low\udce9").line()),
    "non_utf8_sample_field_of_a_droppable_line": after_filler(
        dataclasses.replace(EDGE[0], gts=("0/1:\udce9", "1|1:3", "0/0:9")).line()),
}


@pytest.mark.parametrize("case", sorted(FALLBACKS))
@pytest.mark.parametrize("packing", ["plain", "bgzf", "gzip"])
def test_unsuitable_input_is_read_the_ordinary_way(tmp_path, case, packing) -> None:
    path = write(tmp_path / "odd", FALLBACKS[case](vcf_text(EDGE)), packing)
    assert_equivalent(path, SITES, fast=False)


@pytest.mark.parametrize("pass_only", [False, True])
def test_plain_gzip_is_read_the_ordinary_way(tmp_path, pass_only) -> None:
    full, _ = assert_equivalent(write(tmp_path / "edge", vcf_text(EDGE), "gzip"), SITES,
                                pass_only=pass_only, fast=False)
    assert isinstance(full.outcome, dict) and full.outcome["records"] == len(EDGE)


# Bad records the scan keeps (it never drops what it cannot read): the error is the full read's.
KEPT_BAD = {
    "empty_ref": set_field(20, 3, ""),
    "empty_alt": set_field(20, 4, ""),
}


@pytest.mark.parametrize("case", sorted(KEPT_BAD))
def test_bad_record_kept_by_the_scan_fails_like_a_full_read(tmp_path, case) -> None:
    full, quick = assert_equivalent(write(tmp_path / "bad", KEPT_BAD[case](vcf_text(EDGE))), SITES)
    assert quick.pre is not None and isinstance(full.outcome, tuple)
    assert full.outcome[1] == 2 + 20 + 1  # the header's 2 lines, then data line 20


# ------------------------------------------------------------------------------ known gaps
# Inputs outside the VCF specification that once split the two paths.


def test_empty_filter_field_with_pass_only(tmp_path) -> None:
    """An empty FILTER is missing, like '.': it passes --pass-only on both paths."""
    text = header_text(["S1"]) + "1\t100\t.\tA\tC\t.\t\t.\tGT\t0/1\n"
    full, _ = assert_equivalent(write(tmp_path / "f", text), [("1", 999)], pass_only=True)
    assert full.outcome["carried"] == 1 and not full.outcome["skipped"]


def test_lone_cr_in_a_header_line(tmp_path) -> None:
    """Readers disagree on whether a lone CR ends a line: such a header is refused, naming the
    line, rather than read with a shifted body (which once lost every record silently)."""
    text = header_text(["S1"]).replace("\n", "\n##comment=a\r##b\n", 1)
    text += "1\t100\t.\tA\tC\t.\t.\t.\tGT\t0/1\n1\t999\t.\tA\tC\t.\t.\t.\tGT\t0/1\n"
    path = write(tmp_path / "cr", text)
    with pytest.raises(InputError, match="carriage return") as err:
        patient_vcf.read_header(path, tmp_path)
    assert err.value.line == 2


def test_pos_beyond_2_to_the_40(tmp_path) -> None:
    """VCF POS is 32-bit: a larger one is left to the full reader, whose result the prefilter
    must not change (site keys are contig << 40 | pos)."""
    for big in ((127 << 40) + 5, 2**31):
        text = header_text(["S1"]) + "".join(f"{c}\t{big}\t.\tA\tC\t.\t.\t.\tGT\t0/1\n"
                                             for c in ("1", "2"))
        assert_equivalent(write(tmp_path / "big", text), [("1", big), ("2", big)], fast=False)


# ------------------------------------------------------------------------------ properties

PROP_CONTIGS = ["chr1", "1", "chr2", "chrM", "MT", "chrX", "chrUn_KI270742v1",
                "chrUn_KI270743v1"]
PROP_REFS = ["A", "c", "G", "T", "N", "AT", "ACT", "CTT", "ac", "TA", "AA", "ACGTACGTA"]
PROP_ALTS = ["C", "g", "T", "A", "N", "AT", "AA", "AGT", "CT", "GC", "gt", "A,G", "C,G,T",
             "<DEL>", "<NON_REF>", "C,<NON_REF>", "*", ".", "TTTTTTTTT"]
PROP_GTS = ["0/1", "1|1", "0/0", "./.", "./1", "1/.", "1", "0", ".", "1/2", "0|1", "2", "10",
            "0/1/1"]
PROP_SETTINGS = settings(max_examples=60, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                HealthCheck.too_slow])


def with_format(rec: Rec) -> Rec:
    """GT alone, or with a DP after or before it."""
    extra = {"GT": "{}", "GT:DP": "{}:4", "DP:GT": "4:{}"}[rec.format]
    return dataclasses.replace(rec, gts=tuple(extra.format(g) for g in rec.gts))


records_strategy = st.lists(st.builds(
    Rec, chrom=st.sampled_from(PROP_CONTIGS),
    pos=st.one_of(st.integers(1, 40), st.sampled_from([123456789, 2000000000])),
    ref=st.sampled_from(PROP_REFS), alt=st.sampled_from(PROP_ALTS),
    filter=st.sampled_from(["PASS", ".", "LowQual"]),
    format=st.sampled_from(["GT", "GT:DP", "DP:GT"]),
    gts=st.tuples(*[st.sampled_from(PROP_GTS)] * 3)).map(with_format), max_size=25)


@PROP_SETTINGS
@given(records=records_strategy, n_samples=st.integers(1, 3), data=st.data(),
       packing=st.sampled_from(["plain", "bgzf", "small_blocks"]), pass_only=st.booleans(),
       with_fasta=st.booleans(), extra=st.integers(0, 80))
def test_prefilter_changes_nothing(fasta, records, n_samples, data, packing, pass_only,
                                   with_fasta, extra) -> None:
    """Random files, sites, samples and chunk sizes (never so small that the fast path
    cannot apply: every chunk holds a line end)."""
    universe = sorted({(normalize_contig(c), p) for c in PROP_CONTIGS for p in range(1, 41)})
    sites = data.draw(st.lists(st.sampled_from(universe), max_size=40), label="sites")
    sites += [(normalize_contig(r.chrom), r.pos) for r in records
              if data.draw(st.booleans(), label="record at a site")]
    sample_idx = sorted(data.draw(st.sets(st.integers(0, n_samples - 1)), label="samples"))
    text = vcf_text(records, n_samples)
    header = len(header_text(SAMPLES[:n_samples]))
    chunk = max([header, *(len(r.line(n_samples)) for r in records)]) + extra
    with tempfile.TemporaryDirectory(prefix="vri-prefilter-") as tmp, \
            mock.patch.object(prefilter, "_CHUNK_BYTES", chunk), \
            mock.patch.object(prefilter, "_CHUNK_BLOCKS", 1 + extra % 3):
        if packing == "small_blocks":
            path = write_small_blocks(Path(tmp) / "p", text, header + extra % 7, chunk)
        else:
            path = write(Path(tmp) / "p", text, packing)
        assert_equivalent(path, sites, sample_idx, pass_only, fasta if with_fasta else None)


# ------------------------------------------------------------------------------ real files

P37 = "patients/GRCh37"
REAL = {
    "1kg_exome": f"{P37}/1kg_exome.16_samples.vcf",
    "giab_chr20": f"{P37}/NA12878.giab.chr20_10.0-10.1Mb.vcf.gz",
    "gvcf": f"{P37}/NA12878.platinum.gvcf.chrM_chr1start.vcf.gz",
    "hg004": "patients/GRCh38/HG004.giab.chr1_0.6-1.3Mb.vcf.gz",
    "hg006": "patients/GRCh38/HG006.giab.chr1_0.6-1.3Mb.vcf.gz",
}
HG19_CHR20 = "reference/hg19.chr20.real_at_9.995-11.095Mb.fa.gz"
BCF = "patients/GRCh38/NA12878.platinum.chr21.bcf"


def body_sites(text: str, every: int = 3) -> list[tuple[str, int]]:
    """(key contig, POS) of every `every`-th data line."""
    rows = [line.split("\t", 2) for line in text.splitlines() if not line.startswith("#")]
    return [(normalize_contig(c), int(p)) for c, p, _ in rows[::every]]


def real_text(path: Path) -> str:
    raw = path.read_bytes()
    return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files(tmp_path, name) -> None:
    """Each file as shipped (plain gzip cannot be cut: the full read), then as plain text and as
    bgzip, where the prefilter runs."""
    original = shared(REAL[name])
    text = real_text(original)
    sites = body_sites(text)
    raw = original.read_bytes()
    assert_equivalent(original, sites, fast=raw[:2] != b"\x1f\x8b" or bgzf.is_bgzf(raw[:16]))
    for packing in ("plain", "bgzf"):
        path = write(tmp_path / name, text, packing)
        for pass_only in (False, True):
            _, quick = assert_equivalent(path, sites, pass_only=pass_only)
            assert quick.pre is not None and quick.pre.dropped > 0


def test_real_giab_with_its_fasta(tmp_path) -> None:
    vcf = shared(REAL["giab_chr20"])
    reference = patient_vcf.FastaReference(shared(HG19_CHR20), tmp_path)
    for pass_only in (False, True):
        _, quick = assert_equivalent(vcf, body_sites(real_text(vcf), every=2),
                                     pass_only=pass_only, reference=reference)
        assert quick.pre is not None and quick.pre.dropped > 0


def test_real_bcf(tmp_path) -> None:
    """htslib rewrites BCF as plain VCF text, which the prefilter then scans."""
    bcf = shared(BCF)
    text = patient_vcf.read_header(bcf, tmp_path).text_path.read_text()
    _, quick = assert_equivalent(bcf, body_sites(text, every=50))
    assert quick.pre is not None and quick.pre.records == 58447 and quick.pre.dropped > 50000


# ------------------------------------------------------------------------------ damage, size


def test_a_corrupt_block_is_an_input_error_not_a_crash(tmp_path) -> None:
    """The scan leaves damaged data to the full read, which names the file (exit 3 in the CLI)."""
    path = write(tmp_path / "big", vcf_text(EDGE * 400), "bgzf")
    raw = bytearray(path.read_bytes())
    start, _, _ = bgzf.blocks(bytes(raw))[1]
    raw[start + 18] |= 0x06  # deflate block type 11: reserved, invalid
    path.write_bytes(bytes(raw))
    full, _ = assert_equivalent(path, SITES, fast=False)
    assert isinstance(full.outcome, tuple) and "corrupt compressed data" in full.outcome[0]


def test_a_mostly_kept_file_is_read_the_ordinary_way(tmp_path, monkeypatch) -> None:
    """A gVCF of reference blocks keeps nearly every line: holding them all would cost memory
    for nothing, so past a few lines the scan gives up and the full read runs."""
    kept = [r for r in EDGE if not r.dropped]
    monkeypatch.setattr(prefilter, "_GIVE_UP_AFTER", len(kept) * 10)
    assert_equivalent(write(tmp_path / "kept", vcf_text(kept * 20)), SITES, fast=False)
    dropped = [r for r in EDGE if r.dropped]
    assert_equivalent(write(tmp_path / "dropped", vcf_text(dropped * 20)), SITES)


# ------------------------------------------------------------------------------ genotypes
@pytest.mark.parametrize("gt,why", [("0/2", "names allele 2 but the record has 1 ALT allele"),
                                    ("1/x", "'x', which is not an allele index"),
                                    ("10", "names allele 10"), ("1/-1", "not an allele index")])
@pytest.mark.parametrize("packing", ["plain", "bgzf"])
def test_a_malformed_genotype_is_refused_on_both_paths(tmp_path, gt, why, packing) -> None:
    """A one-ALT record whose GT names an allele it lacks (or no allele at all): the scan leaves
    it to the full reader, which refuses it naming the line and sample."""
    recs = [*EDGE[:3], Rec("chr1", 8, "A", "C", "PASS", gts=("0/1", gt, "0/0")), *EDGE[3:]]
    path = write(tmp_path / "gt", vcf_text(recs * 200), packing)
    full, quick = assert_equivalent(path, SITES)  # the same refusal with and without the scan
    assert isinstance(full.outcome, tuple)
    message, line = full.outcome
    assert why in message and message.startswith("sample S2:")
    assert line == vcf_text(recs).count("\n", 0, vcf_text(recs).index("chr1\t8\t")) + 1


# -------------------------------------------------------------- the two line scanners agree
# Per field: values the fast path takes, then odd ones (drawn one time in ten), so that most
# chunks are scanned to the end and the odd values still come up.
_FIELD = {
    "chrom": (["chr1", "chr2", "1", "X"], ["", "chr1 "]),
    "pos": (["1", "007", "123456789", "2147483647"], ["2147483648", "0", "12a", "", "+5"]),
    "allele": (["A", "c", "G", "T", "N", "n", "AC", "CT", "ACGTACGT", "AAC", "aN"],
               ["ACGTACGTA", "A,G", "<DEL>", "*", ".", "", "R"]),
    "filter": (["PASS", ".", "", "LowQual"], ["PASS;q10", "PAS"]),
    "format": (["GT", "GT:DP"], ["DP:GT", "G", "GTX", ""]),
    "gt": (["0/1", "1|1", "./.", "1", ".", "0", "0/1:5", "1:3", "0|0"],
           ["0/2", "1/x", ":", "", "10/1", "0/1/1", "0/", "|1"]),
}
_ODD = ["\r", "\0", "\x0b", "\xe9", "\t", "\n"]


@st.composite
def _scanned_line(draw: st.DrawFn, n_samples: int) -> str:
    def pick(name: str) -> str:
        common, odd = _FIELD[name]
        return draw(st.sampled_from(odd if draw(st.integers(0, 9)) == 0 else common))

    fields = [pick("chrom"), pick("pos"), ".", pick("allele"), pick("allele"), ".",
              pick("filter"), ".", pick("format"), *(pick("gt") for _ in range(n_samples))]
    if draw(st.integers(0, 19)) == 0:
        at = draw(st.integers(0, len(fields) - 1))
        fields[at] += draw(st.sampled_from(_ODD))
    return "\t".join(fields) + "\n"


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), n_samples=st.integers(1, 3), left_align=st.booleans(),
       pass_only=st.booleans())
def test_compiled_scanner_agrees_with_numpy(line_scanner, data, n_samples, left_align,
                                            pass_only) -> None:
    """Line by line: both unsuitable, or the same facts (positions, POS, usable, FILTER, GT
    codes, contig runs) for any mix of odd fields, bytes and column counts."""
    if line_scanner == "numpy":
        pytest.skip("the comparison runs once, beside the compiled scanner")
    lines = data.draw(st.lists(_scanned_line(n_samples), min_size=1, max_size=6))
    text = "".join(lines).encode("utf-8", "surrogateescape")
    selected = data.draw(st.lists(st.integers(0, n_samples - 1), min_size=0, max_size=n_samples,
                                  unique=True))
    sites = prefilter.Sites(np.zeros(0, np.int64), {})
    scan = prefilter._Scanner(8 + n_samples, selected, sites, pass_only, left_align)
    outcomes = []
    for method in (scan._compiled, scan._numpy):
        try:
            outcomes.append(method(text))
        except prefilter._Unsuitable:
            outcomes.append(None)
    compiled, numpy_facts = outcomes
    assert (compiled is None) == (numpy_facts is None), text
    if compiled is None or numpy_facts is None:
        return
    for name in ("starts", "ends", "pos", "usable", "codes", "runs"):
        assert np.array_equal(getattr(compiled, name), getattr(numpy_facts, name)), (name, text)
    if pass_only:
        assert np.array_equal(compiled.filter_ok, numpy_facts.filter_ok), text
    assert compiled.n == numpy_facts.n


def test_thousands_of_selected_samples(line_scanner) -> None:
    """No limit on the samples a scan reads (a biobank joint call has tens of thousands)."""
    n = 6000
    line = "\t".join(["chr1", "100", ".", "A", "G", ".", "PASS", ".", "GT",
                      *(["0/1", "1|1", "./."] * n)[:n]]) + "\n"
    sites = prefilter.Sites(np.zeros(0, np.int64), {})
    scan = prefilter._Scanner(8 + n, list(range(n)), sites, False, False)
    segment = scan((line * 3).encode())
    assert (segment.lines, segment.dropped) == (3, 3)
    counts = dict(zip(*(a.tolist() for a in segment.gt_codes), strict=True))
    assert sorted(counts.values()) == [3 * 2000] * 3  # the three GTs, 2,000 samples x 3 lines
