"""Skip the patient records that cannot match a snapshot, without parsing them.

Most of a WGS is single-base substitutions at positions no snapshot lists. Such a record
needs no splitting, trimming or left-alignment, so it can only match at its own position: when
that position is not among the snapshot's sites, the record only has to be counted. numpy finds
line and tab positions in the decompressed text, tests each record's shape, position and genotype
in bulk, counts the droppable ones, and copies every other line verbatim into a smaller file that
the ordinary columnar reader (`patient_vcf.load`) then parses.

The scan repeats a narrow part of the reader's rules, for the lines it drops only: what a usable
single ALT is (`patient_vcf.skip_sql`, the `complex` test) and how a GT string counts
(`genotype_status`, applied here per distinct GT). tests/test_prefilter.py checks that the counts
and carried alleles are identical with and without the scan; change them together.

Anything unexpected (non-ASCII bytes, CR, blank lines, a column count that varies, a POS that is
not plain digits below 2**31, a header larger than the first chunk, damaged compressed data, a
file whose lines are mostly kept...) returns None: the caller then reads the whole file the
ordinary way, which also gives malformed input its error message and line.
"""
from __future__ import annotations

import mmap
import struct
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from varreinterp import bgzf
from varreinterp.assembly import normalize_contig
from varreinterp.vcfscan import _vcfscan

if TYPE_CHECKING:
    import duckdb
    import numpy as np

_CHUNK_BLOCKS = 64  # BGZF blocks per work item: about 4 MB of text
_CHUNK_BYTES = 4 << 20  # the same for plain text
_MAX_CONTIG_NAME = 256
_GIVE_UP_AFTER = 100_000  # lines: then, if most are kept, read the file the ordinary way


_CONTIG_SHIFT = 40  # site key: contig index << 40 | POS
_MAX_POS = 2**31 - 1  # VCF POS is a 32-bit integer: anything larger is left to the full reader


@dataclass
class Sites:
    """The positions a snapshot lists, by contig matching key ('1', 'X', 'MT', ...)."""

    keys: np.ndarray  # sorted int64: contig index << _CONTIG_SHIFT | pos
    contigs: dict[str, int]

    def contains(self, contig_key: str, pos: np.ndarray) -> np.ndarray:
        import numpy as np

        index = self.contigs.get(contig_key)
        if index is None or not len(self.keys):
            return np.zeros(len(pos), np.bool_)
        needle = pos + (index << _CONTIG_SHIFT)
        # Search only the keys within the needles' range: a small, cache-friendly slice.
        lo, hi = np.searchsorted(self.keys, [needle.min(), needle.max() + 1])
        keys = self.keys[lo:hi]
        if not len(keys):
            return np.zeros(len(pos), np.bool_)
        at = np.minimum(np.searchsorted(keys, needle), len(keys) - 1)
        found: np.ndarray = keys[at] == needle
        return found


def load_sites(con: duckdb.DuckDBPyConnection, relation: str) -> Sites:
    """The (chrom, pos) of a relation with key-form contigs, as sorted keys."""
    import numpy as np

    names = [r[0] for r in con.execute(
        f"SELECT DISTINCT chrom FROM {relation} WHERE chrom IS NOT NULL").fetchall()]
    if not names:
        return Sites(np.zeros(0, np.int64), {})
    index = " ".join("WHEN '" + n.replace("'", "''") + f"' THEN {i}" for i, n in enumerate(names))
    keys = con.execute(f"""
        SELECT (CASE chrom {index} END)::BIGINT << {_CONTIG_SHIFT} | pos AS k
        FROM {relation} WHERE chrom IS NOT NULL AND pos IS NOT NULL""").fetchnumpy()["k"]
    # A snapshot imported from a VCF is in file order: a few sorted runs, which the stable
    # sort (timsort) merges in 0.02 s where a general sort of 3M keys takes 0.17 s.
    return Sites(np.sort(keys, kind="stable"), {n: i for i, n in enumerate(names)})


class _Unsuitable(Exception):
    """The fast path does not apply to this file; read it the ordinary way."""


