"""varreinterp.linescan feeds the byte-level readers: whatever the packing (plain text, plain
gzip, BGZF with any block layout) and however the text is cut into chunks, the chunks it yields
hold exactly the data lines, in file order, CRLF turned into LF and a missing last line end
added; each Chunk.lines is its text's line count. Damage and bad lines are InputErrors naming
the file and the line, never a traceback or a shorter text."""

from __future__ import annotations

import gzip
import struct
import tempfile
import zlib
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pysam.libcbgzf import BGZFile

from varreinterp import bgzf, linescan
from varreinterp.errors import ExitCode, InputError
from varreinterp.linescan import Chunk, LineError, map_lines

PACKINGS = ["plain", "gzip", "bgzf_htslib", "bgzf_cut"]

# ------------------------------------------------------------------------------ writing files


def bgzf_block(piece: bytes) -> bytes:
    """One BGZF member holding `piece` (SAM/BAM specification 4.1): a gzip member with the
    "BC" extra field giving the member size minus one."""
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    deflated = packer.compress(piece) + packer.flush()
    return (struct.pack("<4BI2BH2BHH", 31, 139, 8, 4, 0, 0, 255, 6, 66, 67, 2,
                        len(deflated) + 25)
            + deflated + struct.pack("<II", zlib.crc32(piece), len(piece)))


def write_cut_bgzf(path: Path, data: bytes, cuts: Sequence[int]) -> Path:
    """BGZF whose blocks end at `cuts` (sorted offsets; a repeated offset makes an empty block
    in the middle), then the end-of-file block."""
    bounds = [0, *cuts, len(data)]
    pieces = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    path.write_bytes(b"".join(bgzf_block(p) for p in pieces) + bgzf.EOF_MARKER)
    assert gzip.decompress(path.read_bytes()) == data
    return path


def write_htslib_bgzf(path: Path, data: bytes, size: int) -> Path:
    """BGZF written by htslib, one block per `size` bytes (a flush ends a block)."""
    with BGZFile(str(path), "wb", None) as fh:
        for i in range(0, len(data), size):
            fh.write(data[i:i + size])
            fh.flush()
    assert gzip.decompress(path.read_bytes()) == data
    return path


def write(path: Path, data: bytes, packing: str, block: int = 7,
          cuts: Sequence[int] = ()) -> Path:
    if packing == "plain":
        path.write_bytes(data)
    elif packing == "gzip":
        path.write_bytes(gzip.compress(data))
    elif packing == "bgzf_htslib":
        write_htslib_bgzf(path, data, block)
    else:
        write_cut_bgzf(path, data, cuts or range(block, len(data), block))
    return path


@contextmanager
def small_chunks(chunk_bytes: int, group_blocks: int) -> Iterator[None]:
    """Chunks of a few bytes (plain text) or a few blocks (BGZF), so that lines straddle them."""
    with mock.patch.object(linescan, "_CHUNK_BYTES", chunk_bytes), \
            mock.patch.object(linescan, "_GROUP_BLOCKS", group_blocks):
        yield


def whole(text: bytes) -> bytes:
    return text


def read_chunks(path: Path, skip: int, source: Path | None = None) -> list[Chunk[bytes]]:
    return list(map_lines(path, skip, whole, path.parent, source))


def expected_data(data: bytes, skip: int) -> bytes:
    """What the chunks must hold: the text after `skip` line ends, CRLF as LF, ending in LF."""
    start = 0
    for _ in range(skip):
        start = data.index(b"\n", start) + 1
    body = data[start:].replace(b"\r\n", b"\n")
    return body + b"\n" if body and not body.endswith(b"\n") else body


def assert_chunks(chunks: list[Chunk[bytes]], expected: bytes) -> None:
    for chunk in chunks:
        assert chunk.result.count(b"\n") == chunk.lines
        assert chunk.result == b"" or chunk.result.endswith(b"\n"), "a chunk cut a line"
    assert b"".join(c.result for c in chunks) == expected


# ------------------------------------------------------------------------------ random texts

LINE_CHARS = st.sampled_from(list("ACGT\t.:/|,;=01239#x") + ["é", "\u2603"])
LINE = st.lists(LINE_CHARS, max_size=40).map("".join)  # an empty one is a blank line


@dataclass
class Case:
    data: bytes
    skip: int


