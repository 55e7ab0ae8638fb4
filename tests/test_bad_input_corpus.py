"""The bad-input corpus (tests/make_bad_inputs.py) through every command that reads it.

For each entry: the promised exit code (never 70, never a traceback). On a refusal (exit 3):
exactly one stderr line `varreinterp: error: FILE[:LINE]: message` holding the entry's
substring and line, nothing on stdout, no output file, the store's snapshots and cohort
untouched. Always: nothing left under STORE/tmp. On success: the entry's property, checked
against an independent reading (tests/oracle.py) of the same file.

One store holding the two sample releases serves the whole module; commands that write
(`snapshot add`, `cohort add`) get a copy of it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import make_bad_inputs as corpus
import pytest
from builders import clinvar_keys, stats
from conftest import ROOT, SAMPLES, CliResult, invoke
from make_bad_inputs import Check, Entry, Family, Kind
from oracle import bare, carried_calls

A = "clinvar-GRCh38-2024-01-07"
B = "clinvar-GRCh38-2024-06-02"
RELEASE_B = SAMPLES / "clinvar_GRCh38_2024-06-02.vcf"
ENTRIES = corpus.manifest()
PATIENTS = [e for e in ENTRIES if e.kind is Kind.PATIENT]
DEEP = [e for e in PATIENTS if e.deep]
RELEASES = [e for e in ENTRIES if e.kind is Kind.RELEASE]

Hit = tuple[str, str, int, str, str]  # sample, contig without chr, pos, ref, alt


@dataclass
class World:
    """The generated corpus, the shared store and a scratch folder for outputs and copies."""

    files: Path
    store: Path
    scratch: Path
    _hits: dict[str, list[Hit]] = field(default_factory=dict)
    _n: int = 0

    def path(self, entry: Entry) -> Path:
        return self.files / entry.name

    def fresh(self, suffix: str) -> Path:
        """A path under scratch that does not exist yet."""
        self._n += 1
        return self.scratch / f"out{self._n}{suffix}"

    def store_copy(self) -> Path:
        self._n += 1
        copy = self.scratch / f"store{self._n}"
        shutil.copytree(self.store, copy)
        return copy

    def hits(self, name: str) -> list[Hit]:
        """annotate's rows for a corpus file that must be accepted (memoized)."""
        if name not in self._hits:
            out = self.fresh(".tsv")
            res = invoke(self.store, "annotate", self.files / name, "--snapshot", B, "-f",
                         "tsv", "-o", out)
            assert res.code == 0, res.err
            self._hits[name] = tsv_hits(out)
        return self._hits[name]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("corpus")
    store = root / "store"
    for release in ("clinvar_GRCh38_2024-01-07.vcf", "clinvar_GRCh38_2024-06-02.vcf"):
        res = invoke(store, "snapshot", "add", SAMPLES / release)
        assert res.code == 0, res.err
    corpus.generate(root / "files")
    scratch = root / "scratch"
    scratch.mkdir()
    return World(root / "files", store, scratch)


# ------------------------------------------------------------------------------ helpers
def store_state(store: Path) -> dict[str, str]:
    """Every file under snapshots/ and cohort/, with its content digest."""
    return {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
            for sub in ("snapshots", "cohort") if (store / sub).exists()
            for p in sorted((store / sub).rglob("*")) if p.is_file()}


def assert_no_leftovers(store: Path) -> None:
    tmp = store / "tmp"
    left = sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []
    assert left == [], f"temporary files left in {tmp}: {left}"


def assert_no_bug(res: CliResult) -> None:
    assert res.code != 70, res.err
    assert "Traceback" not in res.err, res.err


def assert_refused(res: CliResult, entry: Entry, path: Path) -> None:
    """Exit 3, one error line naming the file (and line), the entry's substring, no stdout."""
    assert_no_bug(res)
    assert res.code == 3, f"{entry.name}: expected exit 3, got {res.code}\n{res.err}"
    assert res.out == ""
    lines = res.err.splitlines()
    assert len(lines) == 1, res.err
    assert lines[0].startswith("varreinterp: error: "), lines[0]
    assert str(path) in lines[0], lines[0]
    if entry.needle is not None:
        assert entry.needle in lines[0], (entry.needle, lines[0])
    if entry.line is not None:
        assert f"{path}:{entry.line}: " in lines[0], (entry.line, lines[0])


def assert_accepted(res: CliResult, entry: Entry) -> None:
    assert_no_bug(res)
    assert res.code == 0, f"{entry.name}: expected exit 0, got {res.code}\n{res.err}"
    assert res.out == ""  # every command here writes to -o


def tsv_hits(out: Path) -> list[Hit]:
    lines = out.read_text().splitlines()
    assert lines[0].startswith("#tool=varreinterp")
    columns = lines[1].split("\t")
    rows = [dict(zip(columns, ln.split("\t"), strict=True)) for ln in lines[2:]]
    return [(r["sample"], bare(r["chrom"]), int(r["pos"]), r["ref"], r["alt"]) for r in rows]


def expected_hits(path: Path, without_mt: bool) -> set[Hit]:
    """The independent reading: carried calls intersected with release B's classified keys."""
    keys = clinvar_keys(RELEASE_B)
    _, calls = carried_calls(path)
    return {(s, b, p, r, a) for s, _, p, r, a, b in calls
            if (b, p, r, a) in keys and not (without_mt and b == "MT")}


def data_lines(path: Path) -> int:
    n, _ = carried_calls(path)
    return n


