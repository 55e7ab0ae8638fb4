"""Hypothesis fuzz of the patient reader through `annotate -f json`.

Each example is a small VCF (1-3 samples; contigs among chr1, 1 and chrM, each declared with its
GRCh38 length; multi-allelic records, `*`, `<NON_REF>`, `.`; genotypes from a wide set that
includes malformed ones; GT anywhere in FORMAT; several FILTER values), sometimes damaged (cut
short, a byte changed, a CR or a byte-order mark inserted), written plain or bgzipped by htslib
(pysam.tabix_compress). A ClinVar-format snapshot is made from a subset of the example's own
alleles (tests/builders.write_clinvar), so that hits happen.

Whatever the file: exit 0 or 3, never 70, never a traceback, nothing left under STORE/tmp; a
refusal is one stderr line and no stdout. An undamaged file is accepted exactly when all its
genotypes are well formed (VCF 4.3, 1.6.2: each allele '.' or an index 0..n_alt, whatever the
record's ALT). On exit 0, the reported (sample, chrom, pos, ref, alt) must equal what htslib
(pysam.VariantFile) reads from the same file, split, trimmed and matched against the snapshot's
keys."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pysam
import pytest
from builders import hit_keys, json_rows, write_clinvar
from conftest import CliResult, invoke
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from oracle import bare, carried_calls, trim

CONTIG_LENGTHS = {"chr1": 248956422, "1": 248956422, "chrM": 16569}
SAMPLE_NAMES = ["S1", "S2", "S3"]
BASES = "ACGT"
MALFORMED_GT = ["1/x", "0/9", "1//1", "/1", "1/", "-1/1", "0|a", "1 /1", "1/1/", "x"]
FORMATS = ["GT", "GT:DP", "DP:GT", "GT:GQ:DP", "DP:GQ:GT", "GQ:GT:DP"]
FILTERS = ["PASS", ".", "LowQual", "q10;LowQual"]
HEADER = """##fileformat=VCFv4.2
##reference=GRCh38
{contigs}##FILTER=<ID=PASS,Description="All filters passed">
##FILTER=<ID=LowQual,Description="Low quality">
##FILTER=<ID=q10,Description="Quality below 10">
##ALT=<ID=NON_REF,Description="Any other allele">
##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{samples}
"""
SNAPSHOT = "fuzz"
Key = tuple[str, int, str, str]  # contig without chr (MT for chrM), pos, ref, alt
Hit = tuple[str, str, int, str, str]


@dataclass(frozen=True)
class Record:
    chrom: str
    pos: int
    ref: str
    alts: tuple[str, ...]
    filter: str
    info: str
    format: str
    gts: tuple[str, ...]

    def line(self) -> str:
        keys = self.format.split(":")
        samples = [":".join(gt if k == "GT" else "7" for k in keys) for gt in self.gts]
        return "\t".join([self.chrom, str(self.pos), ".", self.ref, ",".join(self.alts), "50",
                          self.filter, self.info, self.format, *samples])


@dataclass(frozen=True)
class Example:
    samples: tuple[str, ...]
    contigs: tuple[str, ...]
    records: tuple[Record, ...]
    snapshot_keys: frozenset[Key]
    damage: str  # "none", "cut", "byte", "cr", "bom"
    damage_at: int  # where, as a fraction of the file in 1/1000
    byte: int  # the replacement byte for "byte"
    bgzip: bool

    def text(self) -> bytes:
        head = HEADER.format(
            contigs="".join(f"##contig=<ID={c},length={CONTIG_LENGTHS[c]}>\n"
                            for c in self.contigs),
            samples="\t".join(self.samples))
        return (head + "".join(r.line() + "\n" for r in self.records)).encode()

    def damaged_text(self) -> bytes:
        data = self.text()
        at = len(data) * self.damage_at // 1000
        if self.damage == "cut":
            return data[:at]
        if self.damage == "byte":
            return data[:at] + bytes([self.byte]) + data[at + 1:]
        if self.damage == "cr":
            return data[:at] + b"\r" + data[at:]
        if self.damage == "bom":
            return b"\xef\xbb\xbf" + data
        return data

    def malformed_gt(self) -> bool:
        return any(gt in MALFORMED_GT for r in self.records for gt in r.gts)


# ------------------------------------------------------------------------------ strategies
bases = st.text(BASES, min_size=1, max_size=3)


@st.composite
def genotypes(draw: st.DrawFn, n_alt: int) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(MALFORMED_GT))
    ploidy = draw(st.sampled_from([1, 2, 2, 2, 3]))
    alleles = [draw(st.sampled_from([".", *map(str, range(n_alt + 1))])) for _ in range(ploidy)]
    return draw(st.sampled_from(["/", "|"])).join(alleles)


@st.composite
def records(draw: st.DrawFn, contigs: tuple[str, ...], n_samples: int) -> Record:
    chrom = draw(st.sampled_from(contigs))
    pos = draw(st.integers(1, 12)) + (100 if chrom == "chrM" else 1000)
    ref = draw(bases)
    kind = draw(st.sampled_from(["plain", "plain", "plain", "star", "non_ref", "dot"]))
    alts = draw(st.lists(bases.filter(lambda a: a != ref), min_size=1, max_size=3, unique=True))
    if kind == "star":
        alts.insert(draw(st.integers(0, len(alts))), "*")
    elif kind == "non_ref":
        alts.append("<NON_REF>")
    elif kind == "dot":
        alts = ["."]
    n_alt = 0 if alts == ["."] else len(alts)
    gts = tuple(draw(genotypes(n_alt)) for _ in range(n_samples))
    return Record(chrom, pos, ref, tuple(alts), draw(st.sampled_from(FILTERS)),
                  draw(st.sampled_from([".", "DP=9"])), draw(st.sampled_from(FORMATS)), gts)


def plain_keys(recs: tuple[Record, ...]) -> list[Key]:
    """The normalized keys of every plain ALT of the records, in a stable order."""
    keys: dict[Key, None] = {}
    for r in recs:
        for alt in r.alts:
            if re.fullmatch(r"[ACGT]+", alt):
                pos, ref, a = trim(r.pos, r.ref, alt)
                keys[(bare(r.chrom), pos, ref, a)] = None
    return list(keys)


@st.composite
def examples(draw: st.DrawFn) -> Example:
    n_samples = draw(st.integers(1, 3))
    contigs = tuple(draw(st.lists(st.sampled_from(list(CONTIG_LENGTHS)), min_size=1,
                                  max_size=3, unique=True)))
    recs = tuple(draw(st.lists(records(contigs, n_samples), min_size=1, max_size=8)))
    candidates = plain_keys(recs)
    chosen = [k for k in candidates if draw(st.booleans())]
    if not chosen and candidates:
        chosen = [candidates[0]]
    chosen.append(("1", 999, "A", "G"))  # a key no record has: the snapshot is never empty
    damage = draw(st.sampled_from(["none"] * 6 + ["cut", "byte", "cr", "bom"]))
    return Example(tuple(SAMPLE_NAMES[:n_samples]), contigs, recs, frozenset(chosen), damage,
                   draw(st.integers(0, 999)), draw(st.integers(0, 255)), draw(st.booleans()))


# ------------------------------------------------------------------------------ the oracle
def htslib_hits(path: Path, keys: frozenset[Key]) -> set[Hit]:
    """Carried calls as htslib reads them: each ALT split off, shared bases trimmed, a call
    kept when its GT holds the ALT's index and no missing allele, matched on the keys."""
    out: set[Hit] = set()
    with pysam.VariantFile(str(path)) as vcf:
        samples = list(vcf.header.samples)
        for rec in vcf:
            for i, alt in enumerate(rec.alts or (), start=1):
                if not re.fullmatch(r"[ACGTN]+", alt.upper()):
                    continue
                pos, ref, a = trim(rec.pos, str(rec.ref).upper(), alt.upper())
                key = (bare(rec.chrom), pos, ref, a)
                if key not in keys:
                    continue
                for s in samples:
                    gt = genotype(rec, s)
                    if gt and None not in gt and i in gt:
                        out.add((s, *key))
    return out