@st.composite
def texts(draw: st.DrawFn) -> Case:
    header = draw(st.lists(LINE.map(lambda s: "#" + s), max_size=4))
    lines = draw(st.lists(LINE, max_size=30))
    crlf = draw(st.lists(st.booleans(), min_size=len(header) + len(lines),
                         max_size=len(header) + len(lines)))
    ends = ["\r\n" if c else "\n" for c in crlf]
    text = "".join(h + e for h, e in zip(header, ends, strict=False))
    body = [line + e for line, e in zip(lines, ends[len(header):], strict=True)]
    unfinished: bool = draw(st.booleans())
    if body and unfinished:  # no line end after the last line
        body[-1] = lines[-1]
    return Case((text + "".join(body)).encode("utf-8"), len(header))


PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(case=texts(), packing=st.sampled_from(PACKINGS), block=st.integers(1, 40),
       chunk_bytes=st.integers(1, 64), group_blocks=st.integers(1, 3))
def test_chunks_hold_exactly_the_data_lines(case: Case, packing: str, block: int,
                                            chunk_bytes: int, group_blocks: int) -> None:
    with tempfile.TemporaryDirectory(prefix="vri-linescan-") as tmp:
        path = write(Path(tmp) / "in.txt", case.data, packing, block)
        with small_chunks(chunk_bytes, group_blocks):
            chunks = read_chunks(path, case.skip)
    assert_chunks(chunks, expected_data(case.data, case.skip))


@PROPERTY
@given(case=texts(), cuts=st.lists(st.integers(0, 2000), max_size=12),
       group_blocks=st.integers(1, 3))
def test_any_block_layout_including_empty_blocks(case: Case, cuts: list[int],
                                                 group_blocks: int) -> None:
    """Blocks end anywhere, even inside a UTF-8 character, a CRLF or the header; some are
    empty (a repeated cut): only the text counts."""
    points = sorted(min(c, len(case.data)) for c in cuts)
    with tempfile.TemporaryDirectory(prefix="vri-linescan-") as tmp:
        path = write_cut_bgzf(Path(tmp) / "in.vcf.gz", case.data, points)
        with small_chunks(1 << 20, group_blocks):
            chunks = read_chunks(path, case.skip)
    assert_chunks(chunks, expected_data(case.data, case.skip))


@pytest.mark.parametrize("packing", PACKINGS)
def test_default_chunk_sizes_on_a_bigger_text(tmp_path: Path, packing: str) -> None:
    """With the real sizes (4 MB chunks, 64-block groups) lines still straddle the cuts:
    ~10 MB of text makes several of each."""
    lines = [f"1\t{i}\t.\tA\tC\t.\tPASS\tX={'y' * (i % 300)}\tGT\t0/1" for i in range(60_000)]
    data = ("##fileformat=VCFv4.2\n#CHROM\n" + "\r\n".join(lines)).encode()
    path = write(tmp_path / "big.vcf", data, packing, block=65_000)
    chunks = read_chunks(path, 2)
    assert len(chunks) > 2
    assert_chunks(chunks, expected_data(data, 2))
    assert sum(c.lines for c in chunks) == len(lines)


@pytest.mark.parametrize("packing", PACKINGS)
def test_header_only_and_empty_data(tmp_path: Path, packing: str) -> None:
    path = write(tmp_path / "h.vcf", b"##a\n#b\n", packing, block=3)
    assert b"".join(c.result for c in read_chunks(path, 2)) == b""
    empty = write(tmp_path / "e.vcf", b"", packing, block=3, cuts=[0])
    assert b"".join(c.result for c in read_chunks(empty, 0)) == b""


# ------------------------------------------------------------------------------ bad lines


def lines_of(n: int, width: int = 11) -> list[bytes]:
    return [f"r{i}\t{'v' * (i % width)}".encode() for i in range(n)]