@dataclass
class Prefiltered:
    """Outcome of a prefilter: `kept` holds the data lines still to parse, in file order, and
    `rids` their 0-based data-line numbers in the original file."""

    kept: Path
    rids: np.ndarray
    records: int
    positions: np.ndarray | None = None  # POS of each kept line, to check the numbering
    dropped: int = 0  # substitutions counted here, absent from `kept`
    filtered: int = 0  # of those, not PASS under --pass-only (counted as such, no calls)
    # GT string -> number of (sample, dropped usable record) with it
    calls: Counter[str] = field(default_factory=Counter)


@dataclass
class _Facts:
    """What the scan of one run of lines learns, per line: where it starts and ends (its
    newline), POS, whether it may be dropped if no site is there (`usable`), whether FILTER
    passes, the GT codes of the selected samples (samples x lines), and the first line of
    each run of one contig name."""

    n: int
    starts: np.ndarray
    ends: np.ndarray
    pos: np.ndarray
    usable: np.ndarray
    filter_ok: np.ndarray
    codes: np.ndarray
    runs: np.ndarray


@dataclass
class _Segment:
    lines: int
    kept_local: np.ndarray
    kept_pos: np.ndarray
    kept_text: bytes
    dropped: int
    filtered: int
    gt_codes: tuple[np.ndarray, np.ndarray]  # (codes, counts) over the selected samples


def prefilter(text_path: Path, header_lines: int, n_samples: int, sample_idx: list[int],
              sites: Sites, pass_only: bool, left_align: bool,
              workdir: Path, keep_contig: Callable[[str], bool] = lambda name: False,
              ) -> Prefiltered | None:
    """Drop and count the substitutions at positions outside `sites`; None when the fast path
    does not apply (plain gzip, unusual layout): the caller then reads everything."""
    try:
        return _prefilter(text_path, header_lines, n_samples, sample_idx, sites, pass_only,
                          left_align, workdir, keep_contig)
    except _Unsuitable:
        return None


def _prefilter(text_path: Path, header_lines: int, n_samples: int, sample_idx: list[int],
               sites: Sites, pass_only: bool, left_align: bool, workdir: Path,
               keep_contig: Callable[[str], bool]) -> Prefiltered:

    with open(text_path, "rb") as fh:
        if fh.read(2) == b"\x1f\x8b":
            fh.seek(0)
            raw = fh.read()  # compressed: a tenth of the text
            if not bgzf.is_bgzf(raw[:16]):
                raise _Unsuitable  # plain gzip cannot be cut: the ordinary reader is as fast
            try:
                bgzf.check_eof(raw)
                found = bgzf.blocks(raw)
            except ValueError:
                raise _Unsuitable from None  # the ordinary reader reports the damage

            def text_of(k: int) -> bytes:
                return b"".join(bgzf.inflate(raw, b)
                                for b in found[k * _CHUNK_BLOCKS:(k + 1) * _CHUNK_BLOCKS])
            n_chunks = (len(found) + _CHUNK_BLOCKS - 1) // _CHUNK_BLOCKS
            return _scan_chunks(text_of, n_chunks, header_lines, n_samples, sample_idx, sites,
                                pass_only, left_align, workdir, keep_contig)
        size = fh.seek(0, 2)
        if not size:
            raise _Unsuitable
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as text:  # plain text: paged

            def plain_of(k: int) -> bytes:
                return text[k * _CHUNK_BYTES:(k + 1) * _CHUNK_BYTES]
            return _scan_chunks(plain_of, (size + _CHUNK_BYTES - 1) // _CHUNK_BYTES,
                                header_lines, n_samples, sample_idx, sites, pass_only,
                                left_align, workdir, keep_contig)


