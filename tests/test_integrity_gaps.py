"""Four input-integrity gaps (issue 10, "nothing read partially, nothing misread"), each pinned
end to end through the CLI: a refusal is exit 3 (bad input) or 4 (store), one error line naming
the file, nothing on stdout; never exit 70, never a silent answer from the wrong data.

1. A damaged manifest of the newest release: `latest` (and a diff's default --to) used to mean
   the release before it, so annotate ran against the old release and `diff --to latest`
   compared a release with itself ("0 changes", exit 0).
2. Invalid deflate data in the first compressed block (BGZF block 0, or a plain-gzip member):
   the BCF probe let zlib.error out (exit 70).
3. A BCF cut at a BGZF block boundary: htslib's header read raised "(unknown path): no BGZF EOF
   marker" (exit 74) while choosing the snapshot.
4. A corrupt bgzipped --reference FASTA: a ValueError from pysam (exit 70) and htslib's raw
   `[E::...]` lines on stderr."""

from __future__ import annotations

import gzip
import itertools
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

import make_bad_inputs as corpus
import pytest
from conftest import SAMPLES, CliResult, invoke

from varreinterp.errors import InputError

A = "clinvar-GRCh38-2024-01-07"
B = "clinvar-GRCh38-2024-06-02"
PATIENT = SAMPLES / "patient_single.vcf.gz"


