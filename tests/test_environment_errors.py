"""Environment trouble: a full disk, /dev/full, a directory where a file is expected, a closed
stdout, a reader that closes the pipe early, permissions, a read-only file system, and store or
mapping files edited by hand into the wrong shape.

Contract (errors.ExitCode): environment trouble is exit 74 with one error line naming the path
and the operating system's reason, never 70; a reader that went away (`| head -1`) is exit 141
with no error text; a store file of the wrong shape is exit 4 naming it; a mapping of the wrong
shape is exit 2 naming the key, the file and (where given) the line. After any failure the store
is as it was, no output or hidden temp file is left, and `STORE/tmp` is empty.

Disk-full cases mount small tmpfs file systems and permission cases run the CLI as `nobody`
through setpriv: both need root and skip otherwise."""

from __future__ import annotations

import errno
import functools
import gzip
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MAPPINGS, SAMPLES, CliResult, invoke, tsv_lines

OLD = "clinvar-GRCh38-2024-01-07"
NEW = "clinvar-GRCh38-2024-06-02"
OLD_VCF = SAMPLES / "clinvar_GRCh38_2024-01-07.vcf"
NEW_VCF = SAMPLES / "clinvar_GRCh38_2024-06-02.vcf"
TRIO = SAMPLES / "trio.vcf"
NO_SPACE = "No space left on device"
DENIED = "Permission denied"
READ_ONLY = "Read-only file system"
INFO = "varreinterp: INFO: "
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
CLINVAR_HEAD = """##fileformat=VCFv4.1
##fileDate={date}
##source=ClinVar
##reference=GRCh38
##INFO=<ID=CLNSIG,Number=.,Type=String,Description="Aggregate germline classification">
##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="ClinVar review status">
##INFO=<ID=GENEINFO,Number=1,Type=String,Description="Gene(s) for the variant">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
"""
SIGS = ["Pathogenic", "Benign", "Uncertain_significance", "Likely_benign"]

needs_root = pytest.mark.skipif(not IS_ROOT, reason="mounting tmpfs and switching users "
                                "need root")


# ------------------------------------------------------------------------------ helpers
def cli_command() -> list[str]:
    script = Path(sys.executable).with_name("varreinterp")
    return [str(script)] if script.exists() else [sys.executable, "-m", "varreinterp"]


@dataclass
class Proc:
    code: int
    out: str
    err: str


