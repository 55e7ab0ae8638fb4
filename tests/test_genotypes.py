"""Genotypes read at numpy speed (varreinterp.genotypes, through patient_vcf.load) carry exactly
the alleles an independent reader (cyvcf2, on htslib) finds, for every sample, at 1 to ~600
samples, plain or BGZF, all samples or a subset, and on the real multi-sample files; every
call is counted once (ReadStats); a malformed genotype, control byte, invalid UTF-8 or wrong
column count is refused with the line (and the sample) it is on."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import cyvcf2
import numpy as np
import pysam
import pytest
from conftest import shared
from pysam.libcbgzf import BGZFile

from varreinterp import db, genotypes, linescan, patient_vcf
from varreinterp.errors import ExitCode, InputError
from varreinterp.patient_vcf import ReadStats, Skip

COLUMNS = ["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]
META = """##fileformat=VCFv4.2
##FILTER=<ID=LowQual,Description="low quality">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allele depths">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">
##INFO=<ID=N,Number=1,Type=Integer,Description="record number">
##ALT=<ID=DEL,Description="Deletion">
##ALT=<ID=NON_REF,Description="Any other allele">
##contig=<ID=1,length=249250621>
##contig=<ID=2,length=243199373>
##contig=<ID=X,length=155270560>
##contig=<ID=chr7,length=159138663>
"""
ALLELE_SKIPS = {Skip.REFERENCE_BLOCK.value, Skip.NON_REF_ALLELE.value, Skip.SYMBOLIC.value,
                Skip.STAR.value, Skip.INVALID.value, Skip.REF_MISMATCH.value,
                Skip.FILTERED.value, Skip.NON_RCRS_MITOCHONDRION.value,
                Skip.UNVERIFIED_MITOCHONDRION.value}
CALL_SKIPS = {Skip.NO_CALL.value, Skip.HALF_CALL.value, Skip.HOM_REF.value,
              Skip.OTHER_ALLELE.value, Skip.NO_GENOTYPE.value}

# ------------------------------------------------------------------------------ generating VCFs


def sample_names(n: int) -> list[str]:
    names = [f"S{i:04d}" for i in range(n)]
    if n > 2:
        names[1] = "O'Brien_1"  # quoted into SQL by the carried view
    return names


def header_text(samples: Sequence[str]) -> str:
    return META + "#" + "\t".join(COLUMNS + list(samples)) + "\n"


def random_gt(rng: random.Random, n_alt: int) -> str:
    """A valid GT for a record with `n_alt` ALT alleles: mostly diploid, some haploid,
    phased, half or no calls, a few triploid."""
    alt = rng.randint(1, n_alt) if n_alt else 0
    other = rng.randint(0, n_alt)
    sep = rng.choice("//|")
    kind = rng.random()
    if kind < 0.40:
        return f"0{sep}0"
    if kind < 0.60:
        return f"0{sep}{alt}" if rng.random() < 0.8 else f"{alt}{sep}0"
    if kind < 0.70:
        return f"{alt}{sep}{alt}"
    if kind < 0.76:
        return f"{alt}{sep}{other}"
    if kind < 0.81:
        return rng.choice(["./.", ".|.", "."])
    if kind < 0.85:
        return rng.choice([f"./{alt}", f"{alt}|.", "./0"])
    if kind < 0.93:
        return rng.choice(["0", str(alt)])  # haploid (chrX of a male)
    return rng.choice([f"0/{alt}/{other}", f"{alt}/{alt}/{alt}", f"0/0/{alt}"])


def random_alts(rng: random.Random, ref: str, n: int) -> list[str]:
    """`n` distinct ALTs of 1-3 bases for a one-base REF: load() trims nothing of a one-base
    REF, so the oracle's rows need no normalizing."""
    pool = [a for length in (1, 2, 3) for a in _words(length) if a != ref]
    rng.shuffle(pool)
    return sorted(pool[:n], key=len)


def _words(length: int) -> list[str]:
    words = [""]
    for _ in range(length):
        words = [w + b for w in words for b in "ACGT"]
    return words


