"""A corpus of damaged and odd input files made from the bundled samples (sample_vcfs/), each
with the outcome the exit-code contract promises for it.

Run `python tests/make_bad_inputs.py OUTDIR` to write the files and `OUTDIR/manifest.json`, or
import it: `manifest()` lists the entries without writing anything, `generate(outdir)` writes
them. Every file is derived from one of three sources:

- the patient `patient_single.vcf.gz` (one sample, chr contigs), re-compressed here as BGZF with
  512-byte blocks so that it has several block boundaries to cut at and several blocks to damage;
- the trio `trio.vcf` (three samples, contigs without chr);
- the ClinVar release `clinvar_GRCh38_2024-06-02.vcf` for `snapshot add`, each copy with its own
  ##fileDate so that no copy collides with a stored snapshot's name (a collision would be a
  store error, exit 4, and hide what the case is about).

Nothing here imports varreinterp: the BGZF writer, the bit flips and the expected line numbers
are computed independently of the product."""

from __future__ import annotations

import gzip
import json
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "sample_vcfs"
PATIENT = SAMPLES / "patient_single.vcf.gz"
TRIO = SAMPLES / "trio.vcf"
RELEASE = SAMPLES / "clinvar_GRCh38_2024-06-02.vcf"

BLOCK_TEXT = 512  # bytes of text per BGZF block: the patient file spans 7 blocks
# The empty block every BGZF file ends with (SAM/BAM specification, section 4.1.2).
EOF_MARKER = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
LONG_INFO = 10 << 20  # an over-long INFO field: htslib reads it, so must we

# Lines the cases edit: a ClinVar site every patient file carries (HFE, GT 1/1), a record no
# snapshot lists, the two-ALT record, and the same HFE site in the trio and the release.
HFE_PATIENT = b"chr6\t26091500\t"
OFF_SITE = b"chr1\t1014228\t"
TWO_ALT = b"chr17\t43057100\t"
CHRM = b"chrM\t13520\t"
HFE_TRIO = b"6\t26091500\t"
HFE_RELEASE = b"6\t26091500\t"


class Kind(StrEnum):
    """Which command reads the file."""

    PATIENT = "patient"  # annotate (tsv and vcf); diff, history, cohort add when deep
    RELEASE = "release"  # snapshot add


class Family(StrEnum):
    CONTROL = "control"  # undamaged copies: the corpus's own baseline
    TRUNCATION = "truncation"
    CORRUPTION = "corruption"
    NUMBER = "number"
    GENOTYPE = "genotype"
    STRUCTURE = "structure"
    DUPLICATE = "duplicate"
    MITOCHONDRION = "mitochondrion"


class Check(StrEnum):
    """The property an accepted file (exit 0) must show."""

    ORACLE = "oracle"  # annotate's hits = tests/oracle.py's carried calls x snapshot keys
    ORACLE_WITHOUT_MT = "oracle_without_mt"  # the same, mitochondrial calls never reported
    SNAPSHOT_KEYS = "snapshot_keys"  # release: the new snapshot holds the original's keys


@dataclass(frozen=True)
class Entry:
    """One corpus file and its expected outcome."""

    name: str
    family: Family
    kind: Kind
    what: str
    exit_code: int  # 0 or 3
    needle: str | None = None  # exit 3: the one error line contains it
    line: int | None = None  # exit 3: the error names FILE:LINE
    check: Check | None = None  # exit 0: the property that must hold
    skipped: dict[str, int] = field(default_factory=dict)  # exit 0: "not reported" counts
    same_as: str | None = None  # exit 0: the same hits as this (undamaged) entry
    deep: bool = False  # patient: also diff, history and cohort add

    def to_json(self) -> dict[str, object]:
        return asdict(self)


Maker = Callable[[], bytes]


def const(data: bytes) -> Maker:
    """A maker of bytes already computed (cheap cases made in a loop)."""
    return lambda: data


# ------------------------------------------------------------------------------ sources
@cache
def patient_text() -> bytes:
    return gzip.decompress(PATIENT.read_bytes())


@cache
def trio_text() -> bytes:
    return TRIO.read_bytes()


@cache
def _release_text() -> bytes:
    return RELEASE.read_bytes()


def release_text(n: int) -> bytes:
    """The 2024-06-02 release dated 2025-01-01 + n days: its own snapshot name."""
    day = (date(2025, 1, 1) + timedelta(days=n)).isoformat()
    return _release_text().replace(b"##fileDate=2024-06-02", f"##fileDate={day}".encode(), 1)


def line_of(text: bytes, prefix: bytes) -> int:
    """1-based number of the first line starting with `prefix`."""
    for n, line in enumerate(text.split(b"\n"), start=1):
        if line.startswith(prefix):
            return n
    raise KeyError(prefix)


def edit_line(text: bytes, prefix: bytes, edit: Callable[[bytes], bytes]) -> bytes:
    """`text` with the first line starting with `prefix` (without its LF) replaced."""
    lines = text.split(b"\n")
    n = line_of(text, prefix) - 1
    lines[n] = edit(lines[n])
    return b"\n".join(lines)


def set_field(text: bytes, prefix: bytes, index: int, value: bytes) -> bytes:
    """Replace tab-separated field `index` (0-based) of one line."""
    def edit(line: bytes) -> bytes:
        fields = line.split(b"\t")
        fields[index] = value
        return b"\t".join(fields)

    return edit_line(text, prefix, edit)