@pytest.mark.parametrize("packing", PACKINGS)
@pytest.mark.parametrize("chunk_bytes", [5, 16, 1 << 20])
@pytest.mark.parametrize("bad", [0, 7, 29])
@pytest.mark.parametrize("at", ["start", "middle", "last"])
def test_lone_cr_names_its_line(tmp_path: Path, packing: str, chunk_bytes: int, bad: int,
                                at: str) -> None:
    header = [b"##h1", b"##h2\r", b"#h3"]  # a CRLF in the header counts as one line end
    data = lines_of(30)
    where = {"start": 0, "middle": 2, "last": len(data[bad]) - 1}[at]
    data[bad] = data[bad][:where] + b"\r" + data[bad][where:]
    text = b"\n".join(header + data) + b"\n"
    path = write(tmp_path / "cr.vcf", text, packing, block=9)
    with small_chunks(chunk_bytes, 1), pytest.raises(InputError) as info:
        read_chunks(path, len(header))
    assert info.value.line == len(header) + bad + 1
    assert info.value.path == str(path)
    assert "carriage return" in info.value.message
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_lone_cr_on_the_last_line_without_line_end(tmp_path: Path) -> None:
    """A CR inside the unfinished last line is refused like any other."""
    path = write(tmp_path / "cr.vcf", b"#h\nA\tB\nC\rD", "plain")
    with pytest.raises(InputError) as info:
        read_chunks(path, 1)
    assert info.value.line == 3


@pytest.mark.parametrize("packing", ["plain", "bgzf_htslib"])
def test_cr_as_the_last_byte_is_refused_like_plain_gzip(tmp_path: Path, packing: str) -> None:
    path = write(tmp_path / "cr.vcf", b"#h\nA\tB\nC\tD\r", packing)
    with pytest.raises(InputError) as info:
        read_chunks(path, 1)
    assert info.value.line == 3


def test_cr_as_the_last_byte_of_plain_gzip_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "cr.vcf.gz", b"#h\nA\tB\nC\tD\r", "gzip")
    with pytest.raises(InputError) as info:
        read_chunks(path, 1)
    assert info.value.line == 3


def raising_on(marker: bytes, seen: list[bytes]) -> Callable[[bytes], bytes]:
    """A scan that raises LineError about the line holding `marker` (and records the chunks
    it scanned without error)."""
    def scan(text: bytes) -> bytes:
        for k, line in enumerate(text.split(b"\n")):
            if marker in line:
                raise LineError(k, f"bad line {line!r}")
        seen.append(text)
        return text
    return scan


@pytest.mark.parametrize("packing", PACKINGS)
@pytest.mark.parametrize("chunk_bytes", [3, 20, 64])
@pytest.mark.parametrize("bad", [25, 59])
def test_line_error_in_a_later_chunk_names_its_line(tmp_path: Path, packing: str,
                                                    chunk_bytes: int, bad: int) -> None:
    data = lines_of(60)
    data[bad] = b"BAD" + data[bad]
    for blank in (3, 10, 40):  # blank lines count in the numbering
        data[blank] = b""
    header = [b"##one", b"##two", b"#three", b"#four"]
    path = write(tmp_path / "x.vcf", b"\n".join(header + data) + b"\n", packing, block=11)
    seen: list[bytes] = []
    got: list[Chunk[bytes]] = []
    with small_chunks(chunk_bytes, 2), pytest.raises(InputError) as info:
        for chunk in map_lines(path, len(header), raising_on(b"BAD", seen), tmp_path):
            got.append(chunk)
    assert got, "the error should come from a later chunk"
    assert sum(c.lines for c in got) <= bad
    assert info.value.line == len(header) + bad + 1
    assert info.value.path == str(path)
    assert "bad line" in info.value.message


@pytest.mark.parametrize("packing", ["plain", "bgzf_cut"])
def test_line_error_with_source_and_line_of(tmp_path: Path, packing: str) -> None:
    """Errors name `source` and `line_of(i)` of the i-th data line (the prefilter's kept lines
    stand for lines of another file)."""
    data = lines_of(40)
    data[33] = b"BAD"
    path = write(tmp_path / "kept.txt", b"\n".join(data) + b"\n", packing, block=13)
    source = tmp_path / "patient.vcf"
    with small_chunks(17, 1), pytest.raises(InputError) as info:
        list(map_lines(path, 0, raising_on(b"BAD", []), tmp_path, source, lambda i: 1000 + 3 * i))
    assert info.value.path == str(source)
    assert info.value.line == 1000 + 3 * 33


@pytest.mark.parametrize("packing", PACKINGS)
@pytest.mark.parametrize(("data", "skip"), [
    (b"", 1), (b"#a\n#b\n", 3), (b"#a", 2), (b"#a\n#b\n#c", 5)])
def test_file_ending_inside_its_header(tmp_path: Path, packing: str, data: bytes,
                                       skip: int) -> None:
    if not data and packing == "bgzf_htslib":
        path = write_cut_bgzf(tmp_path / "h.vcf.gz", data, [])
    else:
        path = write(tmp_path / "h.vcf", data, packing, block=2)
    with pytest.raises(InputError) as info:
        read_chunks(path, skip)
    assert "ends inside its header" in info.value.message
    assert info.value.path == str(path)