def record_alts(rng: random.Random, ref: str, i: int) -> list[str]:
    """ALTs of record i: mostly 1-3 plain ones; some records hold alleles that are skipped."""
    if i == 5:  # eleven ALTs (REF is A): GTs such as 10/11
        return [*"CGT", *_words(2)[:8]]
    special = rng.random()
    if special < 0.04:
        return []  # ALT '.', a reference call
    if special < 0.07:
        return ["<NON_REF>"]
    if special < 0.10:
        return [*random_alts(rng, ref, 1), "<NON_REF>"]
    if special < 0.13:
        return [*random_alts(rng, ref, 1), "*"]
    if special < 0.15:
        return ["<DEL>"]
    return random_alts(rng, ref, rng.choice([1, 1, 1, 2, 2, 3]))


def sample_field(rng: random.Random, fmt: str, gt: str, n_alt: int) -> str:
    dp = str(rng.randint(0, 99))
    ad = ",".join(str(rng.randint(0, 30)) for _ in range(n_alt + 1))
    if fmt == "GT":
        return gt
    if fmt == "GT:AD:DP":
        return rng.choice([f"{gt}:{ad}:{dp}", f"{gt}:{ad}:{dp}", gt, "."])  # '.': all missing
    if fmt == "GT:DP":
        return f"{gt}:{dp}"
    if fmt == "DP:GT":  # GT not first (htslib reads it; the scan's slow path)
        return f"{dp}:{gt}"
    return dp  # FORMAT without GT


@dataclass
class Generated:
    text: str
    record_lines: list[int]  # data-line index of each record (blank lines in between)
    samples: list[str]


def generate(seed: int, n_samples: int, n_records: int, blank_lines: bool = True) -> Generated:
    rng = random.Random(seed)
    samples = sample_names(n_samples)
    lines: list[str] = []
    record_lines: list[int] = []
    pos = {c: 10_000 for c in ("1", "2", "X", "chr7")}
    for i in range(n_records):
        if blank_lines and rng.random() < 0.04:
            lines.append("")
        chrom = rng.choice(list(pos))
        pos[chrom] += rng.randint(1, 5000)
        ref = "A" if i == 5 else rng.choice("ACGT")
        alts = record_alts(rng, ref, i)
        n_alt = len(alts)
        fmt = "GT:AD:DP" if i == 5 else rng.choice(["GT", "GT", "GT:AD:DP", "GT:DP", "DP:GT", "DP"])
        fields = [sample_field(rng, fmt, random_gt(rng, n_alt), n_alt) for _ in samples]
        if i == 5:  # multi-digit allele indexes
            fields[0] = "10/11"
            fields[-1] = "0|11:1,2,0,0,0,0,0,0,0,0,0,3:6"
        if rng.random() < 0.1:  # lowercase bases: load() upper-cases them
            ref, alts = ref.lower(), [a.lower() if a[0] != "<" else a for a in alts]
        row = [chrom, str(pos[chrom]), f"id{i}", ref, ",".join(alts) or ".", "50",
               rng.choice(["PASS", ".", "LowQual"]), f"N={i}", fmt, *fields]
        record_lines.append(len(lines))
        lines.append("\t".join(row))
    return Generated(header_text(samples) + "".join(line + "\n" for line in lines),
                     record_lines, samples)


def write(path: Path, text: str | bytes, packing: str, block: int = 0) -> Path:
    """The text as plain, BGZF (htslib; small blocks when `block`) or plain gzip."""
    data = text.encode() if isinstance(text, str) else text
    if packing == "plain":
        path.write_bytes(data)
        return path
    packed = path.with_name(path.name + ".gz")
    if packing == "gzip":
        import gzip

        packed.write_bytes(gzip.compress(data))
    elif block:
        with BGZFile(str(packed), "wb", None) as fh:
            for i in range(0, len(data), block):
                fh.write(data[i:i + block])
                fh.flush()
    else:
        path.write_bytes(data)
        pysam.tabix_compress(str(path), str(packed), force=True)
    return packed


# ------------------------------------------------------------------------------ the oracle

Row = tuple[str, int, int, str, int, str, str, str]  # sample, rid, ai, chrom, pos, ref, alt, zyg
BASES = re.compile(r"[ACGTN]+")