def _scan_chunks(text_of: Callable[[int], bytes], n_chunks: int, header_lines: int,
                 n_samples: int, sample_idx: list[int], sites: Sites, pass_only: bool,
                 left_align: bool, workdir: Path,
                 keep_contig: Callable[[str], bool]) -> Prefiltered:
    """Chunks are scanned on both cores and consumed in file order: each one's kept lines go
    to disk at once, so memory holds a few chunks, whatever the file's size."""
    import numpy as np

    scan = _Scanner(8 + n_samples, sample_idx, sites, pass_only, left_align, keep_contig)

    def work(k: int) -> tuple[bytes, _Segment, bytes]:
        text = text_of(k)
        if not text:
            if k < n_chunks - 1:
                raise _Unsuitable  # empty blocks mid-file (concatenated files): keep it simple
            return b"", scan(b""), b""
        if k == 0:
            start = 0
            for _ in range(header_lines):
                start = text.find(b"\n", start) + 1
                if start == 0:
                    raise _Unsuitable  # header longer than one chunk
        else:
            start = text.find(b"\n") + 1
            if start == 0:
                raise _Unsuitable  # a line longer than a chunk
        end = text.rfind(b"\n") + 1
        if end < start:
            end = start
        return text[:start] if k else b"", scan(text[start:end]), text[end:]

    def cut_line(piece: bytes) -> _Segment | None:
        """The line cut between two chunks (or left unterminated at the end)."""
        if not piece.strip(b"\n"):
            if piece:
                raise _Unsuitable  # a blank line: the ordinary reader decides what it means
            return None
        return scan(piece if piece.endswith(b"\n") else piece + b"\n")

    result = Prefiltered(workdir / "prefiltered.vcf", np.zeros(0, np.int64), 0)
    rids: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    totals: Counter[int] = Counter()
    kept = 0

    def add(seg: _Segment | None, fh: BinaryIO) -> None:
        nonlocal kept
        if seg is None:
            return
        fh.write(seg.kept_text)
        rids.append(seg.kept_local + result.records)
        positions.append(seg.kept_pos)
        result.records += seg.lines
        result.dropped += seg.dropped
        result.filtered += seg.filtered
        kept += len(seg.kept_local)
        codes, counts = seg.gt_codes
        totals.update(dict(zip(codes.tolist(), counts.tolist(), strict=True)))
        # Mostly kept (a gVCF of reference blocks): the ordinary reader does it in one pass.
        if result.records >= _GIVE_UP_AFTER and kept > result.records // 2:
            raise _Unsuitable

    pool = ThreadPoolExecutor(max_workers=2)
    try:
        with open(result.kept, "wb") as fh:
            tail = b""
            for k, (head, seg, next_tail) in enumerate(pool.map(work, range(n_chunks))):
                if k:
                    add(cut_line(tail + head), fh)
                add(seg, fh)
                tail = next_tail
            add(cut_line(tail), fh)
    except (ValueError, struct.error):  # corrupt compressed data: reported by the full read
        raise _Unsuitable from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    result.rids = np.concatenate(rids) if rids else np.zeros(0, np.int64)
    result.positions = np.concatenate(positions) if positions else np.zeros(0, np.int64)
    result.calls = Counter({_gt_text(c): n for c, n in totals.items()})
    return result


def _gt_text(code: int) -> str:  # the inverse of the scanner's GT codes
    length = code >> 24
    return bytes([code & 0xFF, (code >> 8) & 0xFF, (code >> 16) & 0xFF][:length]).decode()


_ASCII_ZEROS = 0x3030303030303030
_HIGH_NIBBLES = 0xF0F0F0F0F0F0F0F0
_GT_COLON = int.from_bytes(b"GT:", "little")
_GT_TAB = int.from_bytes(b"GT\t", "little")
_PASS_TAB = int.from_bytes(b"PASS\t", "little")
_DOT_TAB = int.from_bytes(b".\t", "little")
_COLON = ord(":")


class _Words:
    """A text read 8 bytes at a time: word k holds bytes k..k+7, little-endian (bytes outside
    the text read as 0). One unaligned 64-bit gather replaces eight byte gathers."""

    def __init__(self, text: bytes):
        import numpy as np

        if len(text) < 8:
            raise _Unsuitable
        self.size = len(text)
        self.u64 = np.ndarray((self.size - 7,), dtype="<u8", buffer=text, strides=(1,))

    def at(self, idx: np.ndarray) -> np.ndarray:
        import numpy as np

        top = self.size - 8
        if idx.min() >= 0 and idx.max() <= top:
            words: np.ndarray = self.u64[idx]
            return words
        clipped = np.clip(idx, 0, top)
        left = (clipped - idx).clip(0).astype(np.uint64) * np.uint64(8)
        right = (idx - clipped).clip(0).astype(np.uint64) * np.uint64(8)
        shifted: np.ndarray = (self.u64[clipped] << left) >> right
        return shifted

    def before(self, end: np.ndarray) -> np.ndarray:
        """The 8 bytes before `end`, the last of them in the most significant byte."""
        return self.at(end - 8)