def set_gt(text: bytes, prefix: bytes, gt: bytes, sample: int = 0) -> bytes:
    """Replace the GT of one sample on one line (GT is the first FORMAT key in the samples)."""
    def edit(line: bytes) -> bytes:
        fields = line.split(b"\t")
        fields[9 + sample] = b":".join([gt, *fields[9 + sample].split(b":")[1:]])
        return b"\t".join(fields)

    return edit_line(text, prefix, edit)


def header_end(text: bytes) -> int:
    """Offset just after the #CHROM line."""
    return text.index(b"\n", text.index(b"\n#CHROM") + 1) + 1


def crlf(text: bytes) -> bytes:
    return text.replace(b"\n", b"\r\n")


def crlf_body(text: bytes) -> bytes:
    cut = header_end(text)
    return text[:cut] + crlf(text[cut:])


def without_line(text: bytes, prefix: bytes) -> bytes:
    lines = text.split(b"\n")
    return b"\n".join(ln for ln in lines if not ln.startswith(prefix))


def repeat_line(text: bytes, prefix: bytes, times: int) -> bytes:
    return edit_line(text, prefix, lambda line: b"\n".join([line] * times))


# ------------------------------------------------------------------------------ BGZF
def bgzf_block(data: bytes) -> bytes:
    """One BGZF member: gzip header with the BC extra field (BSIZE), raw deflate, CRC32, ISIZE."""
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    deflated = packer.compress(data) + packer.flush()
    bsize = 18 + len(deflated) + 8
    head = struct.pack("<BBBBIBBHBBHH", 0x1F, 0x8B, 8, 4, 0, 0, 0xFF, 6, ord("B"), ord("C"), 2,
                       bsize - 1)
    return head + deflated + struct.pack("<II", zlib.crc32(data), len(data))


def bgzip(text: bytes, block: int = BLOCK_TEXT) -> bytes:
    body = b"".join(bgzf_block(text[i:i + block]) for i in range(0, len(text), block))
    return body + EOF_MARKER


def block_spans(raw: bytes) -> list[tuple[int, int]]:
    """(start, end) of every member of a BGZF file written by `bgzip`, the EOF marker last."""
    spans, i = [], 0
    while i < len(raw):
        bsize = struct.unpack_from("<H", raw, i + 16)[0] + 1
        spans.append((i, i + bsize))
        i += bsize
    return spans


def flip(raw: bytes, bit: int) -> bytes:
    out = bytearray(raw)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _inflates_to(data: bytes) -> bytes | None:
    """The text a raw deflate stream inflates to, or None when it is invalid or incomplete."""
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(data) + inflater.flush()
    except zlib.error:
        return None
    return out if inflater.eof and not inflater.unused_data else None


def find_flip(raw: bytes, block: int, *, still_inflates: bool) -> int:
    """The first bit, from the middle of block `block`'s deflate data onwards, whose flip either
    still inflates to text of the same length (only the CRC32 can tell) or makes the deflate
    stream invalid."""
    start, end = block_spans(raw)[block]
    data_start, data_end = start + 18, end - 8
    original = _inflates_to(raw[data_start:data_end])
    assert original is not None
    first = (data_start + data_end) // 2 * 8
    for bit in range(first, data_end * 8):
        got = _inflates_to(flip(raw, bit)[data_start:data_end])
        if still_inflates and got is not None and got != original and len(got) == len(original):
            return bit
        if not still_inflates and got is None:
            return bit
    raise LookupError(f"no suitable bit in block {block}")