def allele_skip(ref: str, alt: str, n_alt: int) -> str | None:
    """Why an ALT is not a usable allele (the rules of DOMAIN.md: gVCF blocks, *, symbolic)."""
    if alt in ("<NON_REF>", "<*>"):
        return Skip.REFERENCE_BLOCK.value if n_alt == 1 else Skip.NON_REF_ALLELE.value
    if alt == "*":
        return Skip.STAR.value
    if "<" in alt or "[" in alt or "]" in alt:
        return Skip.SYMBOLIC.value
    if not BASES.fullmatch(alt) or not BASES.fullmatch(ref):
        return Skip.INVALID.value
    return None


def trimmed(pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """Shared bases removed, suffix then prefix, as `bcftools norm` without a FASTA."""
    if len(ref) < 2 or len(alt) < 2 or (ref[0] != alt[0] and ref[-1] != alt[-1]):
        return pos, ref, alt
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt


def call_status(alleles: list[int] | None, ai: int) -> tuple[str, str | None]:
    """What a cyvcf2 genotype (allele indexes, -1 missing) says about allele `ai`."""
    if alleles is None:
        return Skip.NO_GENOTYPE.value, None
    if all(a < 0 for a in alleles):
        return Skip.NO_CALL.value, None
    if any(a < 0 for a in alleles):
        return Skip.HALF_CALL.value, None
    if ai not in alleles:
        return (Skip.HOM_REF if all(a == 0 for a in alleles) else Skip.OTHER_ALLELE).value, None
    if len(alleles) == 1:
        return "carried", "hemi"
    if len(alleles) == 2:
        return "carried", "hom" if alleles.count(ai) == 2 else "het"
    return "carried", "unknown"


def non_rcrs(chrom: str, lengths: dict[str, int]) -> bool:
    """A mitochondrion whose declared length is not the rCRS's (hg19's chrM): not matched."""
    return chrom.upper().removeprefix("CHR") in ("M", "MT") and lengths.get(chrom) != 16569


def oracle(path: Path, wanted: Sequence[str], record_lines: Sequence[int] | None = None,
           ) -> tuple[list[Row], ReadStats]:
    """Carried alleles and counts from cyvcf2. `record_lines` maps cyvcf2's record index to
    the data-line index (htslib cannot read blank lines: it is given a copy without them)."""
    vcf = cyvcf2.VCF(str(path))
    lengths = {name: int(length) for name, length in zip(vcf.seqnames, vcf.seqlens,
                                                            strict=True)} \
        if _has_lengths(vcf) else {}
    chosen = [i for i, s in enumerate(vcf.samples) if s in wanted]
    rows: list[Row] = []
    stats = ReadStats(str(path))
    for n, v in enumerate(vcf):
        rid = record_lines[n] if record_lines is not None else n
        stats.records += 1
        alts = list(v.ALT)
        ref = v.REF.upper()
        if not alts:
            stats.alleles += 1
            stats.skipped[Skip.REFERENCE_BLOCK.value] += 1
            continue
        has_gt = v.FORMAT is not None and "GT" in v.FORMAT
        gts = v.genotypes if has_gt else None
        for ai, alt in enumerate(alts, 1):
            stats.alleles += 1
            skip = allele_skip(ref, alt.upper(), len(alts))
            if skip is None and non_rcrs(v.CHROM, lengths):
                skip = Skip.NON_RCRS_MITOCHONDRION.value
            if skip:
                stats.skipped[skip] += 1
                continue
            pos, nref, nalt = trimmed(v.POS, ref, alt.upper())
            for i in chosen:
                status, zygosity = call_status(gts[i][:-1] if gts else None, ai)
                stats.calls += 1
                if zygosity is None:
                    stats.skipped[status] += 1
                    continue
                stats.carried += 1
                rows.append((vcf.samples[i], rid, ai, v.CHROM, pos, nref, nalt, zygosity))
    vcf.close()
    return sorted(rows), stats


def _has_lengths(vcf: cyvcf2.VCF) -> bool:
    try:
        return bool(vcf.seqlens)
    except AttributeError:  # cyvcf2's answer when the header declares no contig length
        return False


# ------------------------------------------------------------------------------ load()


@dataclass
class Loaded:
    rows: list[Row]
    stats: ReadStats
    n_samples: int
    usable: int


def load(path: Path, wanted: Sequence[str] | None, workdir: Path) -> Loaded:
    header = patient_vcf.read_header(path, workdir)
    sample_idx = patient_vcf.select_samples(header, list(wanted) if wanted else None)
    con = db.connect(workdir)
    try:
        calls = patient_vcf.load(con, header, sample_idx)
        rows = con.execute(f"SELECT sample, rid, ai, chrom, pos, ref, alt, zygosity "
                           f"FROM {calls.carried}").fetchall()
        usable = con.execute(f"SELECT count(*) FROM {calls.allele} "
                             "WHERE skip IS NULL").fetchall()[0][0]
    finally:
        con.close()
    return Loaded(sorted(rows), calls.stats, len(sample_idx), int(usable))


def assert_stats_add_up(loaded: Loaded) -> None:
    """Every selected sample's call of every usable allele is counted once; every allele and
    every call is either used or skipped for a counted reason."""
    stats = loaded.stats
    assert stats.calls == loaded.usable * loaded.n_samples
    allele_skips = sum(n for k, n in stats.skipped.items() if k in ALLELE_SKIPS)
    call_skips = sum(n for k, n in stats.skipped.items() if k in CALL_SKIPS)
    assert set(stats.skipped) <= ALLELE_SKIPS | CALL_SKIPS
    assert allele_skips + loaded.usable == stats.alleles
    assert call_skips + stats.carried == stats.calls
    assert stats.carried == len(loaded.rows)


def assert_same_as_cyvcf2(path: Path, oracle_path: Path, wanted: Sequence[str] | None,
                          samples: Sequence[str], workdir: Path,
                          record_lines: Sequence[int] | None = None) -> Loaded:
    loaded = load(path, wanted, workdir)
    rows, stats = oracle(oracle_path, wanted or samples, record_lines)
    assert loaded.rows == rows
    assert loaded.stats.records == stats.records
    assert loaded.stats.alleles == stats.alleles
    assert loaded.stats.calls == stats.calls
    assert loaded.stats.carried == stats.carried
    assert +loaded.stats.skipped == +stats.skipped
    assert_stats_add_up(loaded)
    return loaded


@contextmanager
def small_chunks(chunk_bytes: int, group_blocks: int = 1) -> Iterator[None]:
    with mock.patch.object(linescan, "_CHUNK_BYTES", chunk_bytes), \
            mock.patch.object(linescan, "_GROUP_BLOCKS", group_blocks):
        yield


# ------------------------------------------------------------------------------ generated files

SIZES = [(1, 160, 1), (50, 150, 2), (600, 60, 3)]


@pytest.mark.parametrize(("n_samples", "n_records", "seed"), SIZES)
@pytest.mark.parametrize("packing", ["plain", "bgzf"])
@pytest.mark.parametrize("subset", [False, True])
def test_carried_alleles_equal_cyvcf2(tmp_path: Path, n_samples: int, n_records: int,
                                      seed: int, packing: str, subset: bool) -> None:
    made = generate(seed, n_samples, n_records)
    path = write(tmp_path / "cohort.vcf", made.text, packing, block=4000 if seed == 2 else 0)
    no_blanks = write(tmp_path / "oracle.vcf", made.text.replace("\n\n", "\n"), "plain")
    wanted = None
    if subset:
        rng = random.Random(seed)
        wanted = sorted(rng.sample(made.samples, max(1, n_samples // 3)))
        if n_samples > 2:
            wanted = sorted({*wanted, made.samples[1], made.samples[-1]})
    with small_chunks(5000 if seed == 2 else linescan._CHUNK_BYTES, 1):
        loaded = assert_same_as_cyvcf2(path, no_blanks, wanted, made.samples, tmp_path,
                                       made.record_lines)
    assert loaded.n_samples == (len(wanted) if wanted else n_samples)
    # the generator really made every kind of call
    kinds = {row[7] for row in loaded.rows}
    assert kinds == {"het", "hom", "hemi", "unknown"} or n_samples == 1
    assert any(row[2] == 11 for row in loaded.rows)  # the last sample's 0|11


def test_multi_digit_alleles_and_gt_not_first(tmp_path: Path) -> None:
    """Hand-checked rows: 10/11 on an 11-ALT record, GT after DP, a triploid and a haploid."""
    text = header_text(["A", "B", "C"]) + (
        "1\t100\t.\tA\tC,G,T,AC,AG,AT,CA,CC,CG,CT,GA\t.\tPASS\t.\tGT\t10/11\t0|11\t1/.\n"
        "2\t200\t.\tG\tT\t.\tPASS\t.\tDP:GT\t5:0/1\t7:1|1\t3:0/0\n"
        "X\t300\t.\tC\tA\t.\tPASS\t.\tGT:AD:DP\t1\t.\t0/1/1:1,2:3\n")
    path = write(tmp_path / "hand.vcf", text, "plain")
    loaded = load(path, None, tmp_path)
    assert loaded.rows == sorted([
        ("A", 0, 10, "1", 100, "A", "CT", "het"), ("A", 0, 11, "1", 100, "A", "GA", "het"),
        ("B", 0, 11, "1", 100, "A", "GA", "het"),
        ("A", 1, 1, "2", 200, "G", "T", "het"), ("B", 1, 1, "2", 200, "G", "T", "hom"),
        ("A", 2, 1, "X", 300, "C", "A", "hemi"), ("C", 2, 1, "X", 300, "C", "A", "unknown")])
    assert loaded.stats.skipped[Skip.HALF_CALL.value] == 11  # C's 1/. for each ALT
    assert loaded.stats.skipped[Skip.NO_CALL.value] == 1  # B's '.' at X:300
    assert_stats_add_up(loaded)


# ------------------------------------------------------------------------------ the scan itself


def python_gt(line: str, k: int) -> str:
    fields = line.split("\t")
    keys = fields[8].split(":")
    if "GT" not in keys:
        return ""
    values = fields[9 + k].split(":")
    i = keys.index("GT")
    return values[i] if i < len(values) else ""


@pytest.mark.parametrize("chunk_bytes", [700, 1 << 22])
@pytest.mark.parametrize("selection", ["all", "some", "none"])
def test_scan_tables_match_a_python_parse(tmp_path: Path, chunk_bytes: int,
                                          selection: str) -> None:
    """narrow = the first 9 columns of each non-blank line; rids = their data-line numbers;
    counts = how many selected samples have each GT on each line; cells hold every carrying
    GT, and each cell's code is its sample's GT text."""
    made = generate(7, 12, 120)
    header_lines = header_text(made.samples).count("\n")
    path = write(tmp_path / "s.vcf", made.text, "plain")
    data = made.text.split("\n")[header_lines:-1]
    sample_idx = {"all": list(range(12)), "some": [0, 3, 11], "none": []}[selection]
    with small_chunks(chunk_bytes):
        got = genotypes.scan(path, header_lines, 9 + 12, sample_idx, tmp_path / "narrow.tsv",
                             tmp_path, path)
    nonblank = [i for i, line in enumerate(data) if line]
    assert got.rids.tolist() == nonblank
    assert got.narrow.read_text() == "".join(
        "\t".join(data[i].split("\t")[:9]) + "\n" for i in nonblank)
    text = got.code_text
    counts = Counter({(int(r), text[int(c)]): int(n) for r, c, n in
                      zip(got.count_rid, got.count_code, got.count_n, strict=True)})
    assert len(counts) == len(got.count_rid), "a (line, GT) pair counted twice"
    expected = Counter((i, python_gt(data[i], s)) for i in nonblank for s in sample_idx)
    assert counts == expected
    cells = {(int(r), int(k), text[int(c)]) for r, k, c in
             zip(got.cell_rid, got.cell_k, got.cell_code, strict=True)}
    assert len(cells) == len(got.cell_rid)
    for rid, k, gt in cells:
        assert python_gt(data[rid], sample_idx[k]) == gt
    carrying = {(i, k, python_gt(data[i], s)) for i in nonblank for k, s in enumerate(sample_idx)
                if genotypes.carries_text(python_gt(data[i], s))}
    assert carrying <= cells
    assert bool(carrying) == bool(sample_idx)


def test_scan_names_lines_of_the_source_through_rids(tmp_path: Path) -> None:
    """With the prefilter's kept lines, an error names the line of the original file."""
    kept = write(tmp_path / "kept.txt", "1\t5\t.\tA\tC\t.\t.\t.\tGT\t0/1\n"
                                        "1\t9\t.\tA\tC\t.\t.\t.\tGT\n", "plain")
    source = tmp_path / "patient.vcf"
    with pytest.raises(InputError) as info:
        genotypes.scan(kept, 0, 10, [0], tmp_path / "n.tsv", tmp_path, source,
                       rids=np.array([4, 17]), source_skip=30)
    assert (info.value.path, info.value.line) == (str(source), 30 + 17 + 1)
    one = write(tmp_path / "one.txt", "1\t5\t.\tA\tC\t.\t.\t.\tGT\t0/1\n", "plain")
    with pytest.raises(InputError, match="do not match their numbering"):
        genotypes.scan(one, 0, 10, [0], tmp_path / "n2.tsv", tmp_path, source,
                       rids=np.array([1, 2]))


# ------------------------------------------------------------------------------ real files


def cut_copy(src: Path, dst: Path, n_records: int) -> Path:
    """The first `n_records` records of `src` (VCF or BCF) as VCF text with its header."""
    with pysam.VariantFile(str(src)) as fin, \
            pysam.VariantFile(str(dst), "w", header=fin.header) as fout:
        for i, rec in enumerate(fin):
            if i == n_records:
                break
            fout.write(rec)
    return dst


REAL = [
    ("patients/GRCh37/1kg_exome.16_samples.vcf", None),
    ("patients/GRCh37/1kg_exome.16_samples.vcf", ["HG00731", "HG00732", "HG00733"]),
    ("patients/GRCh37/1kg_exome.16_samples.vcf", ["NA19675", "NA19678", "NA19679"]),
    ("patients/GRCh37/NA12878.giab.chr20_10.0-10.1Mb.vcf.gz", None),
    ("patients/GRCh37/NA12878.platinum.gvcf.chrM_chr1start.vcf.gz", None),
    ("patients/GRCh38/HG004.giab.chr1_0.6-1.3Mb.vcf.gz", None),
    ("patients/GRCh38/HG006.giab.chr1_0.6-1.3Mb.vcf.gz", None),
]


@pytest.mark.parametrize(("relative", "wanted"), REAL,
                         ids=[f"{r.rsplit('/', 1)[1]}-{'+'.join(w or ['all'])}" for r, w in REAL])
def test_real_files_equal_cyvcf2(tmp_path: Path, relative: str,
                                 wanted: list[str] | None) -> None:
    path = shared(relative)
    samples = cyvcf2.VCF(str(path)).samples
    loaded = assert_same_as_cyvcf2(path, path, wanted, samples, tmp_path)
    assert loaded.rows, "a real file with no carried allele: the comparison proves nothing"
    if "gvcf" in relative:  # hg19's chrM is not matched: its calls are skipped, counted
        assert loaded.stats.skipped[Skip.NON_RCRS_MITOCHONDRION.value] > 0
        assert loaded.stats.skipped[Skip.REFERENCE_BLOCK.value] > 0


def test_real_bcf_cut_copy_equals_cyvcf2(tmp_path: Path) -> None:
    """The first 3,000 records of the 58,447-record BCF, as VCF text and bgzipped."""
    src = shared("patients/GRCh38/NA12878.platinum.chr21.bcf")
    plain = cut_copy(src, tmp_path / "chr21.vcf", 3000)
    packed = write(tmp_path / "chr21b.vcf", plain.read_bytes(), "bgzf")
    samples = cyvcf2.VCF(str(plain)).samples
    for path in (plain, packed):
        loaded = assert_same_as_cyvcf2(path, plain, None, samples, tmp_path)
        assert loaded.stats.records == 3000 and len(loaded.rows) > 1000


# ------------------------------------------------------------------------------ refused input

ONE = "1\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t.\t{fmt}\t{a}\t{b}\t{c}"
GOOD = ONE.format(pos=5, ref="A", alt="C", fmt="GT", a="0/1", b="0/0", c="1/1")


def refusal(tmp_path: Path, lines: Sequence[str | bytes], packing: str = "plain",
            wanted: Sequence[str] | None = None, chunk_bytes: int | None = None) -> InputError:
    """The InputError load() raises for a file of these data lines (header: 13 lines)."""
    body = b"".join((line.encode() if isinstance(line, str) else line) + b"\n"
                    for line in lines)
    path = write(tmp_path / "bad.vcf", header_text(["A", "B", "C"]).encode() + body, packing)
    with small_chunks(chunk_bytes or linescan._CHUNK_BYTES), \
            pytest.raises(InputError) as info:
        load(path, wanted, tmp_path)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert info.value.path == str(path)
    assert "\n" not in str(info.value)
    return info.value


HEADER_LINES = header_text(["A", "B", "C"]).count("\n")
BAD_GTS = [
    # (ALT, FORMAT, field of sample B, words of the message)
    ("C", "GT", "1/x", "'x'"),
    ("C", "GT", "0/2", "names allele 2 but the record has 1 ALT allele"),
    ("C", "GT", "2", "names allele 2"),
    ("C,G", "GT:DP", "0/3:5", "names allele 3 but the record has 2 ALT alleles"),
    ("C", "DP:GT", "5:1/x", "'x'"),  # GT not first: the slow path
    ("C", "GT", "1/", "not an allele index"),
    ("C", "GT", "0/-1", "not an allele index"),
    ("C", "GT", "a/b", "not an allele index"),
    ("C,G,T,AC,AG,AT,CA,CC,CG,CT,GA", "GT", "0/12", "names allele 12"),
    (".", "GT", "0/1", "names allele 1 but the record has 0 ALT alleles"),  # ALT '.': skipped
    ("<NON_REF>", "GT", "0/2", "names allele 2"),  # a reference block: skipped allele
    ("<NON_REF>", "GT", "1/x", "'x'"),
    ("*", "GT", "0/x", "'x'"),  # a star allele: skipped
    ("C,*", "GT", "3/0", "names allele 3"),
    ("<DEL>", "GT", "0|2", "names allele 2"),
]


@pytest.mark.parametrize(("alt", "fmt", "field", "words"), BAD_GTS)
@pytest.mark.parametrize("packing", ["plain", "bgzf"])
def test_malformed_genotype_names_line_and_sample(tmp_path: Path, alt: str, fmt: str,
                                                  field: str, words: str, packing: str) -> None:
    dp = "7:" if fmt == "DP:GT" else ""
    tail = ":4" if fmt == "GT:DP" else ""
    bad = ONE.format(pos=9, ref="A", alt=alt, fmt=fmt, a=f"{dp}0/0{tail}", b=field,
                     c=f"{dp}./.{tail}")
    err = refusal(tmp_path, [GOOD, GOOD, bad, GOOD], packing)
    assert err.line == HEADER_LINES + 3
    assert err.message.startswith("sample B: ")
    assert words in err.message


def test_first_bad_genotype_wins(tmp_path: Path) -> None:
    """Two bad lines: the first is named; two bad samples on it: the first sample."""
    bad_bc = ONE.format(pos=9, ref="A", alt="C", fmt="GT", a="0/1", b="0/2", c="1/x")
    bad_a = ONE.format(pos=9, ref="A", alt="C", fmt="GT", a="9", b="0/1", c="0/1")
    err = refusal(tmp_path, [GOOD, bad_bc, GOOD, bad_a], chunk_bytes=200)
    assert (err.line, err.message.split(":")[0]) == (HEADER_LINES + 2, "sample B")


@pytest.mark.parametrize("packing", ["plain", "bgzf", "gzip"])
@pytest.mark.parametrize("where", ["B", "C", "INFO"])
def test_control_bytes_are_refused(tmp_path: Path, packing: str, where: str) -> None:
    """A NUL in a sample field (even an unselected sample's) or elsewhere on a line."""
    fields = {"B": "0\x00/1", "C": "1/1\x00", "INFO": "0/1"}
    line = ONE.format(pos=9, ref="A", alt="C", fmt="GT", a="0/1", b=fields["B"] if where == "B"
                      else "0/1", c=fields["C"] if where == "C" else "0/1")
    if where == "INFO":
        line = line.replace("PASS\t.", "PASS\tX=\x00")
    err = refusal(tmp_path, [GOOD] * 3 + [line, GOOD], packing, wanted=["A", "B"])
    assert err.line == HEADER_LINES + 4
    assert "NUL" in err.message


@pytest.mark.parametrize("byte", [b"\x01", b"\x08"])
def test_other_control_bytes_are_refused(tmp_path: Path, byte: bytes) -> None:
    line = GOOD.encode().replace(b"1/1", b"1/1" + byte)
    err = refusal(tmp_path, [GOOD, line], "bgzf")
    assert err.line == HEADER_LINES + 2


@pytest.mark.parametrize("packing", ["plain", "bgzf", "gzip"])
def test_invalid_utf8_in_a_sample_column(tmp_path: Path, packing: str) -> None:
    """Far from the header (past any read-ahead of the header reader): the scan names it."""
    line = GOOD.encode().replace(b"\t1/1", b"\t1/1:\xff\xfe")
    before = [GOOD, GOOD.replace("\t.\t", "\tcaf\u00e9\t", 1)] * 2000  # ~140 KB
    err = refusal(tmp_path, [*before, line, GOOD], packing, chunk_bytes=50_000)
    assert err.line == HEADER_LINES + len(before) + 1
    assert "UTF-8" in err.message


@pytest.mark.parametrize("packing", ["plain", "bgzf"])
def test_invalid_utf8_near_the_header_names_its_line(tmp_path: Path, packing: str) -> None:
    line = GOOD.encode().replace(b"\t1/1", b"\t1/1:\xff\xfe")
    err = refusal(tmp_path, [GOOD, GOOD, line], packing)
    assert err.line == HEADER_LINES + 3


@pytest.mark.parametrize("packing", ["plain", "bgzf"])
@pytest.mark.parametrize("chunk_bytes", [90, 1 << 22])
@pytest.mark.parametrize("columns", [-1, +1, -3])
def test_wrong_column_count_after_blank_lines(tmp_path: Path, packing: str, chunk_bytes: int,
                                              columns: int) -> None:
    fields = GOOD.split("\t")
    wrong = "\t".join(fields[:columns] if columns < 0 else fields + ["0/1"])
    lines = [GOOD, "", GOOD, "", "", GOOD, GOOD, GOOD, "", GOOD, wrong, GOOD]
    err = refusal(tmp_path, lines, packing, chunk_bytes=chunk_bytes)
    assert err.line == HEADER_LINES + 11
    assert "column" in err.message


def test_multibyte_text_across_blocks_is_read(tmp_path: Path) -> None:
    """UTF-8 characters cut by BGZF block and chunk boundaries are not 'invalid UTF-8'."""
    info = "G=" + "\u00e9\u2603" * 30
    lines = [GOOD.replace("PASS\t.", f"PASS\t{info}") for _ in range(40)]
    path = write(tmp_path / "u.vcf", header_text(["A", "B", "C"]) + "\n".join(lines) + "\n",
                 "bgzf", block=37)
    with small_chunks(1 << 20, 1):
        loaded = load(path, None, tmp_path)
    assert loaded.stats.records == 40 and len(loaded.rows) == 80


@pytest.mark.parametrize("packing", ["plain", "bgzf"])
def test_header_only_vcf_without_final_newline(tmp_path: Path, packing: str) -> None:
    path = write(tmp_path / "h.vcf", header_text(["A", "B", "C"]).removesuffix("\n"), packing)
    if packing == "plain":  # nothing proves plain text whole but its final newline
        with pytest.raises(InputError, match="does not end with a newline"):
            load(path, None, tmp_path)
        return
    loaded = load(path, None, tmp_path)
    assert loaded.stats.records == 0 and loaded.rows == []


def test_header_only_vcf(tmp_path: Path) -> None:
    path = write(tmp_path / "h.vcf", header_text(["A", "B", "C"]), "bgzf")
    loaded = load(path, None, tmp_path)
    assert (loaded.stats.records, loaded.stats.calls, loaded.rows) == (0, 0, [])


def test_no_temporary_file_is_left(tmp_path: Path) -> None:
    """load() scans into a private folder and removes it (patient data on disk)."""
    made = generate(3, 5, 30)
    path = write(tmp_path / "c.vcf", made.text, "gzip")
    work = tmp_path / "work"
    work.mkdir()
    load(path, None, work)
    assert list(work.iterdir()) == []