@pytest.fixture(scope="module")
def two_releases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the two sample ClinVar releases (copied by tests that change it)."""
    store = tmp_path_factory.mktemp("gaps") / "store"
    for release in ("clinvar_GRCh38_2024-01-07.vcf", "clinvar_GRCh38_2024-06-02.vcf"):
        res = invoke(store, "snapshot", "add", SAMPLES / release)
        assert res.code == 0, res.err
    return store


def store_copy(store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    return copy


def assert_refused(res: CliResult, code: int, path: Path, args: Sequence[object] = ()) -> str:
    """`code`, nothing on stdout, one stderr line naming `path`; returns that line."""
    assert res.code == code, (args, res.code, res.err)
    assert res.out == "", (args, res.out)
    lines = res.err.splitlines()
    assert len(lines) == 1, (args, res.err)
    assert lines[0].startswith("varreinterp: error: "), (args, lines[0])
    assert str(path) in lines[0], (args, str(path), lines[0])
    return lines[0]


def tsv_snapshots(out: str) -> set[str]:
    """The `snapshot` column of an annotate TSV (after its provenance line)."""
    lines = out.splitlines()
    assert lines[0].startswith("#tool=varreinterp"), lines[0]
    columns = lines[1].split("\t")
    return {dict(zip(columns, ln.split("\t"), strict=True))["snapshot"] for ln in lines[2:]}


# ------------------------------------------------------------------------------ 1. store
@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_latest_is_refused_while_the_newest_manifest_is_damaged(
        two_releases: Path, tmp_path: Path, damage: str) -> None:
    store = store_copy(two_releases, tmp_path)
    manifest = store / "snapshots" / B / "manifest.json"
    text = manifest.read_bytes()
    manifest.write_bytes(text[:len(text) // 2] if damage == "truncated" else b"\x00\xff{]")
    cases: list[list[str | Path]] = [
        ["annotate", PATIENT, "--snapshot", "latest", "-f", "tsv"],
        ["annotate", PATIENT, "-f", "tsv"],  # --snapshot defaults to latest
        ["diff", PATIENT, "--from", "2024-01-07", "--to", "latest", "-f", "tsv"],
        ["diff", PATIENT, "--from", A, "-f", "tsv"],  # --to defaults to the newest
        ["snapshot", "show", "latest:GRCh38"],
        ["snapshot", "show", "previous"]]
    for args in cases:
        line = assert_refused(invoke(store, *args), 4, manifest, args)
        assert "cannot be read" in line, line
    # The intact release, named in full, is still usable on its own.
    res = invoke(store, "annotate", PATIENT, "--snapshot", A, "-f", "tsv")
    assert res.code == 0, res.err
    assert tsv_snapshots(res.out) == {A}


def test_a_damaged_snapshot_of_another_build_does_not_block_latest(
        two_releases: Path, tmp_path: Path) -> None:
    store = store_copy(two_releases, tmp_path)
    text = (SAMPLES / "clinvar_GRCh38_2024-06-02.vcf").read_text()
    g37 = tmp_path / "clinvar_GRCh37.vcf"
    g37.write_text(text.replace("##reference=GRCh38", "##reference=GRCh37")
                   .replace("##fileDate=2024-06-02", "##fileDate=2024-09-09"))
    res = invoke(store, "snapshot", "add", g37)
    assert res.code == 0, res.err
    assert (store / "snapshots" / "clinvar-GRCh37-2024-09-09").is_dir()
    (store / "snapshots" / "clinvar-GRCh37-2024-09-09" / "manifest.json").write_text("{")
    res = invoke(store, "annotate", PATIENT, "--snapshot", "latest", "-f", "tsv")
    assert res.code == 0, res.err
    assert tsv_snapshots(res.out) == {B}
    res = invoke(store, "annotate", PATIENT, "--snapshot", "latest:GRCh37", "-f", "tsv")
    assert res.code == 4, res.err


# ------------------------------------------------------------------------------ 2. first block
def bad_first_block(tmp_path: Path, packing: str) -> Path:
    """The sample patient with invalid deflate data in its first compressed block."""
    text = gzip.decompress(PATIENT.read_bytes())
    if packing == "bgzf":
        packed = corpus.bgzip(text)
        damaged = corpus.flip(packed, corpus.find_flip(packed, 0, still_inflates=False))
    else:
        packed = gzip.compress(text, mtime=0)
        damaged = corpus.flip(packed, corpus.find_gzip_flip(packed))
    path = tmp_path / f"first_block_{packing}.vcf.gz"
    path.write_bytes(damaged)
    return path


@pytest.mark.parametrize("command", ["annotate", "history", "cohort-add", "diff"])
@pytest.mark.parametrize("packing", ["bgzf", "gzip"])
def test_invalid_deflate_data_in_the_first_block_is_bad_input(
        two_releases: Path, tmp_path: Path, packing: str, command: str) -> None:
    store = store_copy(two_releases, tmp_path)
    bad = bad_first_block(tmp_path, packing)
    commands: dict[str, list[str | Path]] = {
        "annotate": ["annotate", bad, "-f", "tsv"],
        "history": ["history", bad, "-f", "tsv"],
        "cohort-add": ["cohort", "add", bad, "--baseline", A],
        "diff": ["diff", bad, "--from", A, "--to", B, "-f", "tsv"],
    }
    args = commands[command]
    assert_refused(invoke(store, *args), 3, bad, args)
    assert not (store / "cohort" / "patients.json").exists()


# ------------------------------------------------------------------------------ 3. BCF cut
@pytest.fixture
def cut_bcf(tmp_path: Path) -> tuple[Path, Path]:
    """The sample patient as BCF (written by htslib), and a copy cut at its last block
    boundary: every data block whole, the 28-byte BGZF end-of-file block gone."""
    pysam = pytest.importorskip("pysam", reason="pysam writes the BCF")
    whole = tmp_path / "patient.bcf"
    with pysam.VariantFile(str(PATIENT)) as src, \
            pysam.VariantFile(str(whole), "wb", header=src.header) as dst:
        for rec in src:
            dst.write(rec)
    raw = whole.read_bytes()
    assert raw.endswith(corpus.EOF_MARKER)
    cut = tmp_path / "cut.bcf"
    cut.write_bytes(raw[:-len(corpus.EOF_MARKER)])
    return whole, cut


def test_peek_assembly_names_a_cut_bcf(cut_bcf: tuple[Path, Path]) -> None:
    from varreinterp.assembly import Assembly
    from varreinterp.patient_vcf import peek_assembly

    whole, cut = cut_bcf
    assert peek_assembly(whole) is Assembly.GRCh38  # the BCF branch reads a good header
    with pytest.raises(InputError) as caught:
        peek_assembly(cut)
    assert caught.value.path == str(cut)
    assert "end-of-file marker" in str(caught.value)


def test_a_bcf_cut_at_a_block_boundary_is_bad_input_on_every_command(
        two_releases: Path, tmp_path: Path, cut_bcf: tuple[Path, Path]) -> None:
    store = store_copy(two_releases, tmp_path)
    whole, cut = cut_bcf
    res = invoke(store, "annotate", whole, "--snapshot", "latest", "-f", "tsv")
    assert res.code == 0, res.err  # the uncut BCF is read: the refusal below is the cut
    cases: list[list[str | Path]] = [
        ["annotate", cut, "--snapshot", "latest", "-f", "tsv"],  # peeks at the build first
        ["annotate", cut, "--snapshot", A, "-f", "tsv"],
        ["diff", cut, "--from", "2024-01-07", "-f", "tsv"],
        ["history", cut, "-f", "tsv"],
        ["cohort", "add", cut, "--baseline", A]]
    for args in cases:
        line = assert_refused(invoke(store, *args), 3, cut, args)
        assert "end-of-file marker" in line, line
    assert not (store / "cohort" / "patients.json").exists()


# ------------------------------------------------------------------------------ 4. FASTA
def fasta_and_vcf(tmp_path: Path, state: str) -> tuple[Path, Path]:
    """A bgzipped one-contig FASTA (several BGZF blocks) and a VCF with a deletion that must be
    left-aligned against it. `state`: intact; corrupt_indexed (.fai/.gzi built before the
    damage: only reading the bases meets it); corrupt_unindexed (indexing meets it)."""
    import pysam

    seq = "".join(random.Random(7).choices("ACGT", k=300_000))
    folder = tmp_path / state
    folder.mkdir()
    plain = folder / "ref.fa"
    plain.write_text(">chr7\n" + "\n".join(seq[i:i + 60] for i in range(0, len(seq), 60))
                     + "\n")
    fasta = folder / "ref.fa.gz"
    pysam.tabix_compress(str(plain), str(fasta), force=True)
    plain.unlink()
    pos = 200_000
    if state == "corrupt_indexed":
        pysam.faidx(str(fasta))
    if state != "intact":  # invalid deflate data in the block holding `pos`
        raw = fasta.read_bytes()
        offset = len(">chr7\n") + (pos - 1) // 60 * 61
        text_ends = itertools.accumulate(int.from_bytes(raw[end - 4:end], "little")
                                         for _, end in corpus.block_spans(raw))
        block = next(i for i, text_end in enumerate(text_ends) if text_end > offset)
        assert block > 0  # not the first block: opening alone does not meet the damage
        fasta.write_bytes(corpus.flip(raw, corpus.find_flip(raw, block, still_inflates=False)))
    ref = seq[pos - 1:pos + 1]
    vcf = folder / "p.vcf"
    vcf.write_text("\n".join([
        "##fileformat=VCFv4.2", "##reference=GRCh38", f"##contig=<ID=chr7,length={len(seq)}>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS",
        f"chr7\t{pos}\t.\t{ref}\t{ref[0]}\t.\tPASS\t.\tGT\t0/1"]) + "\n")
    return fasta, vcf


@pytest.mark.parametrize("state", ["intact", "corrupt_indexed", "corrupt_unindexed"])
def test_a_corrupt_bgzipped_reference_is_bad_input(
        two_releases: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str],
        state: str) -> None:
    pytest.importorskip("pysam", reason="pysam writes and indexes the FASTA")
    fasta, vcf = fasta_and_vcf(tmp_path, state)
    res = invoke(two_releases, "annotate", vcf, "--snapshot", A, "-f", "tsv",
                 "--reference", fasta)
    if state == "intact":
        assert res.code == 0, res.err
    else:
        line = assert_refused(res, 3, fasta)
        assert "reference FASTA" in line, line
    # htslib writes to file descriptor 2 itself: none of its lines may reach the user.
    assert "[E::" not in capfd.readouterr().err