def find_gzip_flip(raw: bytes) -> int:
    """The first bit, from the middle of a one-member plain gzip file's deflate data onwards
    (the header is 10 bytes: no name, no extra field), whose flip makes the deflate stream
    invalid."""
    data_start, data_end = 10, len(raw) - 8
    for bit in range((data_start + data_end) // 2 * 8, data_end * 8):
        if _inflates_to(flip(raw, bit)[data_start:data_end]) is None:
            return bit
    raise LookupError("no suitable bit in the gzip member")


def set_isize(raw: bytes, block: int, delta: int) -> bytes:
    _, end = block_spans(raw)[block]
    size = struct.unpack_from("<I", raw, end - 4)[0]
    return raw[:end - 4] + struct.pack("<I", size + delta) + raw[end:]


def set_bsize(raw: bytes, block: int, delta: int) -> bytes:
    start, _ = block_spans(raw)[block]
    bsize = struct.unpack_from("<H", raw, start + 16)[0]
    return raw[:start + 16] + struct.pack("<H", bsize + delta) + raw[start + 18:]


def data_blocks(raw: bytes) -> int:
    return len(block_spans(raw)) - 1


# ------------------------------------------------------------------------------ the plan
Plan = list[tuple[Entry, Maker]]


def _control(plan: Plan) -> None:
    plan += [
        (Entry("control_patient.vcf", Family.CONTROL, Kind.PATIENT,
               "patient_single as plain text", 0, check=Check.ORACLE, deep=True),
         patient_text),
        (Entry("control_patient.vcf.gz", Family.CONTROL, Kind.PATIENT,
               "patient_single re-compressed as BGZF with 512-byte blocks", 0,
               check=Check.ORACLE, same_as="control_patient.vcf", deep=True),
         lambda: bgzip(patient_text())),
        (Entry("control_trio.vcf", Family.CONTROL, Kind.PATIENT, "trio as it is", 0,
               check=Check.ORACLE), trio_text),
        (Entry("control_release.vcf", Family.CONTROL, Kind.RELEASE,
               "the 2024-06-02 release with another ##fileDate", 0, check=Check.SNAPSHOT_KEYS),
         lambda: release_text(0)),
        (Entry("control_release.vcf.gz", Family.CONTROL, Kind.RELEASE,
               "the release as BGZF with 512-byte blocks", 0, check=Check.SNAPSHOT_KEYS),
         lambda: bgzip(release_text(1))),
    ]


def _truncation(plan: Plan) -> None:
    packed = bgzip(patient_text())
    spans = block_spans(packed)
    n = data_blocks(packed)
    cut_header_blocks = header_end(patient_text()) // BLOCK_TEXT  # blocks of header text only
    fam, pat = Family.TRUNCATION, Kind.PATIENT
    for k in (cut_header_blocks, cut_header_blocks + 1, n - 1):
        plan.append((Entry(f"bgzf_cut_after_block_{k}.vcf.gz", fam, pat,
                           f"BGZF cut at the boundary after block {k} of {n}: no EOF marker",
                           3, needle="truncated", deep=k == n - 1),
                     const(packed[:spans[k - 1][1]])))
    inside = [("middle_of_block_2", (spans[1][0] + spans[1][1]) // 2),
              ("middle_of_last_block", (spans[n - 1][0] + spans[n - 1][1]) // 2),
              ("in_eof_marker", spans[n][0] + 10),
              ("in_block_header", spans[3][0] + 14)]
    for label, at in inside:
        plan.append((Entry(f"bgzf_cut_{label}.vcf.gz", fam, pat,
                           f"BGZF cut inside a block, {at} of {len(packed)} bytes kept", 3,
                           needle="truncated"), const(packed[:at])))
    plan += [
        (Entry("bgzf_cut_in_gzip_header.vcf.gz", fam, pat,
               "the first 8 bytes of the file only (inside the first gzip header)", 3,
               needle="truncated"), lambda: packed[:8]),
        (Entry("bgzf_cut_in_vcf_header_at_boundary.vcf.gz", fam, pat,
               "BGZF cut after block 1, inside the VCF header text, no EOF marker", 3,
               needle="truncated"), lambda: packed[:spans[0][1]]),
        (Entry("bgzf_no_eof_marker.vcf.gz", fam, pat,
               "the last 28 bytes (the BGZF EOF marker) removed, every record intact", 3,
               needle="end-of-file marker", deep=True), lambda: packed[:-28]),
        (Entry("trio_no_eof_marker.vcf.gz", fam, pat, "trio as BGZF, EOF marker removed", 3,
               needle="end-of-file marker"), lambda: bgzip(trio_text())[:-28]),
    ]
    plain_gz = gzip.compress(patient_text(), mtime=0)
    for label, keep in [("half", len(plain_gz) // 2), ("no_isize", len(plain_gz) - 4),
                        ("no_trailer", len(plain_gz) - 8), ("gzip_header_only", 10)]:
        plan.append((Entry(f"gzip_cut_{label}.vcf.gz", fam, pat,
                           f"plain gzip cut to {keep} of {len(plain_gz)} bytes", 3,
                           needle="truncated"),
                     const(plain_gz[:keep])))
    head = patient_text()[:header_end(patient_text())]
    plan += [
        (Entry("zero_bytes.vcf", fam, pat, "an empty file", 3, needle="empty"), lambda: b""),
        (Entry("zero_bytes.vcf.gz", fam, pat, "an empty file named .vcf.gz", 3,
               needle="empty"), lambda: b""),
        (Entry("gzip_of_nothing.vcf.gz", fam, pat, "a valid gzip member holding no text", 3,
               needle="empty"), lambda: gzip.compress(b"", mtime=0)),
        (Entry("bgzf_eof_marker_only.vcf.gz", fam, pat, "a BGZF file holding no text", 3,
               needle="empty"), lambda: EOF_MARKER),
        (Entry("header_only.vcf", fam, pat, "the VCF header and no record: a valid, empty VCF",
               0, check=Check.ORACLE, deep=True), lambda: head),
        (Entry("header_only.vcf.gz", fam, pat, "header only, BGZF with its EOF marker", 0,
               check=Check.ORACLE), lambda: bgzip(head)),
        (Entry("header_cut_mid_line.vcf", fam, pat,
               "plain text cut in the middle of a ##contig header line", 3,
               needle="does not end with a newline"),
         lambda: head[:head.index(b"##contig=<ID=chr9") + 20]),
    ]
    rel = bgzip(release_text(2))
    rel_spans = block_spans(rel)
    rel_n = data_blocks(rel)
    rel_gz = gzip.compress(release_text(3), mtime=0)
    rk = Kind.RELEASE
    plan += [
        (Entry("release_cut_at_boundary.vcf.gz", fam, rk,
               f"release BGZF cut after block {rel_n // 2} of {rel_n}: no EOF marker", 3,
               needle="truncated"), lambda: rel[:rel_spans[rel_n // 2 - 1][1]]),
        (Entry("release_cut_inside_block.vcf.gz", fam, rk, "release BGZF cut inside a block",
               3, needle="truncated"),
         lambda: rel[:(rel_spans[rel_n // 2][0] + rel_spans[rel_n // 2][1]) // 2]),
        (Entry("release_no_eof_marker.vcf.gz", fam, rk,
               "release BGZF without its EOF marker", 3, needle="end-of-file marker"),
         lambda: rel[:-28]),
        (Entry("release_gzip_cut.vcf.gz", fam, rk, "release plain gzip cut in half", 3,
               needle="truncated"), lambda: rel_gz[:len(rel_gz) // 2]),
        (Entry("release_zero_bytes.vcf", fam, rk, "an empty release file", 3, needle="empty"),
         lambda: b""),
        (Entry("release_header_only.vcf", fam, rk,
               "a release with its header and no record", 3, needle="no classified record"),
         lambda: release_text(4)[:header_end(release_text(4))]),
    ]


def _corruption(plan: Plan) -> None:
    packed = bgzip(patient_text())
    n = data_blocks(packed)
    first_data = header_end(patient_text()) // BLOCK_TEXT + 1  # first block with records
    fam, pat = Family.CORRUPTION, Kind.PATIENT
    for block in (0, first_data, n - 1):
        bit = find_flip(packed, block, still_inflates=True)
        plan.append((Entry(f"bitflip_crc_only_block_{block}.vcf.gz", fam, pat,
                           f"bit {bit} flipped in block {block}: still inflates, same length, "
                           "only the CRC32 differs", 3, needle="CRC",
                           deep=block == first_data), const(flip(packed, bit))))
    # The wording of these differs by the reader that meets the damage first (the header's
    # gzip reader, or the BGZF reader): only the file name and the exit code are pinned.
    # Block 0 is where the BCF probe looks first: it once let zlib.error out (exit 70).
    for block in (0, 1, n - 1):
        bit = find_flip(packed, block, still_inflates=False)
        plan.append((Entry(f"bitflip_bad_deflate_block_{block}.vcf.gz", fam, pat,
                           f"bit {bit} flipped in block {block}: invalid deflate data", 3,
                           deep=block == 0),
                     const(flip(packed, bit))))
    plain_gz = gzip.compress(patient_text(), mtime=0)
    gz_bit = find_gzip_flip(plain_gz)
    plan.append((Entry("gzip_bad_deflate_member.vcf.gz", fam, pat,
                       f"plain gzip, bit {gz_bit} flipped in its only member: invalid deflate "
                       "data", 3, deep=True), const(flip(plain_gz, gz_bit))))
    plan += [
        (Entry("isize_plus_one.vcf.gz", fam, pat, f"ISIZE of block {n - 1} one too large", 3),
         lambda: set_isize(packed, n - 1, 1)),
        (Entry("isize_minus_one_block_0.vcf.gz", fam, pat, "ISIZE of block 0 one too small", 3),
         lambda: set_isize(packed, 0, -1)),
        (Entry("bsize_plus_one.vcf.gz", fam, pat,
               f"BSIZE of block {first_data} one too large", 3, needle="corrupt"),
         lambda: set_bsize(packed, first_data, 1)),
        (Entry("bsize_minus_ten.vcf.gz", fam, pat, f"BSIZE of block {n - 1} ten too small", 3,
               needle="corrupt"), lambda: set_bsize(packed, n - 1, -10)),
        (Entry("gzip_magic_flipped.vcf.gz", fam, pat,
               "first byte of a BGZF file flipped: binary content, no longer gzip", 3,
               needle="binary"), lambda: flip(packed, 0)),
    ]
    rel = bgzip(release_text(5))
    rel_n = data_blocks(rel)
    rk = Kind.RELEASE
    bit = find_flip(rel, rel_n // 2, still_inflates=True)
    plan += [
        (Entry("release_bitflip_crc_only.vcf.gz", fam, rk,
               f"release BGZF, bit {bit} flipped: only the CRC32 tells", 3, needle="CRC"),
         lambda: flip(rel, bit)),
        (Entry("release_isize_wrong.vcf.gz", fam, rk, "release BGZF, one ISIZE one too large",
               3, needle="size check"), lambda: set_isize(rel, rel_n // 2, 1)),
        (Entry("release_gzip_crc_wrong.vcf.gz", fam, rk,
               "release plain gzip with a wrong CRC32 trailer", 3, needle="CRC"),
         lambda: _gzip_bad_crc(release_text(6))),
    ]


def _gzip_bad_crc(text: bytes) -> bytes:
    raw = bytearray(gzip.compress(text, mtime=0))
    raw[-8] ^= 0x01
    return bytes(raw)


BAD_POS = [("decimal", b"26091499.6"), ("exponent", b"2.60915e7"), ("plus", b"+26091500"),
           ("leading_space", b" 26091500"), ("underscores", b"26_091_500"), ("zero", b"0"),
           ("negative", b"-5"), ("over_int32", b"2147483648"), ("empty", b""),
           ("trailing_space", b"26091500 "), ("fullwidth_digits", "２６０９１５００".encode()),
           ("hex", b"0x18E1D1C")]


def _numbers(plan: Plan) -> None:
    fam = Family.NUMBER
    ptext, rtext = patient_text(), release_text(0)
    p_line, r_line = line_of(ptext, HFE_PATIENT), line_of(rtext, HFE_RELEASE)
    for i, (label, pos) in enumerate(BAD_POS):
        shown = pos.decode()
        plan.append((Entry(f"pos_{label}.vcf", fam, Kind.PATIENT,
                           f"POS {shown!r} on the HFE line (a ClinVar site)", 3, needle="POS",
                           line=p_line, deep=label == "plus"),
                     const(set_field(patient_text(), HFE_PATIENT, 1, pos))))
        plan.append((Entry(f"release_pos_{label}.vcf", fam, Kind.RELEASE,
                           f"release: POS {shown!r} on the HFE line", 3, needle="POS", line=r_line),
                     const(set_field(release_text(10 + i), HFE_RELEASE, 1, pos))))
    for label, pos in [("plus", b"+26091500"), ("exponent", b"2.60915e7"), ("zero", b"0")]:
        plan.append((Entry(f"pos_{label}_bgzf.vcf.gz", fam, Kind.PATIENT,
                           f"BGZF: POS {pos.decode()!r} on the HFE line", 3, needle="POS",
                           line=p_line),
                     const(bgzip(set_field(patient_text(), HFE_PATIENT, 1, pos)))))
    off_line = line_of(ptext, OFF_SITE)
    plan += [
        (Entry("pos_plus_off_site.vcf", fam, Kind.PATIENT,
               "POS '+1014228' on a record at no ClinVar site", 3, needle="POS", line=off_line),
         lambda: set_field(patient_text(), OFF_SITE, 1, b"+1014228")),
        (Entry("pos_zero_off_site.vcf.gz", fam, Kind.PATIENT,
               "BGZF: POS '0' on a record at no ClinVar site", 3, needle="POS", line=off_line),
         lambda: bgzip(set_field(patient_text(), OFF_SITE, 1, b"0"))),
        (Entry("trio_pos_exponent.vcf", fam, Kind.PATIENT, "trio: POS '2.60915e7' on HFE", 3,
               needle="POS", line=line_of(trio_text(), HFE_TRIO)),
         lambda: set_field(trio_text(), HFE_TRIO, 1, b"2.60915e7")),
    ]


def _genotypes(plan: Plan) -> None:
    fam, pat = Family.GENOTYPE, Kind.PATIENT
    ptext = patient_text()
    hfe, off, two = (line_of(ptext, p) for p in (HFE_PATIENT, OFF_SITE, TWO_ALT))
    cases = [("letter", HFE_PATIENT, b"1/x", hfe), ("allele_2_of_1", HFE_PATIENT, b"0/2", hfe),
             ("allele_3_of_2", TWO_ALT, b"1/3", two), ("empty_token", HFE_PATIENT, b"1//1", hfe),
             ("trailing_slash", HFE_PATIENT, b"1/", hfe), ("leading_slash", HFE_PATIENT, b"/1",
                                                             hfe),
             ("negative", HFE_PATIENT, b"-1/1", hfe), ("phased_letter", HFE_PATIENT, b"0|a", hfe),
             ("haploid_allele_2", CHRM, b"2", line_of(ptext, CHRM)),
             ("letter_off_site", OFF_SITE, b"1/x", off),
             ("allele_2_of_1_off_site", OFF_SITE, b"0/2", off)]
    for label, prefix, gt, line in cases:
        plan.append((Entry(f"gt_{label}.vcf", fam, pat,
                           f"GT {gt.decode()!r} (VCF: each allele is '.' or an index 0..n_alt)",
                           3, needle=gt.decode(), line=line, deep=label == "letter"),
                     const(set_gt(patient_text(), prefix, gt))))
    plan += [
        (Entry("gt_letter_off_site_bgzf.vcf.gz", fam, pat,
               "BGZF: GT '1/x' on a record at no ClinVar site", 3, needle="1/x", line=off),
         lambda: bgzip(set_gt(patient_text(), OFF_SITE, b"1/x"))),
        (Entry("gt_letter_on_reference_block.vcf", fam, pat,
               "GT '1/x' on a record with ALT '.': malformed whatever the ALT", 3, needle="1/x",
               line=off, deep=True),
         const(set_gt(set_field(ptext, OFF_SITE, 4, b"."), OFF_SITE, b"1/x"))),
        (Entry("gt_allele_1_on_reference_block.vcf", fam, pat,
               "GT '1/1' on a record with ALT '.' (no allele 1 to name)", 3, needle="1/1",
               line=off), const(set_gt(set_field(ptext, OFF_SITE, 4, b"."), OFF_SITE, b"1/1"))),
        (Entry("gt_letter_on_non_ref.vcf", fam, pat, "GT '1/x' on a record with ALT <NON_REF>",
               3, needle="1/x", line=off),
         const(set_gt(set_field(ptext, OFF_SITE, 4, b"<NON_REF>"), OFF_SITE, b"1/x"))),
        (Entry("gt_letter_on_star.vcf", fam, pat, "GT '1/x' on a record with ALT '*'", 3,
               needle="1/x", line=off),
         const(set_gt(set_field(ptext, OFF_SITE, 4, b"*"), OFF_SITE, b"1/x"))),
        (Entry("gt_letter_on_hg19_chrM.vcf", fam, pat,
               "GT '1/x' on the chrM call of a file whose chrM is hg19's (16571 bp)", 3,
               needle="1/x", line=line_of(ptext, CHRM)),
         const(set_gt(ptext.replace(b"length=16569>", b"length=16571>"), CHRM, b"1/x"))),
        (Entry("trio_gt_allele_3_mother.vcf", fam, pat,
               "trio: MOTHER01's GT '0/3' on a one-ALT record", 3, needle="MOTHER01",
               line=line_of(trio_text(), HFE_TRIO)),
         lambda: set_gt(trio_text(), HFE_TRIO, b"0/3", sample=1)),
        (Entry("format_gt_second.vcf", fam, pat,
               "FORMAT DP:GT:GQ on every record (GT not first): read by name", 0,
               check=Check.ORACLE, same_as="control_patient.vcf", deep=True),
         lambda: _reorder_format(patient_text(), [1, 0, 2])),
        (Entry("format_gt_last_bgzf.vcf.gz", fam, pat, "BGZF, FORMAT DP:GQ:GT on every record",
               0, check=Check.ORACLE, same_as="control_patient.vcf"),
         lambda: bgzip(_reorder_format(patient_text(), [1, 2, 0]))),
        (Entry("trio_format_gt_last.vcf", fam, pat, "trio, FORMAT GQ:DP:GT on every record", 0,
               check=Check.ORACLE, same_as="control_trio.vcf"),
         lambda: _reorder_format(trio_text(), [2, 1, 0])),
        (Entry("trio_duplicate_sample.vcf", fam, pat,
               "trio whose #CHROM line names CHILD01 twice", 3, needle="CHILD01",
               line=line_of(trio_text(), b"#CHROM")),
         lambda: trio_text().replace(b"\tMOTHER01\t", b"\tCHILD01\t", 1)),
    ]


def _reorder_format(text: bytes, order: list[int]) -> bytes:
    """Every record's FORMAT keys (and each sample's values) in another order."""
    cut = header_end(text)
    out: list[bytes] = []
    for line in text[cut:].split(b"\n"):
        if not line:
            out.append(line)
            continue
        f = line.split(b"\t")
        for i in range(8, len(f)):
            parts = f[i].split(b":")
            f[i] = b":".join(parts[k] for k in order)
        out.append(b"\t".join(f))
    return text[:cut] + b"\n".join(out)


def _structure(plan: Plan) -> None:
    fam, pat, rk = Family.STRUCTURE, Kind.PATIENT, Kind.RELEASE
    ptext = patient_text()
    hfe, off = line_of(ptext, HFE_PATIENT), line_of(ptext, OFF_SITE)
    t_hfe = line_of(trio_text(), HFE_TRIO)
    r_hfe = line_of(release_text(0), HFE_RELEASE)
    drop_last = lambda line: line.rsplit(b"\t", 1)[0]  # noqa: E731
    add_col = lambda line: line + b"\t0/1:10:10"  # noqa: E731
    long_info = lambda line: line.replace(b"\t.\tGT:", b"\tLONG=" + b"A" * LONG_INFO  # noqa: E731
                                          + b"\tGT:", 1)
    plan += [
        (Entry("too_few_columns.vcf", fam, pat, "HFE line without its sample column", 3,
               needle="columns", line=hfe, deep=True),
         lambda: edit_line(patient_text(), HFE_PATIENT, drop_last)),
        (Entry("too_few_columns_off_site.vcf.gz", fam, pat,
               "BGZF: an off-site line without its sample column", 3, needle="columns", line=off),
         lambda: bgzip(edit_line(patient_text(), OFF_SITE, drop_last))),
        (Entry("too_many_columns.vcf", fam, pat, "HFE line with one more sample column", 3,
               needle="columns", line=hfe),
         lambda: edit_line(patient_text(), HFE_PATIENT, add_col)),
        (Entry("too_many_columns_bgzf.vcf.gz", fam, pat,
               "BGZF: HFE line with one more sample column", 3, needle="columns", line=hfe),
         lambda: bgzip(edit_line(patient_text(), HFE_PATIENT, add_col))),
        (Entry("trio_too_few_columns.vcf", fam, pat, "trio: HFE line with two samples only",
               3, needle="columns", line=t_hfe),
         lambda: edit_line(trio_text(), HFE_TRIO, drop_last)),
        (Entry("release_too_few_columns.vcf", fam, rk, "release: HFE line without INFO", 3,
               needle="columns", line=r_hfe),
         lambda: edit_line(release_text(30), HFE_RELEASE, drop_last)),
        (Entry("release_too_many_columns.vcf", fam, rk, "release: HFE line with a 9th column",
               3, needle="columns", line=r_hfe),
         lambda: edit_line(release_text(31), HFE_RELEASE, lambda ln: ln + b"\tGT")),
        (Entry("long_info.vcf", fam, pat, "a 10 MiB INFO on the HFE line: must be read", 0,
               check=Check.ORACLE, same_as="control_patient.vcf", deep=True),
         lambda: edit_line(patient_text(), HFE_PATIENT, long_info)),
        (Entry("long_info_bgzf.vcf.gz", fam, pat, "BGZF, a 10 MiB INFO on the HFE line", 0,
               check=Check.ORACLE, same_as="control_patient.vcf"),
         lambda: bgzip(edit_line(patient_text(), HFE_PATIENT, long_info), 65280)),
        (Entry("crlf_body.vcf", fam, pat, "LF header, CRLF records (htslib reads it)", 0,
               check=Check.ORACLE, same_as="control_patient.vcf", deep=True),
         lambda: crlf_body(patient_text())),
        (Entry("crlf_body_bgzf.vcf.gz", fam, pat, "BGZF, LF header, CRLF records", 0,
               check=Check.ORACLE, same_as="control_patient.vcf"),
         lambda: bgzip(crlf_body(patient_text()))),
        (Entry("crlf_all.vcf", fam, pat, "every line CRLF", 0, check=Check.ORACLE,
               same_as="control_patient.vcf"), lambda: crlf(patient_text())),
        (Entry("crlf_all_bgzf.vcf.gz", fam, pat, "BGZF, every line CRLF", 0,
               check=Check.ORACLE, same_as="control_patient.vcf"),
         lambda: bgzip(crlf(patient_text()))),
        (Entry("trio_crlf_body.vcf", fam, pat, "trio, LF header, CRLF records", 0,
               check=Check.ORACLE, same_as="control_trio.vcf"), lambda: crlf_body(trio_text())),
        (Entry("release_crlf_all.vcf", fam, rk, "release, every line CRLF", 0,
               check=Check.SNAPSHOT_KEYS), lambda: crlf(release_text(32))),
        (Entry("lone_cr_in_info.vcf", fam, pat, "a lone CR inside the HFE line's INFO", 3,
               needle="CR", line=hfe, deep=True),
         lambda: set_field(patient_text(), HFE_PATIENT, 7, b"A=1\rB=2")),
        (Entry("lone_cr_in_info_bgzf.vcf.gz", fam, pat, "BGZF, a lone CR inside an INFO", 3,
               needle="CR", line=hfe),
         lambda: bgzip(set_field(patient_text(), HFE_PATIENT, 7, b"A=1\rB=2"))),
        (Entry("lone_cr_before_crlf.vcf", fam, pat,
               "a CRLF file whose HFE line ends CR CR LF", 3, needle="CR", line=hfe),
         lambda: edit_line(crlf(patient_text()), HFE_PATIENT, lambda ln: ln + b"\r")),
        (Entry("lone_cr_in_header.vcf", fam, pat, "a lone CR inside a ##contig header line", 3,
               needle="CR", line=line_of(ptext, b"##contig=<ID=chr2,")),
         lambda: patient_text().replace(b"<ID=chr2,", b"<ID=chr2,\r", 1)),
        (Entry("release_lone_cr.vcf", fam, rk, "release: a lone CR inside the HFE INFO", 3,
               needle="CR", line=r_hfe),
         lambda: edit_line(release_text(33), HFE_RELEASE, lambda ln: ln.replace(
             b";CLNVC=", b";\rCLNVC=", 1))),
        (Entry("bom.vcf", fam, pat, "a UTF-8 byte-order mark before ##fileformat", 3,
               needle="byte-order mark", deep=True), lambda: b"\xef\xbb\xbf" + patient_text()),
        (Entry("bom_bgzf.vcf.gz", fam, pat, "BGZF, a UTF-8 BOM before ##fileformat", 3,
               needle="byte-order mark"), lambda: bgzip(b"\xef\xbb\xbf" + patient_text())),
        (Entry("release_bom.vcf", fam, rk, "release with a UTF-8 BOM", 3,
               needle="byte-order mark"), lambda: b"\xef\xbb\xbf" + release_text(34)),
        (Entry("invalid_utf8_in_info.vcf", fam, pat, "bytes FF FE in the HFE line's INFO", 3,
               needle="not a text file"),
         lambda: set_field(patient_text(), HFE_PATIENT, 7, b"X=\xff\xfe")),
        (Entry("invalid_utf8_in_info_bgzf.vcf.gz", fam, pat,
               "BGZF, bytes FF FE in an off-site INFO", 3, needle="not a text file"),
         lambda: bgzip(set_field(patient_text(), OFF_SITE, 7, b"X=\xff\xfe"))),
        (Entry("invalid_utf8_in_header.vcf", fam, pat, "a Latin-1 byte in a header line", 3,
               needle="not a text file"),
         lambda: patient_text().replace(b'Description="Read depth"',
                                        b'Description="Read depth \xe9"', 1)),
        (Entry("release_invalid_utf8.vcf", fam, rk, "release: byte FF in the HFE CLNDN", 3,
               needle="not a text file"),
         lambda: edit_line(release_text(35), HFE_RELEASE, lambda ln: ln.replace(
             b"CLNDN=Hemochromatosis", b"CLNDN=H\xffmochromatosis", 1))),
        (Entry("nul_in_info.vcf", fam, pat, "a NUL byte in the HFE line's INFO", 3, deep=True),
         lambda: set_field(patient_text(), HFE_PATIENT, 7, b"X=\x00")),
        (Entry("nul_in_gt_bgzf.vcf.gz", fam, pat, "BGZF, a NUL byte in the HFE genotype", 3),
         lambda: bgzip(set_gt(patient_text(), HFE_PATIENT, b"1/\x001"))),
        (Entry("nul_in_info_bgzf.vcf.gz", fam, pat, "BGZF, a NUL byte in an off-site INFO", 3),
         lambda: bgzip(set_field(patient_text(), OFF_SITE, 7, b"X=\x00"))),
        (Entry("nul_in_header.vcf", fam, pat, "a NUL byte in a ##FORMAT description", 3),
         lambda: patient_text().replace(b'"Read depth"', b'"Read\x00depth"', 1)),
        (Entry("nul_tail.vcf", fam, pat,
               "4 KiB of NUL bytes after the last line (a crash's zero-filled tail)", 3),
         lambda: patient_text() + b"\x00" * 4096),
        (Entry("nul_tail_bgzf.vcf.gz", fam, pat, "BGZF of text ending in 4 KiB of NUL bytes",
               3), lambda: bgzip(patient_text() + b"\x00" * 4096)),
        (Entry("release_nul.vcf", fam, rk, "release: a NUL byte inside the HFE CLNDN", 3),
         lambda: edit_line(release_text(36), HFE_RELEASE, lambda ln: ln.replace(
             b"CLNDN=Hemochromatosis", b"CLNDN=Hemo\x00chromatosis", 1))),
        (Entry("no_chrom_line.vcf", fam, pat, "the #CHROM line removed", 3, needle="#CHROM",
               deep=True), lambda: without_line(patient_text(), b"#CHROM")),
        (Entry("no_chrom_line_bgzf.vcf.gz", fam, pat, "BGZF, the #CHROM line removed", 3,
               needle="#CHROM"), lambda: bgzip(without_line(patient_text(), b"#CHROM"))),
        (Entry("release_no_chrom_line.vcf", fam, rk, "release, the #CHROM line removed", 3,
               needle="#CHROM"), lambda: without_line(release_text(37), b"#CHROM")),
        (Entry("no_fileformat.vcf", fam, pat, "the ##fileformat line removed", 3,
               needle="fileformat"), lambda: without_line(patient_text(), b"##fileformat")),
        (Entry("no_fileformat_bgzf.vcf.gz", fam, pat, "BGZF, the ##fileformat line removed", 3,
               needle="fileformat"),
         lambda: bgzip(without_line(patient_text(), b"##fileformat"))),
        (Entry("trio_no_fileformat.vcf", fam, pat, "trio, the ##fileformat line removed", 3,
               needle="fileformat"), lambda: without_line(trio_text(), b"##fileformat")),
    ]


def _duplicates_and_mito(plan: Plan) -> None:
    hg19 = (b"##contig=<ID=chrM,length=16569>", b"##contig=<ID=chrM,length=16571>")
    odd = (b"##contig=<ID=chrM,length=16569>", b"##contig=<ID=chrM,length=16570>")
    plan += [
        (Entry("duplicate_record_x6.vcf", Family.DUPLICATE, Kind.PATIENT,
               "the HFE record written 6 times in a row: reported once", 0, check=Check.ORACLE,
               skipped={"duplicate_record": 5}, same_as="control_patient.vcf", deep=True),
         lambda: repeat_line(patient_text(), HFE_PATIENT, 6)),
        (Entry("duplicate_record_x6_bgzf.vcf.gz", Family.DUPLICATE, Kind.PATIENT,
               "BGZF, the HFE record written 6 times in a row", 0, check=Check.ORACLE,
               skipped={"duplicate_record": 5}, same_as="control_patient.vcf"),
         lambda: bgzip(repeat_line(patient_text(), HFE_PATIENT, 6))),
        (Entry("hg19_chrM.vcf", Family.MITOCHONDRION, Kind.PATIENT,
               "##contig chrM length 16571 (UCSC hg19, not rCRS) with the chrM 13520 A>G call "
               "at a ClinVar MT position: not reported", 0, check=Check.ORACLE_WITHOUT_MT,
               skipped={"non_rcrs_mitochondrion": 1}, deep=True),
         lambda: patient_text().replace(*hg19)),
        (Entry("hg19_chrM_bgzf.vcf.gz", Family.MITOCHONDRION, Kind.PATIENT,
               "BGZF, chrM of 16571 bp", 0, check=Check.ORACLE_WITHOUT_MT,
               skipped={"non_rcrs_mitochondrion": 1}),
         lambda: bgzip(patient_text().replace(*hg19))),
        (Entry("chrM_16570.vcf", Family.MITOCHONDRION, Kind.PATIENT,
               "chrM declared 16570 bp: neither rCRS nor hg19, not matched", 0,
               check=Check.ORACLE_WITHOUT_MT, skipped={"unverified_mitochondrion": 1}),
         lambda: patient_text().replace(*odd)),
    ]


@cache
def _plan() -> tuple[tuple[Entry, Maker], ...]:
    plan: Plan = []
    for part in (_control, _truncation, _corruption, _numbers, _genotypes, _structure,
                 _duplicates_and_mito):
        part(plan)
    names = [e.name for e, _ in plan]
    assert len(names) == len(set(names)), "corpus file names must be unique"
    return tuple(plan)


def manifest() -> list[Entry]:
    """Every corpus entry, without writing any file."""
    return [entry for entry, _ in _plan()]


def generate(outdir: Path) -> list[Entry]:
    """Write every corpus file and manifest.json into `outdir`; return the entries."""
    outdir.mkdir(parents=True, exist_ok=True)
    for entry, make in _plan():
        (outdir / entry.name).write_bytes(make())
    entries = manifest()
    (outdir / "manifest.json").write_text(
        json.dumps([e.to_json() for e in entries], indent=1) + "\n")
    return entries


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python tests/make_bad_inputs.py OUTDIR\n")
        return 2
    entries = generate(Path(argv[0]))
    sys.stderr.write(f"{len(entries)} files and manifest.json written to {argv[0]}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
