"""Command-line basics: version, help on every command, `python -m`, and the stdout/stderr split
that cron and pipes rely on (data on stdout, messages on stderr)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from conftest import ROOT, tsv_lines

from varreinterp import __version__
from varreinterp.cli import app


def _command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the CLI, found from the app itself so new commands are covered."""
    paths: list[tuple[str, ...]] = [()]

    def walk(cmd: Any, prefix: tuple[str, ...]) -> None:
        # typer may bring its own copy of click: recognise groups by their sub-commands.
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            paths.append((*prefix, name))
            walk(sub, (*prefix, name))

    walk(typer.main.get_command(app), ())
    return paths


COMMANDS = _command_paths()


def test_the_snapshot_commands_exist():
    assert {("snapshot",), ("snapshot", "add"), ("snapshot", "list"), ("snapshot", "show"),
            ("snapshot", "remove"), ("snapshot", "verify")} <= set(COMMANDS)


def test_version(cli):
    res = cli("--version", store=None)
    assert res.code == 0
    assert res.out == f"varreinterp {__version__}\n"
    assert res.err == ""


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "varreinterp")
def test_help_on_every_command(cli, store_dir, path):
    res = cli(*path, "--help", store=None)
    assert res.code == 0, res.err
    assert "Usage:" in res.out
    assert res.err == ""
    assert not store_dir.exists()  # help touches no store


def test_short_help_flag(cli):
    res = cli("snapshot", "add", "-h", store=None)
    assert res.code == 0
    assert "Usage:" in res.out and "--mapping" in res.out


def test_unknown_option_is_a_usage_error(cli):
    res = cli("snapshot", "add", "--bogus-option", "x.vcf")
    assert res.code == 2
    assert res.out == ""
    assert "--bogus-option" in res.err
    assert "internal error" not in res.err


def test_unknown_command_is_a_usage_error(cli):
    res = cli("nosuchcommand")
    assert res.code == 2
    assert res.out == ""
    assert "nosuchcommand" in res.err
    assert "internal error" not in res.err


@pytest.mark.parametrize("path", [(), ("snapshot",)], ids=["varreinterp", "snapshot"])
def test_no_arguments_shows_help_as_a_usage_error(cli, path):
    res = cli(*path)
    assert res.code == 2
    assert "internal error" not in res.err


def test_missing_argument_is_a_usage_error(cli):
    res = cli("snapshot", "add")
    assert res.code == 2
    assert res.out == ""
    assert "internal error" not in res.err
    assert "missing argument 'file'" in res.err.lower()


def test_bad_add_format_is_a_usage_error(cli, tmp_path):
    path = tmp_path / "x.vcf"
    path.write_text("##fileformat=VCFv4.1\n")
    res = cli("snapshot", "add", path, "--format", "bam")
    assert res.code == 2
    lines = res.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("varreinterp: error: --format must be one of auto, clinvar-vcf")


def _console() -> list[str]:
    exe = Path(sys.executable).with_name("varreinterp")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "varreinterp"]


def test_python_dash_m_version():
    proc = subprocess.run([sys.executable, "-m", "varreinterp", "--version"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"varreinterp {__version__}\n"
    assert proc.stderr == ""


def test_console_script_exit_code_is_propagated(tmp_path):
    proc = subprocess.run([*_console(), "--store", str(tmp_path / "s"), "snapshot", "show",
                           "nope"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1


def test_data_on_stdout_messages_on_stderr(tmp_path):
    vcf = tmp_path / "a.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.1\n##fileDate=2024-01-07\n##reference=GRCh38\n"
        '##INFO=<ID=CLNSIG,Number=.,Type=String,Description="x">\n'
        '##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="x">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        "1\t100\t1\tA\tG\t.\t.\tCLNSIG=Pathogenic;CLNREVSTAT=reviewed_by_expert_panel\n")
    store = tmp_path / "store"
    base = [*_console(), "--store", str(store)]

    add = subprocess.run([*base, "snapshot", "add", str(vcf)], capture_output=True, text=True,
                         timeout=60)
    assert add.returncode == 0, add.stderr
    assert add.stdout == ""
    info = add.stderr.splitlines()
    assert len(info) == 1
    assert info[0].startswith("varreinterp: INFO: added snapshot clinvar-GRCh38-2024-01-07: "
                              "1 records (pathogenic 1)")

    listing = subprocess.run([*base, "snapshot", "list", "--format", "tsv"], capture_output=True,
                             text=True, timeout=60)
    assert listing.returncode == 0
    assert listing.stderr == ""
    lines = tsv_lines(listing.stdout)
    assert len(lines) == 2
    assert lines[0].split("\t")[:5] == ["name", "assembly", "release_date", "source_kind",
                                        "records"]
    assert lines[1].split("\t")[:6] == ["clinvar-GRCh38-2024-01-07", "GRCh38", "2024-01-07",
                                        "clinvar-vcf", "1", "1"]

    # Piped without --format: TSV, the same rows.
    piped = subprocess.run([*base, "snapshot", "list"], capture_output=True, text=True,
                           timeout=60)
    assert piped.returncode == 0
    assert tsv_lines(piped.stdout) == lines

    # --quiet silences the info line but never the data.
    quiet = subprocess.run([*base, "--quiet", "snapshot", "verify", "--format", "tsv"],
                           capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0
    assert quiet.stderr == ""
    assert tsv_lines(quiet.stdout) == ["snapshot\tproblem"]


def test_binary_output_to_a_text_only_stdout_keeps_split_characters(monkeypatch) -> None:
    """Bytes copied in chunks to a text stdout: a character cut between two writes survives."""
    import io

    from varreinterp.output import formats as render

    text = io.StringIO()
    monkeypatch.setattr("sys.stdout", text)
    data = "Sjögren_syndrome\n".encode()
    cut = data.index("ö".encode()) + 1  # inside the two-byte character
    with render.output_stream(None, binary=True) as fh:
        fh.write(data[:cut])
        fh.write(data[cut:])
    assert text.getvalue() == "Sjögren_syndrome\n"
