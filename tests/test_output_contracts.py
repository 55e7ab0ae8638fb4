"""What every output promises whatever the input: -o never replaces an input of the command; one
TSV rule (no quoting, a `"` written as it is) in every command, so a sample read from one TSV
joins the rows of another; provenance on one line even when a path holds a newline; the
provenance line on the listings of the store and settings too; and an annotated VCF named
.vcf.gz written as BGZF, as tabix and bcftools expect."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
from pathlib import Path

import pysam
import pytest
from builders import write_clinvar, write_patient
from conftest import tsv_lines

from varreinterp.bgzf import EOF_MARKER

CHILD = 'CHILD "01"'
CONDITION = 'Lynch_"syndrome"_2'
FROM, TO = "2024-01-01", "2024-06-01"


@pytest.fixture
def setup(tmp_path: Path, cli) -> Path:
    """Two releases in which 1:1000 C>T goes from VUS to Pathogenic (a condition name with
    quotes), and a patient whose sample name holds quotes and a space."""
    for date, sig in ((FROM, "Uncertain_significance"), (TO, "Pathogenic")):
        res = cli("snapshot", "add", write_clinvar(
            tmp_path / f"clinvar_{date}.vcf", [("1", 1000, "C", "T", sig, 1, "MLH1", CONDITION)],
            date=date))
        assert res.code == 0, res.err
    write_patient(tmp_path / "patient.vcf", [CHILD, "MOTHER"],
                  ["1 1000 . C T 50 PASS . GT 0/1 0/0"])
    return tmp_path


def _rows(text: str) -> list[dict[str, str]]:
    header, *rows = tsv_lines(text)
    names = header.split("\t")
    out = []
    for row in rows:
        fields = row.split("\t")
        assert len(fields) == len(names), row
        out.append(dict(zip(names, fields, strict=True)))
    return out


# ------------------------------------------------------------------------- -o over an input
COMMANDS = {
    "annotate-tsv": ["annotate", "{vcf}", "--snapshot", TO, "-f", "tsv"],
    "annotate-vcf": ["annotate", "{vcf}", "--snapshot", TO, "-f", "vcf"],
    "diff": ["diff", "{vcf}", "--from", FROM, "--to", TO, "-f", "tsv"],
    "history": ["history", "{vcf}", "-f", "tsv"],
    "report": ["report", "{vcf}", "--sample", CHILD, "--from", FROM, "--to", TO],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("spelling", ["same", "dotted", "hard link"])
def test_output_naming_an_input_is_refused(setup: Path, cli, command: str,
                                           spelling: str) -> None:
    vcf = setup / "patient.vcf"
    before = vcf.read_bytes()
    target = {"same": vcf, "dotted": setup / "." / "patient.vcf",
              "hard link": setup / "linked.vcf"}[spelling]
    if spelling == "hard link":
        target.hardlink_to(vcf)
    args = [a.format(vcf=vcf) for a in COMMANDS[command]]
    res = cli(*args, "-o", target)
    assert res.code == 2, res.err
    assert "refusing to overwrite" in res.err and str(target) in res.err
    assert vcf.read_bytes() == before


def test_output_naming_the_reference_fasta_is_refused(setup: Path, cli) -> None:
    fasta = setup / "ref.fa"
    fasta.write_text(">1\n" + "C" * 2000 + "\n")
    res = cli("annotate", setup / "patient.vcf", "--snapshot", TO, "--reference", fasta,
              "-f", "tsv", "-o", fasta)
    assert res.code == 2, res.err
    assert fasta.read_text().startswith(">1\n")


def test_output_elsewhere_is_written(setup: Path, cli) -> None:
    out = setup / "out.tsv"
    res = cli("annotate", setup / "patient.vcf", "--snapshot", TO, "-f", "tsv", "-o", out)
    assert res.code == 0, res.err
    assert [r["sample"] for r in _rows(out.read_text())] == [CHILD]


# ------------------------------------------------------------------------- one TSV rule
def test_every_command_writes_a_quoted_name_the_same_way(setup: Path, cli, tmp_path) -> None:
    vcf = setup / "patient.vcf"
    annotated = cli("annotate", vcf, "--snapshot", TO, "-f", "tsv")
    diffed = cli("diff", vcf, "--from", FROM, "--to", TO, "-f", "tsv")
    history = cli("history", vcf, "-f", "tsv")
    for res in (annotated, diffed, history):
        assert res.code in (0, 1), res.err
    assert cli("cohort", "add", vcf, "--sample", CHILD, "--baseline", FROM).code == 0
    reports = tmp_path / "reports"
    assert cli("reanalyze", "--to", TO, "-o", reports).code in (0, 1)
    listed = cli("cohort", "list", "-f", "tsv")

    for text in (annotated.out, diffed.out, history.out,
                 (reports / "changes.tsv").read_text()):
        rows = _rows(text)
        assert rows, text
        assert {r["sample"] for r in rows} == {CHILD}, text
        conditions = {v for r in rows for k, v in r.items() if k == "conditions"}
        assert conditions <= {CONDITION}, text
    assert {r["conditions"] for r in _rows(annotated.out)} == {CONDITION}
    assert {r["conditions"] for r in _rows(diffed.out)} == {CONDITION}
    assert {r["sample"] for r in _rows(listed.out)} == {CHILD}


def test_frames_and_records_follow_one_tsv_rule() -> None:
    """The frame writer (annotate, diff, reports) and the record writer (listings) turn a tab
    or a line break into a space and write a quote as it is."""
    import io

    import pandas as pd

    from varreinterp.output.formats import tsv_text, write_tsv

    values = ['a"b', "tab\there", "two\nlines", "cr\rend", None]
    frame = pd.DataFrame({"name": values, "n": [1, 2, 3, 4, 5]})
    records = io.StringIO()
    write_tsv(records, ["name", "n"], frame.to_dict(orient="records"))
    assert tsv_text(frame) == records.getvalue().replace("\tnan\n", "\t\n")
    assert tsv_text(frame).splitlines() == [
        "name\tn", 'a"b\t1', "tab here\t2", "two lines\t3", "cr end\t4", "\t5"]
    mixed = pd.DataFrame({"v": pd.Series(["x\ty", 3, None, True, ["a", "b"]], dtype=object)})
    assert tsv_text(mixed).splitlines() == ["v", "x y", "3", "", "True", '["a", "b"]']


# ------------------------------------------------------------------------- provenance
def test_a_newline_in_a_path_keeps_provenance_on_one_line(setup: Path, cli) -> None:
    odd = setup / "two\nlines.vcf"
    shutil.copy(setup / "patient.vcf", odd)
    res = cli("annotate", odd, "--snapshot", TO, "-f", "tsv")
    assert res.code == 0, res.err
    first, header, *rows = res.out.splitlines()
    assert first.startswith("#tool=varreinterp") and "$'" in first
    assert header.startswith("sample\t") and len(rows) == 1

    out = setup / "annotated.vcf"
    res = cli("annotate", odd, "--snapshot", TO, "-f", "vcf", "-o", out)
    assert res.code == 0, res.err
    with pysam.VariantFile(str(out)) as vcf:
        assert list(vcf.header.samples) == [CHILD, "MOTHER"]
        assert len(list(vcf)) == 1


@pytest.mark.parametrize("args", [["snapshot", "list"], ["snapshot", "show", TO],
                                  ["snapshot", "verify"], ["cohort", "list"],
                                  ["cohort", "status"], ["config", "show"]])
def test_listings_carry_provenance(setup: Path, cli, args: list[str]) -> None:
    assert cli("cohort", "add", setup / "patient.vcf", "--sample", "MOTHER",
               "--baseline", FROM).code == 0
    tsv = cli(*args, "-f", "tsv")
    assert tsv.code == 0, tsv.err
    assert tsv.out.startswith("#tool=varreinterp tool_version=")
    assert " ".join(args) in tsv.out.splitlines()[0]
    res = cli(*args, "-f", "json")
    rows = [json.loads(line) for line in res.out.splitlines()]
    assert all(r["provenance_tool"] == "varreinterp" and r["provenance_tool_version"]
               for r in rows)


# ------------------------------------------------------------------------- .vcf.gz is BGZF
def test_annotated_vcf_named_gz_is_bgzf(setup: Path, cli) -> None:
    out = setup / "annotated.vcf.gz"
    res = cli("annotate", setup / "patient.vcf", "--snapshot", TO, "-f", "vcf", "-o", out)
    assert res.code == 0, res.err
    data = out.read_bytes()
    assert data[:4] == b"\x1f\x8b\x08\x04" and data.endswith(EOF_MARKER)
    pysam.tabix_index(str(out), preset="vcf", force=True)
    with pysam.VariantFile(str(out)) as vcf:
        (record,) = vcf.fetch("1", 999, 1000)
        assert record.info["VRI_CLASSIFICATION"] == ("Pathogenic",)
    plain = setup / "annotated.vcf"
    assert cli("annotate", setup / "patient.vcf", "--snapshot", TO, "-f", "vcf",
               "-o", plain).code == 0
    unpacked = subprocess.run(["gzip", "-dc", str(out)], capture_output=True, check=True).stdout
    strip = [ln for ln in unpacked.splitlines() if b"Command=" not in ln]
    assert strip == [ln for ln in plain.read_bytes().splitlines() if b"Command=" not in ln]
    # Read back by the tool itself, which checks every block and the end marker.
    again = cli("annotate", out, "--snapshot", TO, "-f", "tsv")
    assert again.code == 0, again.err
    assert [r["sample"] for r in _rows(again.out)] == [CHILD]


# ------------------------------------------------------------------------- a store file gone
def test_snapshot_removed_while_annotate_reads_it(setup: Path, cli, monkeypatch) -> None:
    """`snapshot remove` takes the writer lock; a reader takes none, so the snapshot can go
    between its checks and its read: one line and exit 4, not an internal error."""
    import varreinterp.annotate as annotate_module

    original = annotate_module.load_sites

    def remove_then_load(con, relation):  # type: ignore[no-untyped-def]
        for parquet in (setup / "store" / "snapshots").glob("*2024-06-01/variants.parquet"):
            parquet.unlink()
        return original(con, relation)

    monkeypatch.setattr(annotate_module, "load_sites", remove_then_load)
    res = cli("annotate", setup / "patient.vcf", "--snapshot", TO, "-f", "tsv")
    assert res.code == 4, res.err
    (line,) = res.err.strip().splitlines()[-1:]
    assert line.startswith("varreinterp: error: ") and "variants.parquet: removed while" in line
    assert "internal error" not in res.err
    assert res.out == ""


# ------------------------------------------------------------ partial files of killed writers
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]  # as atomic.py names it
def _dead_pid() -> int:
    # `true` ran and was reaped: its pid names no process (pids are reused only after wrapping)
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_the_writer_names_its_partial_by_pid(tmp_path: Path) -> None:
    import os

    from varreinterp.atomic import atomic_file

    out = tmp_path / "out.tsv"
    with atomic_file(out) as fh:
        fh.write("x\n")
        (partial,) = [p.name for p in tmp_path.iterdir()]
        assert partial.startswith(f".out.tsv.partial-{_HOST}-{os.getpid()}-"), partial
    assert [p.name for p in tmp_path.iterdir()] == ["out.tsv"]


def test_a_killed_writers_partial_is_removed_by_the_next_write(setup: Path, cli) -> None:
    import os

    folder = setup / "outputs"
    folder.mkdir()
    dead, alive = _dead_pid(), os.getppid()
    kept = [f".annotated.tsv.partial-{_HOST}-{alive}-d4e5f6",  # a live writer's
            f".other.tsv.partial-{_HOST}-{dead}-g7h8i9",  # another file's
            f".annotated.tsv.partial-0badc0de-{dead}-j1k2l3",  # another host's
            f".annotated.tsv.partial-{_HOST}-{dead}",  # not a name the tool makes
            ".annotated.tsv.notours"]
    for name in [f".annotated.tsv.partial-{_HOST}-{dead}-a1b2c3", *kept]:
        (folder / name).write_text("patient data\n")
    res = cli("annotate", setup / "patient.vcf", "-f", "tsv", "-o", folder / "annotated.tsv")
    assert res.code == 0, res.err
    assert (folder / "annotated.tsv").read_text().startswith("#")
    # only the dead writer's partial of this file, made on this host, is gone
    assert sorted(p.name for p in folder.iterdir()) == sorted(["annotated.tsv", *kept])