def run_cli(store: Path, args: Sequence[str | Path], *, wrapper: Sequence[str] = (),
            timeout: float = 120) -> Proc:
    """The installed CLI in a subprocess, optionally behind a wrapper (setpriv, a shell)."""
    cmd = [*wrapper, *cli_command(), "--store", str(store), *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    return Proc(done.returncode, done.stdout.decode(errors="replace"),
                done.stderr.decode(errors="replace"))


def error_lines(err: str) -> list[str]:
    """stderr without the INFO progress lines."""
    return [line for line in err.splitlines() if not line.startswith(INFO)]


def assert_env_error(res: CliResult | Proc, *needles: str | Path) -> str:
    """Exit 74 and one `varreinterp: error:` line containing every needle."""
    assert res.code == 74, (res.code, res.err[-3000:])
    lines = error_lines(res.err)
    assert len(lines) == 1, res.err[-3000:]
    line = lines[0]
    assert line.startswith("varreinterp: error: "), line
    assert "(unknown path)" not in line, f"the error names no path: {line}"
    for needle in needles:
        assert str(needle) in line, (str(needle), line)
    return line


def tree(root: Path) -> dict[str, str]:
    """Files and folders under `root` with their content digests; the lock file's content
    (the current holder) and tmp/ are checked apart."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel == "lock" or rel == "tmp" or rel.startswith("tmp/"):
            continue
        if path.is_dir():
            out[rel] = "dir"
        else:
            try:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            except PermissionError:
                out[rel] = "unreadable"
    return out


def assert_tmp_empty(store: Path) -> None:
    tmp = store / "tmp"
    left = sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []
    assert left == [], f"leftovers in {tmp}: {left}"


def site(i: int) -> tuple[str, int, str, str]:
    chrom = f"{i % 4 + 1}"
    pos = 10_000 + (i // 4) * 37
    return chrom, pos, "ACGT"[pos % 4], "ACGT"[(pos + 1) % 4]


def write_release(path: Path, records: int, date: str = "2024-03-01") -> Path:
    """A ClinVar-format GRCh38 release of `records` SNVs; bgzipped when `path` ends in .gz."""
    rows = [CLINVAR_HEAD.format(date=date)]
    for i in sorted(range(records), key=lambda k: (k % 4, k)):
        chrom, pos, ref, alt = site(i)
        rows.append(f"{chrom}\t{pos}\t{i + 1}\t{ref}\t{alt}\t.\t.\tCLNSIG={SIGS[i % 4]};"
                    f"CLNREVSTAT=criteria_provided,_single_submitter;GENEINFO=G{i % 97}:1\n")
    if path.suffix != ".gz":
        path.write_text("".join(rows))
        return path
    import pysam

    plain = path.with_suffix("")
    plain.write_text("".join(rows))
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    return path


def write_patient(path: Path, sample: str, indices: range) -> Path:
    head = ["##fileformat=VCFv4.2", "##reference=GRCh38",
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
            f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{sample}"]
    body = []
    for i in sorted(indices, key=lambda k: (k % 4, k)):
        chrom, pos, ref, alt = site(i)
        body.append(f"chr{chrom}\t{pos}\t.\t{ref}\t{alt}\t50\tPASS\t.\tGT\t0/1")
    path.write_text("\n".join(head + body) + "\n")
    return path


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both sample releases, the trio registered against the older one."""
    store = tmp_path_factory.mktemp("env") / "store"
    steps: list[list[str | Path]] = [["snapshot", "add", OLD_VCF], ["snapshot", "add", NEW_VCF],
                                     ["cohort", "add", TRIO, "--baseline", OLD]]
    for args in steps:
        res = invoke(store, *args)
        assert res.code == 0, res.err
    return store


@pytest.fixture
def store_copy(sample_store: Path, tmp_path: Path) -> Path:
    store = tmp_path / "store"
    shutil.copytree(sample_store, store)
    return store


@pytest.fixture(scope="module")
def big_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A store with a 60,000-record snapshot and a patient matching all of it: annotate
    writes several MB."""
    base = tmp_path_factory.mktemp("big")
    store = base / "store"
    release = write_release(base / "clinvar_2024-03-01.vcf.gz", 60_000)
    res = invoke(store, "snapshot", "add", release)
    assert res.code == 0, res.err
    patient = write_patient(base / "patient.vcf", "BIG01", range(60_000))
    return {"store": store, "patient": patient, "base": base}


Mounter = Callable[[str, str], Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mounter]:
    """mount(name, size): a fresh tmpfs of `size` (e.g. "1m") at tmp_path/name; unmounted at
    the end whatever happens."""
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755",
                               "tmpfs", str(point)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    try:
        yield mount
    finally:
        for point in reversed(mounted):
            if subprocess.run(["umount", str(point)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], check=False)


def fill(mount: Path, leave: int = 0) -> Path:
    """Fill a file system up to `leave` free bytes with a filler file."""
    filler = mount / "filler"
    st = os.statvfs(mount)
    size = max(st.f_bavail * st.f_frsize - leave, 0)
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb") as fh:
        try:
            while size > 0:
                fh.write(chunk[:min(size, len(chunk))])
                size -= len(chunk)
            fh.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


NOBODY = "nobody"


def as_nobody() -> list[str]:
    if not IS_ROOT:
        pytest.skip("running the CLI as another user needs root")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    try:
        pwd.getpwnam(NOBODY)
    except KeyError:
        pytest.skip("no user 'nobody'")
    wrapper = ["setpriv", f"--reuid={NOBODY}", f"--regid={pwd.getpwnam(NOBODY).pw_gid}",
               "--clear-groups"]
    if not nobody_can_run_the_cli(tuple(wrapper)):
        pytest.skip(f"'{NOBODY}' cannot run this checkout's CLI (a parent folder of "
                    f"{sys.executable} is private, as `mktemp -d` makes it)")
    return wrapper


@functools.cache
def nobody_can_run_the_cli(wrapper: tuple[str, ...]) -> bool:
    probe = subprocess.run([*wrapper, sys.executable, "-c", "import varreinterp.cli"],
                           capture_output=True, cwd="/", timeout=60)
    return probe.returncode == 0


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A folder another user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="varreinterp-env-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def give_to_nobody(path: Path) -> None:
    entry = pwd.getpwnam(NOBODY)
    for p in [path, *path.rglob("*")]:
        os.chown(p, entry.pw_uid, entry.pw_gid)


# ------------------------------------------------------------------------------ disk full
@needs_root
@pytest.mark.parametrize("kind", ["gzip", "bgzip", "plain"])
def test_snapshot_add_into_full_store(tmpfs: Mounter, tmp_path: Path, kind: str) -> None:
    """gzip: the decompressed text (plain gzip cannot be cut: it is inflated to the work
    folder first) does not fit; bgzip (scanned in memory) and plain: the Parquet file does
    not fit."""
    if kind == "gzip":
        release, size = tmp_path / "clinvar_2024-03-01.vcf.gz", "1m"
        text = write_release(tmp_path / "clinvar_2024-03-01.vcf", 50_000)
        release.write_bytes(gzip.compress(text.read_bytes()))
    elif kind == "bgzip":
        release, size = write_release(tmp_path / "clinvar_2024-03-01.vcf.gz", 150_000), "128k"
    else:
        release, size = write_release(tmp_path / "clinvar_2024-03-01.vcf", 150_000), "128k"
    mount = tmpfs("fs", size)
    store = mount / "store"
    first = invoke(store, "snapshot", "add", OLD_VCF)
    assert first.code == 0, first.err
    before = tree(store)
    res = run_cli(store, ["snapshot", "add", release])
    assert_env_error(res, mount, NO_SPACE)
    assert tree(store) == before
    assert_tmp_empty(store)
    assert sorted(p.name for p in mount.iterdir()) == ["store"]


@needs_root
@pytest.mark.parametrize("leave_fraction", [0.0, 0.5])
def test_cohort_add_into_full_store(tmpfs: Mounter, tmp_path: Path,
                                    leave_fraction: float) -> None:
    patients = [write_patient(tmp_path / f"p{k}.vcf", f"P{k}", range(k * 500, k * 500 + 4000))
                for k in range(8)]
    # How much a successful add writes, measured on an ordinary disk.
    reference = tmp_path / "reference"
    assert invoke(reference, "snapshot", "add", OLD_VCF).code == 0
    res = invoke(reference, "cohort", "add", *patients, "--baseline", OLD)
    assert res.code == 0, res.err
    needed = sum(p.stat().st_size for p in (reference / "cohort").rglob("*") if p.is_file())

    mount = tmpfs("fs", "4m")
    store = mount / "store"
    assert invoke(store, "snapshot", "add", OLD_VCF).code == 0
    before = tree(store)
    fill(mount, int(needed * leave_fraction))
    failed = run_cli(store, ["cohort", "add", *patients, "--baseline", OLD])
    assert_env_error(failed, mount, NO_SPACE)
    assert tree(store) == before, "a failed cohort add changed the store"
    assert_tmp_empty(store)
    listed = invoke(store, "cohort", "list", "-f", "tsv")
    assert listed.code == 0 and tsv_lines(listed.out)[1:] == [], listed


@needs_root
def test_reanalyze_report_folder_on_full_disk(tmpfs: Mounter, store_copy: Path) -> None:
    mount = tmpfs("fs", "256k")
    fill(mount, 0)
    registry = store_copy / "cohort" / "patients.json"
    before, registry_before = tree(store_copy), registry.read_bytes()
    res = run_cli(store_copy, ["reanalyze", "--min-priority", "low", "--out", mount / "report"])
    assert_env_error(res, mount, NO_SPACE)
    assert registry.read_bytes() == registry_before, "patients recorded as reviewed"
    assert tree(store_copy) == before
    assert_tmp_empty(store_copy)
    assert sorted(p.name for p in mount.iterdir()) == ["filler"]
    # The same run with room for its report works (the setup really has a report to write).
    (mount / "filler").unlink()
    res = run_cli(store_copy, ["reanalyze", "--min-priority", "low", "--out", mount / "report"])
    assert res.code == 0, res.err
    assert (mount / "report").is_dir()


@needs_root
@pytest.mark.parametrize("fmt", ["tsv", "json", "vcf", "parquet"])
def test_annotate_output_on_full_disk(tmpfs: Mounter, big_inputs: dict[str, Path],
                                      fmt: str) -> None:
    mount = tmpfs("fs", "64k")
    out = mount / f"OUT.{fmt}"
    store = big_inputs["store"]
    before = tree(store)
    res = run_cli(store, ["annotate", big_inputs["patient"], "--snapshot",
                          "clinvar-GRCh38-2024-03-01", "-f", fmt, "-o", out])
    assert_env_error(res, out, NO_SPACE)
    assert sorted(p.name for p in mount.iterdir()) == [], "output or hidden temp file left"
    assert tree(store) == before
    assert_tmp_empty(store)


@needs_root
@pytest.mark.parametrize("fmt", ["tsv", "json", "vcf"])
def test_unbuffered_stdout_on_full_disk_is_an_error(tmpfs: Mounter, big_inputs: dict[str, Path],
                                                     fmt: str) -> None:
    """With PYTHONUNBUFFERED (set in most Python container images) stdout is a raw file whose
    write may take only part of the data: the rest must not vanish with exit 0."""
    mount = tmpfs("fs", "64k")
    out = mount / f"stdout.{fmt}"
    args = [*cli_command(), "--store", str(big_inputs["store"]), "annotate",
            str(big_inputs["patient"]), "--snapshot", "clinvar-GRCh38-2024-03-01", "-f", fmt]
    with open(out, "wb") as fh:
        done = subprocess.run(args, stdout=fh, stderr=subprocess.PIPE, timeout=120,
                              check=False, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert_env_error(Proc(done.returncode, "", done.stderr.decode()), "<stdout>", NO_SPACE)


# ------------------------------------------------------------------------------ /dev/full, dirs
OUTPUT_COMMANDS: dict[str, list[str | Path]] = {
    "annotate-tsv": ["annotate", TRIO, "--snapshot", OLD, "-f", "tsv"],
    "annotate-json": ["annotate", TRIO, "--snapshot", OLD, "-f", "json"],
    "annotate-table": ["annotate", TRIO, "--snapshot", OLD, "-f", "table"],
    "annotate-vcf": ["annotate", TRIO, "--snapshot", OLD, "-f", "vcf"],
    "annotate-parquet": ["annotate", TRIO, "--snapshot", OLD, "-f", "parquet"],
    "diff-tsv": ["diff", TRIO, "--from", OLD, "--to", NEW, "-f", "tsv"],
    "history-tsv": ["history", TRIO, "-f", "tsv"],
    "snapshot-diff-json": ["snapshot", "diff", OLD, NEW, "-f", "json"],
}


def output_args(command: str) -> list[str | Path]:
    return list(OUTPUT_COMMANDS[command])


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize("command", list(OUTPUT_COMMANDS))
def test_output_to_dev_full(sample_store: Path, command: str) -> None:
    before = tree(sample_store)
    res = invoke(sample_store, *output_args(command), "-o", "/dev/full")
    assert_env_error(res, "/dev/full", NO_SPACE)
    assert tree(sample_store) == before
    assert_tmp_empty(sample_store)


@pytest.mark.parametrize("command", list(OUTPUT_COMMANDS))
def test_output_is_an_existing_directory(sample_store: Path, tmp_path: Path,
                                         command: str) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine\n")
    res = invoke(sample_store, *output_args(command), "-o", folder)
    assert_env_error(res, folder, "is a directory")
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
    assert (folder / "keep.txt").read_text() == "mine\n"
    assert_tmp_empty(sample_store)


# ------------------------------------------------------------------------------ stdout
CLOSED_STDOUT = ["sh", "-c", 'exec 1>&- && exec "$@"', "sh"]


@pytest.mark.parametrize("command", ["annotate-tsv", "annotate-vcf", "diff-tsv",
                                     "snapshot-diff-json"])
def test_closed_stdout_for_a_data_command(sample_store: Path, command: str) -> None:
    res = run_cli(sample_store, output_args(command), wrapper=CLOSED_STDOUT)
    line = assert_env_error(res)
    assert "stdout" in line or "standard output" in line, line
    assert_tmp_empty(sample_store)


@pytest.mark.parametrize("args", [["snapshot", "list", "-f", "tsv"],
                                  ["cohort", "list", "-f", "tsv"],
                                  ["snapshot", "show", OLD, "-f", "json"]],
                         ids=["snapshot-list", "cohort-list", "snapshot-show"])
def test_closed_stdout_for_a_listing(sample_store: Path, args: list[str]) -> None:
    res = run_cli(sample_store, args, wrapper=CLOSED_STDOUT)
    line = assert_env_error(res)
    assert "stdout" in line or "standard output" in line, line


def test_closed_stdout_for_snapshot_add_is_fine(tmp_path: Path) -> None:
    store = tmp_path / "store"
    res = run_cli(store, ["snapshot", "add", OLD_VCF], wrapper=CLOSED_STDOUT)
    assert res.code == 0, res.err
    assert error_lines(res.err) == [], res.err
    assert invoke(store, "snapshot", "verify").code == 0
    assert (store / "snapshots" / OLD / "variants.parquet").is_file()


def read_first_line_then_close(store: Path, args: Sequence[str | Path]) -> tuple[int, str, str]:
    """`CMD | head -1`: read one line, close the pipe, let the command run into it."""
    proc = subprocess.Popen([*cli_command(), "--store", str(store), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        first = proc.stdout.readline().decode()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        proc.stderr.close()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, first, err


def assert_quiet_broken_pipe(code: int, first: str, err: str) -> None:
    assert first, "nothing was written before the pipe closed"
    assert code == 141, (code, err[-3000:])
    assert error_lines(err) == [], f"error text on a closed pipe: {err[-3000:]}"


@pytest.mark.parametrize("fmt", ["vcf", "tsv"])
def test_annotate_into_a_pipe_closed_early(big_inputs: dict[str, Path], fmt: str) -> None:
    store = big_inputs["store"]
    code, first, err = read_first_line_then_close(
        store, ["annotate", big_inputs["patient"], "--snapshot", "clinvar-GRCh38-2024-03-01",
                "-f", fmt])
    assert_quiet_broken_pipe(code, first, err)
    assert_tmp_empty(store)


def test_annotate_into_shell_head(big_inputs: dict[str, Path]) -> None:
    """The same through a real shell pipeline and head(1)."""
    if shutil.which("bash") is None or shutil.which("head") is None:
        pytest.skip("needs bash and head")
    cmd = " ".join([*cli_command(), "--store", str(big_inputs["store"]), "annotate",
                    str(big_inputs["patient"]), "--snapshot", "clinvar-GRCh38-2024-03-01",
                    "-f", "vcf"])
    done = subprocess.run(["bash", "-c", f'{cmd} 2>"$0" | head -1 >/dev/null; '
                           'echo "${PIPESTATUS[0]}"', str(big_inputs["base"] / "err.txt")],
                          capture_output=True, text=True, check=True, timeout=120)
    err = (big_inputs["base"] / "err.txt").read_text()
    assert done.stdout.strip() == "141", err[-3000:]
    assert error_lines(err) == [], err[-3000:]


@pytest.fixture(scope="module")
def many_snapshots(sample_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store listing 800 snapshots (copies of one, renamed and resealed): `snapshot list`
    writes more than a pipe holds."""
    from varreinterp.store import SnapshotManifest

    store = tmp_path_factory.mktemp("many") / "store"
    shutil.copytree(sample_store, store)
    shutil.rmtree(store / "cohort")
    source = store / "snapshots" / OLD
    for k in range(800):
        name = f"copy-{k:04d}"
        dest = store / "snapshots" / name
        shutil.copytree(source, dest)
        manifest = SnapshotManifest.load(dest / "manifest.json")
        manifest.name = name
        manifest.seal()
        (dest / "manifest.json").write_text(json.dumps(manifest.to_json(), indent=2))
    return store


def test_snapshot_list_into_a_pipe_closed_early(many_snapshots: Path) -> None:
    listed = invoke(many_snapshots, "snapshot", "list", "-f", "tsv")
    assert listed.code == 0, listed.err
    assert len(listed.out) > 100_000  # more than a pipe (64 KiB) and the stream buffer hold
    code, first, err = read_first_line_then_close(many_snapshots,
                                                  ["snapshot", "list", "-f", "tsv"])
    assert_quiet_broken_pipe(code, first, err)


# ------------------------------------------------------------------------------ permissions
PERMISSION_COMMANDS = {
    "snapshot-list": ["snapshot", "list", "-f", "tsv"],
    "snapshot-add": ["snapshot", "add", str(SAMPLES / "clinvar_GRCh38_2024-06-02.vcf")],
    "annotate": ["annotate", str(TRIO), "--snapshot", OLD, "-f", "tsv"],
    "cohort-add": ["cohort", "add", str(TRIO), "--baseline", OLD],
    "cohort-list": ["cohort", "list", "-f", "tsv"],
    "snapshot-verify": ["snapshot", "verify"],
}


@pytest.mark.parametrize("command", list(PERMISSION_COMMANDS))
def test_store_of_another_user(public_dir: Path, command: str) -> None:
    nobody = as_nobody()
    store = public_dir / "store"
    created = invoke(store, "snapshot", "add", OLD_VCF)
    assert created.code == 0, created.err
    assert store.stat().st_mode & 0o777 == 0o700
    before = tree(store)
    res = run_cli(store, PERMISSION_COMMANDS[command], wrapper=nobody)
    assert_env_error(res, store, DENIED)
    assert tree(store) == before


@pytest.fixture(scope="module")
def nobody_template() -> Iterator[Path]:
    """A store created by `nobody`, holding the old sample release and the trio."""
    nobody = as_nobody()
    home = Path(tempfile.mkdtemp(prefix="varreinterp-env-"))
    try:
        os.chmod(home, 0o755)
        os.chown(home, pwd.getpwnam(NOBODY).pw_uid, pwd.getpwnam(NOBODY).pw_gid)
        store = home / "store"
        steps: list[list[str | Path]] = [["snapshot", "add", OLD_VCF],
                                         ["cohort", "add", TRIO, "--baseline", OLD]]
        for args in steps:
            res = run_cli(store, args, wrapper=nobody)
            assert res.code == 0, res.err
        yield store
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def nobodys_store(nobody_template: Path, public_dir: Path) -> Path:
    """A private copy of the template, owned by `nobody`."""
    store = public_dir / "store"
    shutil.copytree(nobody_template, store)
    give_to_nobody(public_dir)
    return store


READ_ONLY_CASES = {
    # name: (path under the store, its mode, command, the path the error must name)
    "lock-read-only": ("lock", 0o400, "snapshot-add", "lock"),
    "snapshots-dir-read-only": ("snapshots", 0o500, "snapshot-add", "snapshots"),
    "tmp-dir-read-only-add": ("tmp", 0o500, "snapshot-add", "tmp"),
    "tmp-dir-read-only-annotate": ("tmp", 0o500, "annotate", "tmp"),
    "store-json-unreadable": ("store.json", 0o000, "snapshot-add", "store.json"),
    "manifest-unreadable": (f"snapshots/{OLD}/manifest.json", 0o000, "annotate",
                            "manifest.json"),
    "variants-unreadable": (f"snapshots/{OLD}/variants.parquet", 0o000, "annotate",
                            "variants.parquet"),
    "registry-unreadable": ("cohort/patients.json", 0o000, "cohort-list", "patients.json"),
    "cohort-dir-read-only": ("cohort", 0o500, "cohort-add-other", "cohort"),
}
COMMANDS_AS_NOBODY = {
    **PERMISSION_COMMANDS,
    "cohort-add-other": ["cohort", "add", str(SAMPLES / "patient_single.vcf.gz"),
                         "--baseline", OLD],
}


@pytest.mark.parametrize("case", list(READ_ONLY_CASES))
def test_read_only_or_unreadable_store_file(nobodys_store: Path, case: str) -> None:
    rel, mode, command, named = READ_ONLY_CASES[case]
    target = nobodys_store / rel
    before = tree(nobodys_store)
    os.chmod(target, mode)
    try:
        res = run_cli(nobodys_store, COMMANDS_AS_NOBODY[command], wrapper=as_nobody())
    finally:
        os.chmod(target, 0o700 if target.is_dir() else 0o600)
    line = assert_env_error(res, DENIED)
    assert str(nobodys_store) in line and named in line, line
    assert tree(nobodys_store) == before
    assert_tmp_empty(nobodys_store)


def test_read_only_output_directory(nobodys_store: Path, public_dir: Path) -> None:
    folder = public_dir / "out"
    folder.mkdir()
    give_to_nobody(folder)
    os.chmod(folder, 0o500)
    out = folder / "OUT.tsv"
    res = run_cli(nobodys_store, ["annotate", TRIO, "--snapshot", OLD, "-f", "tsv", "-o", out],
                  wrapper=as_nobody())
    assert_env_error(res, out, DENIED)
    assert list(folder.iterdir()) == []
    assert_tmp_empty(nobodys_store)


@needs_root
def test_read_only_file_system(tmpfs: Mounter, sample_store: Path) -> None:
    mount = tmpfs("fs", "8m")
    store = mount / "store"
    shutil.copytree(sample_store, store)
    before = tree(store)
    done = subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot remount read-only: {done.stderr.decode().strip()}")
    steps: list[list[str | Path]] = [
        ["snapshot", "add", SAMPLES / "clinvar_GRCh38_2024-06-02.vcf", "--name", "x"],
        ["annotate", TRIO, "--snapshot", OLD, "-f", "tsv"],
        ["cohort", "add", SAMPLES / "patient_single.vcf.gz", "--baseline", OLD],
        ["snapshot", "remove", OLD]]
    for args in steps:
        res = run_cli(store, args)
        assert_env_error(res, store, READ_ONLY)
    out = mount / "OUT.tsv"
    res = run_cli(sample_store, ["annotate", TRIO, "--snapshot", OLD, "-f", "tsv", "-o", out])
    assert_env_error(res, out, READ_ONLY)
    assert tree(store) == before


# ------------------------------------------------------------------------------ store files
MANIFEST_EDITS: dict[str, tuple[str, object]] = {
    "files-string": ("files", "x"),
    "records-string": ("records", "12"),
    "tiers-list": ("tiers", [1, 2]),
    "stars-values": ("stars", {"1": "many"}),
    "skipped-null": ("skipped", None),
    "release-date-number": ("release_date", 20240107),
}
MANIFEST_COMMANDS = {
    "snapshot-verify": ["snapshot", "verify"],
    "snapshot-list": ["snapshot", "list", "-f", "tsv"],
    "snapshot-show": ["snapshot", "show", OLD, "-f", "json"],
    "annotate": ["annotate", str(TRIO), "--snapshot", OLD, "-f", "tsv"],
}


@pytest.mark.parametrize("command", list(MANIFEST_COMMANDS))
@pytest.mark.parametrize("edit", list(MANIFEST_EDITS))
def test_manifest_with_wrong_types(store_copy: Path, edit: str, command: str) -> None:
    manifest = store_copy / "snapshots" / OLD / "manifest.json"
    data = json.loads(manifest.read_text())
    key, value = MANIFEST_EDITS[edit]
    data[key] = value
    manifest.write_text(json.dumps(data, indent=2))
    res = invoke(store_copy, *MANIFEST_COMMANDS[command])
    assert res.code == 4, (res.code, res.err)
    lines = error_lines(res.err)
    assert len(lines) == 1 and lines[0].startswith("varreinterp: error: "), res.err
    assert "Traceback" not in res.err
    # verify lists its problems as data on stdout; every other command names the file on
    # its error line.
    where = res.err + res.out if command == "snapshot-verify" else lines[0]
    assert str(manifest) in where, (str(manifest), where)


REGISTRY_EDITS: dict[str, Callable[[dict[str, object]], None]] = {
    "patients-string": lambda d: d.__setitem__("patients", "x"),
    "patients-list": lambda d: d.__setitem__("patients", []),
    "alleles-string": lambda d: _first_patient(d).__setitem__("alleles", "12"),
    # The cohort index (registry schema 3): each patient's number keys its rows in the index
    # files the catalog lists; a wrong type or a number used twice must be refused, never
    # read as another patient's rows.
    "number-string": lambda d: _first_patient(d).__setitem__("number", "1"),
    "number-reused": lambda d: _last_patient(d).__setitem__("number",
                                                             _first_patient(d)["number"]),
    "previous-list": lambda d: _first_patient(d).__setitem__("previous", ["clinvar/GRCh38"]),
    "index-files-list": lambda d: _index(d).__setitem__("files", []),
    "index-file-size-string": lambda d: _first_index_file(d).__setitem__("size", "1122"),
    "patient-not-an-object": lambda d: _patients(d).__setitem__(next(iter(_patients(d))), 7),
    "delivered-runs-string": lambda d: d.__setitem__("delivered_runs", "x"),
}


def _patients(data: dict[str, object]) -> dict[str, object]:
    patients = data["patients"]
    assert isinstance(patients, dict)
    return patients


def _first_patient(data: dict[str, object]) -> dict[str, object]:
    first = next(iter(_patients(data).values()))
    assert isinstance(first, dict)
    return first


def _last_patient(data: dict[str, object]) -> dict[str, object]:
    last = list(_patients(data).values())[-1]
    assert isinstance(last, dict) and last is not _first_patient(data)
    return last


def _index(data: dict[str, object]) -> dict[str, object]:
    index = data["index"]
    assert isinstance(index, dict)
    return index


def _first_index_file(data: dict[str, object]) -> dict[str, object]:
    files = _index(data)["files"]
    assert isinstance(files, dict)
    first = next(iter(files.values()))
    assert isinstance(first, dict)
    return first


REGISTRY_COMMANDS = {
    "cohort-list": ["cohort", "list", "-f", "tsv"],
    "cohort-status": ["cohort", "status", "-f", "tsv"],
    "cohort-add": ["cohort", "add", str(SAMPLES / "patient_single.vcf.gz"), "--baseline", OLD],
    "reanalyze": ["reanalyze", "--dry-run", "-f", "tsv"],
}


@pytest.mark.parametrize("command", list(REGISTRY_COMMANDS))
@pytest.mark.parametrize("edit", list(REGISTRY_EDITS))
def test_registry_with_wrong_types(store_copy: Path, edit: str, command: str) -> None:
    registry = store_copy / "cohort" / "patients.json"
    data = json.loads(registry.read_text())
    REGISTRY_EDITS[edit](data)
    registry.write_text(json.dumps(data, indent=2))
    before = tree(store_copy)
    res = invoke(store_copy, *REGISTRY_COMMANDS[command])
    assert res.code == 4, (res.code, res.err)
    lines = error_lines(res.err)
    assert len(lines) == 1 and lines[0].startswith("varreinterp: error: "), res.err
    assert str(registry) in lines[0], lines[0]
    assert tree(store_copy) == before
    assert_tmp_empty(store_copy)


# ------------------------------------------------------------------------------ mappings
LAB_VCF = """##fileformat=VCFv4.1
##fileDate=2018-03-01
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
1\t1014143\t.\tC\tT\t.\t.\tCLINICAL_SIGNIFICANCE=Pathogenic;REVIEW_STATUS=no_assertion_criteria_provided;VARIATION_ID=1
1\t1014316\t.\tC\tCG\t.\t.\tCLINICAL_SIGNIFICANCE=Benign;REVIEW_STATUS=no_assertion_criteria_provided;VARIATION_ID=2
"""


def broken_mapping(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    """The shipped VCF mapping with one line replaced; returns it and that line's number."""
    text = (MAPPINGS / "macarthur-vcf.toml").read_text()
    lines = text.splitlines()
    index = lines.index(old)
    lines[index] = new
    path = tmp_path / "broken.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, index + 1


MAPPING_CASES = {
    # name: (line of the shipped mapping, its replacement, what the message must name)
    "contig-number": ('contig = "CHROM"', "contig = 5", "contig"),
    "unknown-column-key": ('gene = "SYMBOL"', 'colour = "SYMBOL"', "colour"),
    "unknown-source-key": ('name = "macarthur"', 'nmae = "macarthur"', "nmae"),
    "unknown-section": ("[replace]", "[replacements]", "replacements"),
    "alt-list-of-numbers": ('alt = "ALT"', "alt = [1, 2]", "alt"),
    "format-number": ('format = "vcf"', "format = 1", "format"),
}


@pytest.mark.parametrize("case", list(MAPPING_CASES))
def test_mapping_of_the_wrong_shape(tmp_path: Path, case: str) -> None:
    old, new, key = MAPPING_CASES[case]
    mapping, line = broken_mapping(tmp_path, old, new)
    table = tmp_path / "lab_release20180301.vcf"
    table.write_text(LAB_VCF)
    store = tmp_path / "store"
    res = invoke(store, "snapshot", "add", table, "--mapping", mapping, "--assembly", "GRCh38")
    assert res.code == 2, (res.code, res.err)
    lines = error_lines(res.err)
    assert len(lines) == 1 and lines[0].startswith("varreinterp: error: "), res.err
    assert key in lines[0], lines[0]
    assert f"{mapping}:{line}" in lines[0], (f"{mapping}:{line}", lines[0])
    assert not (store / "snapshots").is_dir() or list((store / "snapshots").iterdir()) == []
