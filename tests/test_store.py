"""The snapshot store: location, permissions, idempotent adds, name conflicts, verify, remove,
output formats, interrupted imports (in-process and SIGKILL), the writer lock."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from conftest import ROOT, tsv_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import varreinterp.snapshots
from varreinterp.cli import run
from varreinterp.store import Store

SINGLE = "criteria_provided,_single_submitter"


def small_vcf(path: Path, date: str = "2023-07-10", n: int = 3, sig: str = "Benign",
              assembly: str = "GRCh37") -> Path:
    lines = [
        "##fileformat=VCFv4.1",
        f"##fileDate={date}",
        "##source=ClinVar",
        f"##reference={assembly}",
        '##INFO=<ID=CLNSIG,Number=.,Type=String,Description="x">',
        '##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="x">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    lines += [f"1\t{100 + i}\t{i}\tA\tG\t.\t.\tCLNSIG={sig};CLNREVSTAT={SINGLE}"
              for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def big_vcf(path: Path, n: int = 200_000) -> Path:
    sigs = ["Benign", "Likely_benign", "Uncertain_significance", "Pathogenic"]
    with open(path, "w") as fh:
        fh.write(
            "##fileformat=VCFv4.1\n##fileDate=2024-01-07\n##reference=GRCh38\n"
            '##INFO=<ID=CLNSIG,Number=.,Type=String,Description="x">\n'
            '##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="x">\n'
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        fh.writelines(
            f"1\t{10 + i}\t{i}\tA\tG\t.\t.\tCLNSIG={sigs[i % 4]};CLNREVSTAT={SINGLE}\n"
            for i in range(n))
    return path


def listed(cli, **kw) -> list[str]:
    res = cli("snapshot", "list", "--format", "json", **kw)
    assert res.code == 0, res.err
    return [json.loads(line)["name"] for line in res.out.splitlines()]


def one_error_line(res, code: int, *needles: str) -> str:
    assert res.code == code, (res.code, res.err)
    lines = res.err.splitlines()
    assert len(lines) == 1, res.err
    assert lines[0].startswith("varreinterp: error: "), lines[0]
    assert "Traceback" not in res.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def varreinterp_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("varreinterp")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "varreinterp"]


# ------------------------------------------------------------------------------ location
def test_store_is_owner_only(cli, store_dir, tmp_path):
    res = cli("snapshot", "add", small_vcf(tmp_path / "a.vcf"))
    assert res.code == 0, res.err
    assert stat.S_IMODE(store_dir.stat().st_mode) == 0o700


def test_an_existing_store_directory_keeps_its_mode_with_a_warning(cli, store_dir, tmp_path,
                                                                    monkeypatch):
    """A shared (1777) folder must not become private to us: its mode is left alone, one
    warning says others can read it, and everything created inside is owner-only."""
    from varreinterp.store import Store

    monkeypatch.setattr(Store, "_warned", False)
    store_dir.mkdir()
    os.chmod(store_dir, 0o1777)
    res = cli("snapshot", "add", small_vcf(tmp_path / "a.vcf"))
    assert res.code == 0, res.err
    assert stat.S_IMODE(store_dir.stat().st_mode) == 0o1777
    assert sum("readable by other users" in line for line in res.err.splitlines()) == 1
    for path in store_dir.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_varreinterp_home_is_used_without_store_option(cli, tmp_path, monkeypatch):
    home = tmp_path / "vhome"
    monkeypatch.setenv("VARREINTERP_HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    res = cli("snapshot", "add", small_vcf(tmp_path / "a.vcf"), store=None)
    assert res.code == 0, res.err
    assert (home / "snapshots" / "clinvar-GRCh37-2023-07-10" / "manifest.json").is_file()
    assert not (tmp_path / "xdg").exists()
    assert listed(cli, store=None) == ["clinvar-GRCh37-2023-07-10"]


def test_store_option_wins_over_varreinterp_home(cli, store_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VARREINTERP_HOME", str(tmp_path / "vhome"))
    res = cli("snapshot", "add", small_vcf(tmp_path / "a.vcf"))
    assert res.code == 0, res.err
    assert (store_dir / "snapshots" / "clinvar-GRCh37-2023-07-10").is_dir()
    assert not (tmp_path / "vhome").exists()


def test_xdg_data_home_is_used_last(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("VARREINTERP_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    res = cli("snapshot", "add", small_vcf(tmp_path / "a.vcf"), store=None)
    assert res.code == 0, res.err
    assert (tmp_path / "xdg" / "varreinterp" / "snapshots" / "clinvar-GRCh37-2023-07-10").is_dir()


def test_home_local_share_without_xdg(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("VARREINTERP_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    res = cli("snapshot", "add", small_vcf(tmp_path / "a.vcf"), store=None)
    assert res.code == 0, res.err
    assert (tmp_path / "home" / ".local" / "share" / "varreinterp" / "snapshots").is_dir()


# ------------------------------------------------------------------------------ add semantics
def test_identical_content_is_a_noop_that_says_so(cli, store_dir, tmp_path):
    path = small_vcf(tmp_path / "a.vcf")
    assert cli("snapshot", "add", path).code == 0
    manifest = store_dir / "snapshots" / "clinvar-GRCh37-2023-07-10" / "manifest.json"
    before = manifest.read_bytes()
    copy = tmp_path / "copy_of_a.vcf"
    copy.write_bytes(path.read_bytes())
    for again in (path, copy):
        res = cli("snapshot", "add", again)
        assert res.code == 0, res.err
        assert res.out == ""
        assert "already stored" in res.err
        assert "clinvar-GRCh37-2023-07-10" in res.err
    assert listed(cli) == ["clinvar-GRCh37-2023-07-10"]
    assert manifest.read_bytes() == before


def test_same_name_different_content_is_a_store_error(cli, store_dir, tmp_path):
    a = small_vcf(tmp_path / "a.vcf", n=3)
    b = small_vcf(tmp_path / "b.vcf", n=4)
    assert cli("snapshot", "add", a, "--name", "mine").code == 0
    res = cli("snapshot", "add", b, "--name", "mine")
    one_error_line(res, 4, "'mine'")
    assert res.out == ""
    assert listed(cli) == ["mine"]
    m = json.loads((store_dir / "snapshots" / "mine" / "manifest.json").read_text())
    assert m["records"] == 3


def test_same_default_name_different_content_is_a_store_error(cli, tmp_path):
    a = small_vcf(tmp_path / "a.vcf", n=3)
    b = small_vcf(tmp_path / "b.vcf", n=4)
    assert cli("snapshot", "add", a).code == 0
    res = cli("snapshot", "add", b)
    one_error_line(res, 4, "clinvar-GRCh37-2023-07-10", "--name")
    assert listed(cli) == ["clinvar-GRCh37-2023-07-10"]


@pytest.mark.parametrize("bad", ["../escape", "a/b", ".hidden", "x" * 200])
def test_invalid_names_are_usage_errors(cli, store_dir, tmp_path, bad):
    res = cli("snapshot", "add", small_vcf(tmp_path / "a.vcf"), "--name", bad)
    assert res.code == 2, res.err
    assert not (tmp_path / "escape").exists()
    assert listed(cli) == []


@pytest.mark.parametrize("command", ["show", "remove", "verify"])
def test_unknown_snapshot(cli, tmp_path, command):
    assert cli("snapshot", "add", small_vcf(tmp_path / "a.vcf")).code == 0
    res = cli("snapshot", command, "nope")
    line = one_error_line(res, 4, "'nope'")
    assert "clinvar-GRCh37-2023-07-10" in line  # says what is stored
    assert res.out == ""


# ------------------------------------------------------------------------------ verify
def test_verify_clean_then_corrupt_parquet(cli, store_dir, tmp_path):
    assert cli("snapshot", "add", small_vcf(tmp_path / "a.vcf")).code == 0
    res = cli("snapshot", "verify", "--format", "tsv")
    assert res.code == 0, res.err
    assert tsv_lines(res.out) == ["snapshot\tproblem"]
    assert "1 snapshot(s) verified" in res.err

    parquet = store_dir / "snapshots" / "clinvar-GRCh37-2023-07-10" / "variants.parquet"
    data = bytearray(parquet.read_bytes())
    data[len(data) // 2] ^= 0xFF
    parquet.write_bytes(bytes(data))
    res = cli("snapshot", "verify", "--format", "tsv")
    one_error_line(res, 4, "1 problem")
    assert tsv_lines(res.out) == [
        "snapshot\tproblem",
        "clinvar-GRCh37-2023-07-10\tvariants.parquet checksum mismatch (corrupt)",
    ]
    res = cli("snapshot", "verify", "clinvar-GRCh37-2023-07-10", "--format", "json")
    assert res.code == 4
    assert [{k: v for k, v in json.loads(line).items() if not k.startswith("provenance_")}
            for line in res.out.splitlines()] == [
        {"snapshot": "clinvar-GRCh37-2023-07-10",
         "problem": "variants.parquet checksum mismatch (corrupt)"}]


def test_verify_edited_manifest(cli, store_dir, tmp_path):
    assert cli("snapshot", "add", small_vcf(tmp_path / "a.vcf")).code == 0
    path = store_dir / "snapshots" / "clinvar-GRCh37-2023-07-10" / "manifest.json"
    m = json.loads(path.read_text())
    m["tiers"]["pathogenic"] = 3
    path.write_text(json.dumps(m, indent=2))
    res = cli("snapshot", "verify", "--format", "tsv")
    one_error_line(res, 4)
    assert "manifest checksum mismatch" in res.out
    assert "clinvar-GRCh37-2023-07-10" in res.out


def test_verify_missing_parquet_and_unreadable_manifest(cli, store_dir, tmp_path):
    assert cli("snapshot", "add", small_vcf(tmp_path / "a.vcf")).code == 0
    assert cli("snapshot", "add", small_vcf(tmp_path / "b.vcf", date="2023-08-01")).code == 0
    (store_dir / "snapshots" / "clinvar-GRCh37-2023-07-10" / "variants.parquet").unlink()
    (store_dir / "snapshots" / "clinvar-GRCh37-2023-08-01" / "manifest.json").write_text("{oops")
    res = cli("snapshot", "verify", "--format", "json")
    one_error_line(res, 4, "2 problem(s) in 2 snapshot(s)")
    problems = {json.loads(line)["snapshot"]: json.loads(line)["problem"]
                for line in res.out.splitlines()}
    assert problems["clinvar-GRCh37-2023-07-10"] == "variants.parquet is missing"
    assert "unreadable snapshot manifest" in problems["clinvar-GRCh37-2023-08-01"]


# ------------------------------------------------------------------------------ list/show/remove
def test_remove_then_list_is_empty(cli, store_dir, tmp_path):
    assert cli("snapshot", "add", small_vcf(tmp_path / "a.vcf")).code == 0
    res = cli("snapshot", "remove", "clinvar-GRCh37-2023-07-10")
    assert res.code == 0, res.err
    assert res.out == ""
    assert "removed snapshot clinvar-GRCh37-2023-07-10" in res.err
    res = cli("snapshot", "list", "--format", "tsv")
    assert res.code == 0
    assert tsv_lines(res.out) == [
        "name\tassembly\trelease_date\tsource_kind\trecords\tpathogenic\tuncertain\tbenign\t"
        "conflicting\tother\tsource_file\tsource_sha256\tlineage\tstate"]
    assert cli("snapshot", "list", "--format", "json").out == ""
    assert list((store_dir / "snapshots").iterdir()) == []
    assert list((store_dir / "tmp").iterdir()) == []
    # The same content can be added again after removal.
    res = cli("snapshot", "add", small_vcf(tmp_path / "a.vcf"))
    assert res.code == 0 and "added snapshot" in res.err


def test_list_json_is_one_object_per_line(cli, tmp_path):
    for i, date in enumerate(["2023-09-01", "2023-07-10", "2023-08-01"]):
        path = small_vcf(tmp_path / f"{i}.vcf", date=date, n=i + 1)
        assert cli("snapshot", "add", path).code == 0
    res = cli("snapshot", "list", "--format", "json")
    assert res.code == 0
    lines = res.out.splitlines()
    assert len(lines) == 3
    objs = [json.loads(line) for line in lines]
    assert all(isinstance(o, dict) for o in objs)
    # oldest release first
    assert [o["name"] for o in objs] == ["clinvar-GRCh37-2023-07-10", "clinvar-GRCh37-2023-08-01",
                                         "clinvar-GRCh37-2023-09-01"]
    assert [o["records"] for o in objs] == [2, 3, 1]


def test_list_tsv_rows(cli, tmp_path):
    a = small_vcf(tmp_path / "a.vcf", sig="Pathogenic", n=2)
    assert cli("snapshot", "add", a).code == 0
    res = cli("snapshot", "list", "--format", "tsv")
    header, row = tsv_lines(res.out)
    record = dict(zip(header.split("\t"), row.split("\t"), strict=True))
    assert record["name"] == "clinvar-GRCh37-2023-07-10"
    assert (record["records"], record["pathogenic"], record["benign"]) == ("2", "2", "0")
    assert record["source_file"] == "a.vcf"
    assert len(record["source_sha256"]) == 64


def test_show_json(cli, tmp_path):
    path = small_vcf(tmp_path / "a.vcf", n=5)
    assert cli("snapshot", "add", path).code == 0
    res = cli("snapshot", "show", "clinvar-GRCh37-2023-07-10", "--format", "json")
    assert res.code == 0, res.err
    assert len(res.out.splitlines()) == 1
    m = json.loads(res.out)
    assert {"name", "assembly", "release_date", "source_sha256", "records", "tiers"} <= set(m)
    assert m["name"] == "clinvar-GRCh37-2023-07-10"
    assert m["assembly"] == "GRCh37"
    assert m["release_date"] == "2023-07-10"
    assert m["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert m["records"] == 5
    assert m["tiers"] == {"pathogenic": 0, "uncertain": 0, "benign": 5, "conflicting": 0,
                          "other": 0}


@pytest.mark.parametrize("command", [("list",), ("show", "x"), ("verify",)])
def test_bad_format_is_a_usage_error(cli, command):
    res = cli("snapshot", *command, "--format", "xml")
    assert res.code == 2
    assert "xml" in res.err


# ------------------------------------------------------------------------------ interruption
def test_keyboard_interrupt_during_import_leaves_store_unchanged(cli, store_dir, tmp_path,
                                                                 monkeypatch):
    assert cli("snapshot", "add", small_vcf(tmp_path / "a.vcf")).code == 0
    before = sorted(p.name for p in (store_dir / "snapshots").iterdir())

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(varreinterp.snapshots, "finalize", interrupted)
    res = cli("snapshot", "add", small_vcf(tmp_path / "b.vcf", date="2023-08-01"))
    assert res.code == 130
    assert res.out == ""
    assert listed(cli) == ["clinvar-GRCh37-2023-07-10"]
    assert sorted(p.name for p in (store_dir / "snapshots").iterdir()) == before
    assert list((store_dir / "tmp").iterdir()) == []
    assert cli("snapshot", "verify").code == 0
    monkeypatch.undo()
    # The lock was released: the next add works and warns about no stale lock.
    res = cli("snapshot", "add", small_vcf(tmp_path / "b.vcf", date="2023-08-01"))
    assert res.code == 0, res.err
    assert "stale" not in res.err


def test_keyboard_interrupt_says_so_on_stderr(cli, tmp_path, monkeypatch):
    """Exit 130 alone leaves a cron log without a word of why the import stopped."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(varreinterp.snapshots, "finalize", interrupted)
    res = cli("snapshot", "add", small_vcf(tmp_path / "b.vcf"))
    assert res.code == 130
    assert res.err.splitlines() == ["varreinterp: interrupted"]