def independent_hits(path: Path, keys: frozenset[Key], got: set[Hit]) -> set[Hit]:
    """htslib's reading; for a damaged file htslib refuses (it also checks fields varreinterp
    does not interpret: QUAL, FILTER and INFO syntax, the types of FORMAT values other than GT),
    the plain reading of tests/oracle.py instead."""
    try:
        return htslib_hits(path, keys)
    except (OSError, ValueError) as htslib_error:
        try:
            _, calls = carried_calls(path)
        except (OSError, ValueError, IndexError) as exc:
            pytest.fail(f"exit 0 with {sorted(got)}, but neither htslib ({htslib_error}) nor "
                        f"the plain reader ({exc!r}) can read the file")
    return {(s, b, p, r, a) for s, _, p, r, a, b in calls if (b, p, r, a) in keys}


def genotype(rec: pysam.VariantRecord, sample: str) -> tuple[int | None, ...]:
    """htslib's GT of one sample. pysam only finds GT when it is the first FORMAT key
    (`rec.samples[s]['GT']` is () otherwise, although htslib parsed it: bcftools query shows
    it), so a GT elsewhere is taken from htslib's own rendering of the parsed record."""
    keys = list(rec.format)
    if keys and keys[0] == "GT":
        return tuple(rec.samples[sample]["GT"])
    if "GT" not in keys:
        return ()
    fields = str(rec).rstrip("\n").split("\t")
    values = fields[9 + list(rec.header.samples).index(sample)].split(":")
    text = values[keys.index("GT")] if keys.index("GT") < len(values) else "."
    return tuple(None if t == "." else int(t) for t in re.split(r"[/|]", text))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    previous = pysam.set_verbosity(0)  # htslib's warnings about fuzzed files are expected
    yield tmp_path_factory.mktemp("fuzz")
    pysam.set_verbosity(previous)