_SLASH, _PIPE = ord("/"), ord("|")
_CALLS = (ord("0"), ord("1"), ord("."))


def _allele_ok(b: np.ndarray) -> np.ndarray:
    ok: np.ndarray = (b == _CALLS[0]) | (b == _CALLS[1]) | (b == _CALLS[2])
    return ok


def _byte(word: np.ndarray, k: int) -> np.ndarray:
    import numpy as np

    return (word >> np.uint64(8 * k)) & np.uint64(0xFF)


class _Scanner:
    """Scans one run of complete lines. Each line has exactly `n_tabs` tabs and a newline, so
    the delimiter positions reshape into a table of field boundaries: `tabs[k]` holds the
    position of every line's k-th tab (k = n_tabs: its newline)."""

    def __init__(self, n_tabs: int, sample_idx: list[int], sites: Sites, pass_only: bool,
                 left_align: bool, keep_contig: Callable[[str], bool] = lambda name: False):
        import numpy as np

        self.n_tabs = n_tabs
        self.sample_idx = sample_idx
        self.sites = sites
        self.pass_only = pass_only
        self.left_align = left_align
        # Contigs whose records are never dropped (a non-rCRS mitochondrion: counted apart).
        self.keep_contig = keep_contig
        self.acgt = np.zeros(256, dtype=np.bool_)
        self.acgt[list(b"ACGTacgt")] = True
        self.acgtn = self.acgt.copy()
        self.acgtn[list(b"Nn")] = True
        self.r8 = np.arange(8, dtype=np.int64)
        # keep_high[w]: the w most significant bytes of a word; keep_low[w]: the w least
        self.keep_high = np.array([0] + [((1 << (8 * w)) - 1) << (8 * (8 - w))
                                         for w in range(1, 9)], dtype=np.uint64)
        self.keep_low = np.array([(1 << (8 * w)) - 1 for w in range(8)] + [(1 << 64) - 1],
                                 dtype=np.uint64)

    def __call__(self, text: bytes) -> _Segment:
        import numpy as np

        if not text:
            empty = np.zeros(0, np.int64)
            return _Segment(0, empty, empty, b"", 0, 0, (empty, empty))
        facts = self._compiled(text) if _vcfscan is not None else self._numpy(text)
        found = self._in_sites(text, facts)
        drop = facts.usable & ~found
        filtered = 0
        called = drop
        if self.pass_only:
            called = drop & facts.filter_ok
            filtered = int(drop.sum() - called.sum())
        gt_codes = np.unique(facts.codes[:, called], return_counts=True)
        kept = np.flatnonzero(~drop)
        arr = np.frombuffer(text, dtype=np.uint8)
        return _Segment(facts.n, kept, facts.pos[kept],
                        _copy_lines(arr, facts.starts[kept], facts.ends[kept] + 1),
                        int(drop.sum()), filtered, gt_codes)

    def _compiled(self, text: bytes) -> _Facts:
        """The facts from the compiled scanner (_vcfscan.c), the same rules in one pass."""
        import numpy as np

        assert _vcfscan is not None
        out = _vcfscan.prefilter(text, self.n_tabs, tuple(self.sample_idx), self.left_align)
        if out is None:
            raise _Unsuitable
        n, starts, ends, pos, usable, filter_ok, codes, runs = out
        return _Facts(n, np.frombuffer(starts, np.int64), np.frombuffer(ends, np.int64),
                      np.frombuffer(pos, np.int64), np.frombuffer(usable, np.bool_),
                      np.frombuffer(filter_ok, np.bool_),
                      np.frombuffer(codes, np.uint64).reshape(n, len(self.sample_idx)).T,
                      np.frombuffer(runs, np.int64))

    def _numpy(self, text: bytes) -> _Facts:
        import numpy as np

        arr = np.frombuffer(text, dtype=np.uint8)
        if not text.isascii() or text.find(b"\r") >= 0:
            raise _Unsuitable  # the full read validates UTF-8 and decides what a CR means
        width = self.n_tabs + 1
        found = np.flatnonzero(arr <= 10)
        if len(found) % width:
            raise _Unsuitable
        # Row k: the positions of line k's tabs, then of its newline; as columns, contiguous.
        tabs = found.reshape(-1, width).T.copy()
        n = tabs.shape[1]
        nl = tabs[-1]
        # Every newline ends a row and no byte below TAB exists: the other delimiters are all
        # tabs, so every line has exactly n_tabs of them.
        if text.count(b"\n") != n or not (arr[nl] == 10).all() or (arr < 9).any():
            raise _Unsuitable  # a line with another column count, a blank line, a NUL...
        starts = np.empty(n, np.int64)
        starts[0] = 0
        starts[1:] = nl[:-1] + 1
        words = _Words(text)
        pos = self._positions(words, tabs)
        usable = self._usable_alleles(arr, words, tabs)
        codes = np.zeros((0, n), np.uint64)
        if self.sample_idx:
            head = words.at(tabs[7] + 1) & np.uint64(0xFFFFFF)
            usable &= (head == np.uint64(_GT_COLON)) | (head == np.uint64(_GT_TAB))
            # All selected samples at once: (samples, lines) arrays.
            sel = np.asarray(self.sample_idx, np.int64)
            s = tabs[8 + sel] + 1
            length = tabs[9 + sel] - s  # the next tab, or the newline
            w = words.at(s.ravel()).reshape(s.shape)
            b0, b1, b2, b3 = (_byte(w, k) for k in range(4))
            one = (length == 1) | ((length >= 2) & (b1 == _COLON))
            three = (~one & ~((length >= 3) & (b2 == _COLON))
                     & ((length == 3) | ((length >= 4) & (b3 == _COLON))))
            ok = (length >= 1) & (b0 != _COLON) & (one | three)
            # Only well-formed calls of a one-ALT record are counted here; anything else
            # ('0/2', '1/x') is left to the full reader, which refuses it with its line.
            ok &= np.where(three, _allele_ok(b0) & ((b1 == _SLASH) | (b1 == _PIPE))
                           & _allele_ok(b2), _allele_ok(b0))
            usable &= ok.all(axis=0)
            codes = np.where(three, (w & np.uint64(0xFFFFFF)) | np.uint64(3 << 24),
                             b0 | np.uint64(1 << 24))
        filter_ok = np.ones(n, np.bool_)
        if self.pass_only:
            fw = words.at(tabs[5] + 1)
            filter_ok = (((fw & np.uint64(0xFF)) == np.uint64(9))  # empty: missing, like '.'
                         | ((fw & np.uint64(0xFFFF)) == np.uint64(_DOT_TAB))
                         | ((fw & np.uint64(0xFFFFFFFFFF)) == np.uint64(_PASS_TAB)))
        return _Facts(n, starts, nl, pos, usable, filter_ok, codes,
                      self._runs(words, starts, tabs))

    def _usable_alleles(self, arr: np.ndarray, words: _Words, tabs: np.ndarray) -> np.ndarray:
        """One ALT that normalization leaves where it is: a substitution, or a short allele of
        plain bases with nothing to trim (and, when indels are left-aligned, no length change).
        Anything else (several ALTs, symbolic, long...) is left to the ordinary reader."""
        import numpy as np

        r0, a0 = tabs[2] + 1, tabs[3] + 1
        rlen, alen = tabs[3] - r0, tabs[4] - a0
        usable: np.ndarray = (rlen == 1) & (alen == 1) & self.acgt[arr[r0]] & self.acgt[arr[a0]]
        rest = np.flatnonzero(~usable & (rlen >= 1) & (alen >= 1) & (rlen <= 8) & (alen <= 8))
        if not len(rest):
            return usable
        rl, al = rlen[rest], alen[rest]
        # The 8 bytes before each field's closing tab: its bases, right-aligned.
        ref = words.before(tabs[3][rest]).view(np.uint8).reshape(-1, 8)
        alt = words.before(tabs[4][rest]).view(np.uint8).reshape(-1, 8)
        plain = ((self.acgtn[ref] | (self.r8 < 8 - rl[:, None])).all(axis=1)
                 & (self.acgtn[alt] | (self.r8 < 8 - al[:, None])).all(axis=1))
        rows = np.arange(len(rest))
        upper = np.uint8(0xDF)
        same_first = (ref[rows, 8 - rl] & upper) == (alt[rows, 8 - al] & upper)
        same_last = (ref[:, 7] & upper) == (alt[:, 7] & upper)
        plain &= ~((rl > 1) & (al > 1) & (same_first | same_last))  # would be trimmed
        if self.left_align:
            plain &= rl == al
        usable[rest] = plain
        return usable

    def _positions(self, words: _Words, tabs: np.ndarray) -> np.ndarray:
        """POS of every line, parsed eight digits at a time (SWAR) from the bytes before its
        closing tab; a POS that is not 1 to 2**31-1 in plain digits makes the chunk unsuitable."""
        import numpy as np

        end = tabs[1]
        width = end - tabs[0] - 1
        if width.min() < 1 or width.max() > 10:
            raise _Unsuitable
        pos = self._digits(words.before(end), np.minimum(width, 8))
        long = np.flatnonzero(width > 8)  # 100,000,000 and above
        if len(long):
            pos[long] += self._digits(words.before(end[long] - 8), width[long] - 8) * 100_000_000
        if pos.min() < 1 or pos.max() > _MAX_POS:
            raise _Unsuitable
        return pos

    def _digits(self, raw: np.ndarray, count: np.ndarray) -> np.ndarray:
        """The number written by the `count` (0-8) most significant bytes of each word."""
        import numpy as np

        keep = self.keep_high[count]
        word = (raw & keep) | (np.uint64(_ASCII_ZEROS) & ~keep)  # leading zeros elsewhere
        high = np.uint64(_HIGH_NIBBLES)
        zeros = np.uint64(_ASCII_ZEROS)
        if not (((word & high) == zeros) & (((word + np.uint64(0x0606060606060606)) & high)
                                            == zeros)).all():
            raise _Unsuitable
        d = word - zeros
        d = (d * np.uint64(10) + (d >> np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
        d = (d * np.uint64(100) + (d >> np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
        d = (d * np.uint64(10000) + (d >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
        parsed: np.ndarray = d.astype(np.int64)
        return parsed

    def _runs(self, words: _Words, starts: np.ndarray, tabs: np.ndarray) -> np.ndarray:
        """The first line of each run of lines with one contig name (a sorted VCF has one run
        per contig): names are compared line to line, 8 bytes at a time."""
        import numpy as np

        n = len(starts)
        name_len = tabs[0] - starts
        if name_len.min() < 1 or name_len.max() > _MAX_CONTIG_NAME:
            raise _Unsuitable
        change = np.zeros(n, np.bool_)
        change[0] = True
        change[1:] = name_len[1:] != name_len[:-1]
        for k in range(0, int(name_len.max()), 8):
            word = words.at(starts + k) & self.keep_low[np.clip(name_len - k, 0, 8)]
            change[1:] |= word[1:] != word[:-1]
        runs: np.ndarray = np.flatnonzero(change)
        return runs

    def _in_sites(self, text: bytes, facts: _Facts) -> np.ndarray:
        """Whether each record's (contig, POS) is a snapshot site; names decoded once a run."""
        import numpy as np

        found = np.zeros(facts.n, np.bool_)
        runs = np.append(facts.runs, facts.n)
        for a, b in zip(runs[:-1].tolist(), runs[1:].tolist(), strict=True):
            start = int(facts.starts[a])
            try:
                name = text[start:text.index(b"\t", start)].decode()
            except UnicodeDecodeError:
                raise _Unsuitable from None
            found[a:b] = True if self.keep_contig(name) else self.sites.contains(
                normalize_contig(name), facts.pos[a:b])
        return found


def _copy_lines(arr: np.ndarray, begin: np.ndarray, end: np.ndarray) -> bytes:
    """The bytes of lines [begin, end) concatenated, gathered in one vectorized copy."""
    import numpy as np

    lengths = end - begin
    total = int(lengths.sum())
    if not total:
        return b""
    dst_start = np.cumsum(lengths) - lengths
    src = np.repeat(begin - dst_start, lengths) + np.arange(total, dtype=np.int64)
    return arr[src].tobytes()