def _wait_for(predicate, timeout: float = 20.0, interval: float = 0.002) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def test_sigkill_during_import_leaves_store_as_before(cli, store_dir, tmp_path):
    assert cli("snapshot", "add", small_vcf(tmp_path / "a.vcf")).code == 0
    big = big_vcf(tmp_path / "big.vcf")
    tmp_dir = store_dir / "tmp"
    proc = subprocess.Popen([*varreinterp_cmd(), "--store", str(store_dir), "snapshot", "add",
                             str(big)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        staging = _wait_for(lambda: any(p.name.startswith("stage-")
                                        for p in tmp_dir.iterdir()))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.communicate()
    assert staging, "the import never started staging"
    assert proc.returncode == -signal.SIGKILL

    assert listed(cli) == ["clinvar-GRCh37-2023-07-10"]
    res = cli("snapshot", "verify")
    assert res.code == 0, res.err
    res = cli("snapshot", "add", big)
    assert res.code == 0, res.err
    assert "stale lock" in res.err and str(proc.pid) in res.err
    assert listed(cli) == ["clinvar-GRCh37-2023-07-10", "clinvar-GRCh38-2024-01-07"]
    m = json.loads((store_dir / "snapshots" / "clinvar-GRCh38-2024-01-07" / "manifest.json")
                   .read_text())
    assert m["records"] == 200_000
    assert m["tiers"] == {"pathogenic": 50_000, "uncertain": 50_000, "benign": 100_000,
                          "conflicting": 0, "other": 0}
    assert list(tmp_dir.iterdir()) == []
    assert cli("snapshot", "verify").code == 0


# ------------------------------------------------------------------------------ lock
HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from varreinterp.store import Store
    with Store(Path(sys.argv[1])).lock("test holder"):
        print("locked", flush=True)
        time.sleep(60)
""")


def _start_holder(store_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(store_dir)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line != "locked\n":
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"lock holder did not start: {line!r} {err}")
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


@pytest.mark.parametrize("command", ["add", "remove"])
def test_lock_held_exits_5_naming_the_holder(cli, store_dir, tmp_path, command):
    path = small_vcf(tmp_path / "a.vcf")
    if command == "remove":
        assert cli("snapshot", "add", path).code == 0
    holder = _start_holder(store_dir)
    try:
        args = ["add", path] if command == "add" else ["remove", "clinvar-GRCh37-2023-07-10"]
        res = cli("snapshot", *args)
        line = one_error_line(res, 5, f"pid {holder.pid}", "test holder")
        assert str(store_dir) in line
        assert res.out == ""
    finally:
        _stop(holder)
    assert listed(cli) == ([] if command == "add" else ["clinvar-GRCh37-2023-07-10"])
    # Once the holder is gone the same command succeeds.
    res = cli("snapshot", *(["add", path] if command == "add"
                             else ["remove", "clinvar-GRCh37-2023-07-10"]))
    assert res.code == 0, res.err


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(cli, store_dir, tmp_path):
    holder = _start_holder(store_dir)
    os.kill(holder.pid, signal.SIGKILL)
    _stop(holder)
    lock = store_dir / "lock"
    assert json.loads(lock.read_text())["pid"] == holder.pid  # still names the dead holder
    res = cli("snapshot", "add", small_vcf(tmp_path / "a.vcf"))
    assert res.code == 0, res.err
    warnings = [line for line in res.err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1
    assert "stale lock" in warnings[0] and f"pid {holder.pid}" in warnings[0]
    assert listed(cli) == ["clinvar-GRCh37-2023-07-10"]
    assert lock.read_text() == ""  # released cleanly this time


def test_readers_do_not_need_the_lock(cli, store_dir, tmp_path):
    assert cli("snapshot", "add", small_vcf(tmp_path / "a.vcf")).code == 0
    holder = _start_holder(store_dir)
    try:
        assert listed(cli) == ["clinvar-GRCh37-2023-07-10"]
        assert cli("snapshot", "show", "clinvar-GRCh37-2023-07-10", "--format", "json").code == 0
        assert cli("snapshot", "verify").code == 0
    finally:
        _stop(holder)


# ------------------------------------------------------------------------------ property
@pytest.fixture(scope="module")
def three_sources(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sources")
    return {f"clinvar-GRCh37-2023-0{i}-01": small_vcf(d / f"s{i}.vcf", date=f"2023-0{i}-01",
                                                      n=i)
            for i in (1, 2, 3)}


def _run(store: Path, *args: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run(["--store", str(store), *map(str, args)])
    return int(code), out.getvalue(), err.getvalue()


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["add", "remove"]), st.integers(1, 3)), max_size=6))
def test_any_add_remove_sequence_keeps_the_store_consistent(three_sources, steps):
    names = sorted(three_sources)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        model: set[str] = set()
        for action, i in steps:
            name = names[i - 1]
            if action == "add":
                code, _, err = _run(store, "snapshot", "add", three_sources[name])
                assert code == 0, err
                assert ("already stored" in err) == (name in model)
                model.add(name)
            else:
                code, _, err = _run(store, "snapshot", "remove", name)
                assert code == (0 if name in model else 4), err
                model.discard(name)
            code, out, _ = _run(store, "snapshot", "list", "--format", "json")
            assert code == 0
            assert [json.loads(line)["name"] for line in out.splitlines()] == sorted(model)
        code, out, err = _run(store, "snapshot", "verify", "--format", "tsv")
        assert code == 0, err
        assert tsv_lines(out) == ["snapshot\tproblem"]
        if store.exists():
            assert Store(store).snapshot_names() == sorted(model)
            assert list((store / "tmp").iterdir()) == []