# ------------------------------------------------------------------------------ damage


def damaged(tmp_path: Path, how: str) -> Path:
    """A BGZF (or gzip) file of 40 lines, damaged in one way."""
    data = b"#h\n" + b"\n".join(lines_of(40)) + b"\n"
    good = write_cut_bgzf(tmp_path / "good.vcf.gz", data, range(50, len(data), 50))
    raw = good.read_bytes()
    blocks = bgzf.blocks(raw)
    mid = blocks[len(blocks) // 2]
    if how == "no_eof_marker":  # cut at a block boundary, as a killed bgzip leaves it
        out = raw[:-len(bgzf.EOF_MARKER)]
    elif how == "cut_mid_block":
        out = raw[:mid[0] + 20]
    elif how == "flipped_data_byte":
        i = mid[2] + 3
        out = raw[:i] + bytes([raw[i] ^ 0x10]) + raw[i + 1:]
    elif how == "flipped_header_block_byte":  # inside the block holding the header line
        i = blocks[0][2] + 2
        out = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1:]
    elif how == "wrong_isize":
        i = mid[1] - 4
        out = raw[:i] + struct.pack("<I", 1 + struct.unpack_from("<I", raw, i)[0]) + raw[i + 4:]
    elif how == "wrong_crc":
        i = mid[1] - 8
        out = raw[:i] + struct.pack("<I", 1 ^ struct.unpack_from("<I", raw, i)[0]) + raw[i + 4:]
    elif how == "garbage_between_blocks":
        out = raw[:mid[0]] + b"\x1f\x8bgarbage" + raw[mid[0]:]
    elif how == "bad_block_size":
        i = mid[0] + 16
        out = raw[:i] + struct.pack("<H", 60000) + raw[i + 2:]
    elif how == "gzip_cut_short":
        whole_gz = gzip.compress(data * 20)
        out = whole_gz[:len(whole_gz) // 2]
    elif how == "gzip_flipped_byte":
        whole_gz = gzip.compress(data)
        i = len(whole_gz) // 2
        out = whole_gz[:i] + bytes([whole_gz[i] ^ 0x04]) + whole_gz[i + 1:]
    else:
        raise AssertionError(how)
    path = tmp_path / f"{how}.vcf.gz"
    path.write_bytes(out)
    return path


DAMAGE = ["no_eof_marker", "cut_mid_block", "flipped_data_byte", "flipped_header_block_byte",
          "wrong_isize", "wrong_crc", "garbage_between_blocks", "bad_block_size",
          "gzip_cut_short", "gzip_flipped_byte"]


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("group_blocks", [1, 64])
def test_damaged_compressed_file_is_an_input_error(tmp_path: Path, how: str,
                                                   group_blocks: int) -> None:
    path = damaged(tmp_path, how)
    source = tmp_path / "named.vcf.gz"
    with small_chunks(1 << 20, group_blocks), pytest.raises(InputError) as info:
        read_chunks(path, 1, source=source)
    assert info.value.path == str(source)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("what", ["damage", "lone_cr"])
def test_plain_gzip_errors_name_source_and_line_of(tmp_path: Path, what: str) -> None:
    data = b"\n".join(lines_of(40)) + b"\n"
    if what == "damage":
        path = damaged(tmp_path, "gzip_cut_short")
    else:
        path = write(tmp_path / "kept.txt.gz", data.replace(b"r33\t", b"r33\r\t"), "gzip")
    source = tmp_path / "patient.vcf"
    with pytest.raises(InputError) as info:
        list(map_lines(path, 0, whole, tmp_path, source, lambda i: 1000 + 3 * i))
    assert info.value.path == str(source)
    if what == "lone_cr":
        assert info.value.line == 1000 + 3 * 33


def test_stopping_early_is_clean(tmp_path: Path) -> None:
    """A consumer that stops after the first chunk (an error further up) leaves no worker
    running and the file closed."""
    data = b"\n".join(lines_of(200)) + b"\n"
    path = write(tmp_path / "x.txt", data, "plain")
    with small_chunks(16, 1):
        it = cast(Generator[Chunk[bytes], None, None], map_lines(path, 0, whole, tmp_path))
        first = next(it)
        it.close()
    assert data.startswith(first.result)