# ------------------------------------------------------------------------------ the corpus
def test_corpus_covers_every_family() -> None:
    assert len(ENTRIES) >= 60
    per_family = {f: sum(e.family is f for e in ENTRIES) for f in Family}
    assert all(n >= 2 for n in per_family.values()), per_family
    for e in ENTRIES:
        assert e.exit_code in (0, 3)
        assert (e.check is not None) == (e.exit_code == 0), e.name
    assert {e.kind for e in ENTRIES} == set(Kind)


def test_script_writes_the_same_corpus(world: World, tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(ROOT / "tests" / "make_bad_inputs.py"),
                          str(tmp_path / "again")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    listed = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert [e["name"] for e in listed] == [e.name for e in ENTRIES]
    for e in ENTRIES:  # byte for byte: the corpus is deterministic
        assert (tmp_path / "again" / e.name).read_bytes() == world.path(e).read_bytes(), e.name


# ------------------------------------------------------------------------------ patients
def annotate_once(world: World, entry: Entry, path: Path, out: Path,
                  fmt: str) -> CliResult | None:
    """annotate to `out`, which must leave the store as it was; None when the entry is one
    to refuse (and was, writing nothing), else the accepted run."""
    before = store_state(world.store)
    res = invoke(world.store, "annotate", path, "--snapshot", B, "-f", fmt, "-o", out)
    assert_no_leftovers(world.store)
    assert store_state(world.store) == before
    if entry.exit_code == 3:
        assert_refused(res, entry, path)
        assert not out.exists()
        return None
    assert_accepted(res, entry)
    return res


@pytest.mark.parametrize("entry", PATIENTS, ids=lambda e: e.name)
def test_annotate_tsv(world: World, entry: Entry) -> None:
    path, out = world.path(entry), world.fresh(".tsv")
    res = annotate_once(world, entry, path, out, "tsv")
    if res is None:
        return
    hits = tsv_hits(out)
    assert len(hits) == len(set(hits)), f"a call reported twice: {hits}"
    assert set(hits) == expected_hits(path, entry.check is Check.ORACLE_WITHOUT_MT)
    if entry.check is Check.ORACLE_WITHOUT_MT:
        assert all(chrom != "MT" for _, chrom, *_ in hits)
    if entry.same_as is not None:
        assert sorted(hits) == sorted(world.hits(entry.same_as))
    skipped = stats(res.err)["skipped"]
    assert isinstance(skipped, dict)
    for reason, n in entry.skipped.items():
        assert skipped.get(reason) == n, (reason, skipped)


@pytest.mark.parametrize("entry", PATIENTS, ids=lambda e: e.name)
def test_annotate_vcf(world: World, entry: Entry) -> None:
    """The annotated-VCF path reads the same files and owes them the same verdict."""
    path, out = world.path(entry), world.fresh(".vcf")
    if annotate_once(world, entry, path, out, "vcf") is None:
        return
    written = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert len(written) == data_lines(path)  # every record is written


@pytest.mark.parametrize("command", ["diff", "history"])
@pytest.mark.parametrize("entry", DEEP, ids=lambda e: e.name)
def test_diff_and_history(world: World, entry: Entry, command: str) -> None:
    path, out = world.path(entry), world.fresh(".tsv")
    before = store_state(world.store)
    args = ["--from", A, "--to", B] if command == "diff" else []
    res = invoke(world.store, command, path, *args, "-f", "tsv", "-o", out)
    assert_no_leftovers(world.store)
    assert store_state(world.store) == before
    if entry.exit_code == 3:
        assert_refused(res, entry, path)
        assert not out.exists()
    else:
        assert_accepted(res, entry)
        assert out.read_text().startswith("#tool=varreinterp")


@pytest.mark.parametrize("entry", DEEP, ids=lambda e: e.name)
def test_cohort_add(world: World, entry: Entry) -> None:
    path, store = world.path(entry), world.store_copy()
    before = store_state(store)
    res = invoke(store, "cohort", "add", path)
    assert_no_leftovers(store)
    if entry.exit_code == 3:
        assert_refused(res, entry, path)
        assert store_state(store) == before
    else:
        assert_accepted(res, entry)
        patients = json.loads((store / "cohort" / "patients.json").read_text())["patients"]
        assert {p["source"] for p in patients.values()} == {str(path)}
        if entry.check is not None and entry.check is not Check.SNAPSHOT_KEYS:
            expected = expected_hits(path, entry.check is Check.ORACLE_WITHOUT_MT)
            assert {p["sample"] for p in patients.values()} >= {h[0] for h in expected}


# ------------------------------------------------------------------------------ releases
def snapshot_rows(store: Path, name: str) -> list[tuple[object, ...]]:
    parquet = store / "snapshots" / name / "variants.parquet"
    with duckdb.connect() as con:
        rows: list[tuple[object, ...]] = con.execute(
            f"SELECT * FROM read_parquet('{parquet}') ORDER BY ALL").fetchall()
    return rows


@pytest.mark.parametrize("entry", RELEASES, ids=lambda e: e.name)
def test_snapshot_add(world: World, entry: Entry) -> None:
    path, store = world.path(entry), world.store_copy()
    before = store_state(store)
    res = invoke(store, "snapshot", "add", path)
    assert_no_leftovers(store)
    if entry.exit_code == 3:
        assert_refused(res, entry, path)
        assert store_state(store) == before
        return
    assert_no_bug(res)
    assert res.code == 0, res.err
    added = sorted({p.split("/")[1] for p in store_state(store)} - {A, B})
    assert len(added) == 1, added
    rows = snapshot_rows(store, added[0])
    assert rows == snapshot_rows(world.store, B)  # the same content as the undamaged release
    keys = {(bare(str(r[0])), r[1], r[2], r[3]) for r in rows if r[4] is not None}
    assert keys == clinvar_keys(RELEASE_B)