def write_example(ex: Example, where: Path) -> Path:
    plain = where / "patient.vcf"
    plain.write_bytes(ex.damaged_text())
    if not ex.bgzip:
        return plain
    packed = where / "patient.vcf.gz"
    pysam.tabix_compress(str(plain), str(packed), force=True)
    plain.unlink()
    return packed


def make_store(ex: Example, where: Path) -> Path:
    release = write_clinvar(where / "release.vcf", [
        (chrom, pos, ref, alt, "Pathogenic", 1, "GENE", None)
        for chrom, pos, ref, alt in sorted(ex.snapshot_keys)])
    store = where / "store"
    res = invoke(store, "snapshot", "add", release, "--name", SNAPSHOT)
    assert res.code == 0, res.err
    return store


def check_contract(res: CliResult, store: Path) -> None:
    assert res.code in (0, 3), res.err
    assert "Traceback" not in res.err, res.err
    tmp = store / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir()), list(tmp.iterdir())
    if res.code == 3:
        assert res.out == ""
        lines = res.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("varreinterp: error: "), res.err


# Each example costs about 0.2 s (a snapshot import and an annotate). derandomize: the same
# examples on every run, so a failure is reproducible. No shrink phase: shrinking a failure at
# this cost runs into Hypothesis's five-minute cap; the failing example is printed whole (at
# most 8 records) together with its VCF text instead.
@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ex=examples())
def test_reader_agrees_with_htslib(workspace: Path, ex: Example) -> None:
    where = Path(tempfile.mkdtemp(dir=workspace))
    try:
        store = make_store(ex, where)
        path = write_example(ex, where)
        res = invoke(store, "annotate", path, "--snapshot", SNAPSHOT, "-f", "json")
        shown = ex.damaged_text().decode("utf-8", "backslashreplace")
        check_contract(res, store)
        if ex.damage == "none":  # a malformed GT is refused wherever it is; nothing else is
            expected_code = 3 if ex.malformed_gt() else 0
            assert res.code == expected_code, f"{res.err}\n{shown}"
        if res.code != 0:
            return
        got = {(s, bare(c), p, r, a) for s, c, p, r, a in hit_keys(json_rows(res.out))}
        assert got == independent_hits(path, ex.snapshot_keys, got), shown
    finally:
        shutil.rmtree(where, ignore_errors=True)
