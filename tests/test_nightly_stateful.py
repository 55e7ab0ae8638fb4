"""The nightly lifecycle as a Hypothesis state machine (issue 11, "Done when").

Random sequences of: `snapshot add` of hand-made releases of two lineages (ClinVar VCF
`clinvar/GRCh38` and a mapped lab table `mylab/GRCh38`) with random classifications over a
small universe of allele keys, sometimes partial (fewer records or a lost contig than the
latest earlier release that is not suspect itself: suspect, so two cut releases in a row both are);
`cohort add` of small random patients, following one more lineage, `--replace` with another
VCF; moving a VCF away; `snapshot remove` (allowed or refused); `reanalyze` (sometimes with
`--accept-suspect` or a `--to`); `reanalyze` killed (SIGKILL at a random moment, or a failure
injected after the report folder is written and before the registry is saved, or after the
registry and before the run log); `cohort status` before each plain `reanalyze`.

The model keeps, per patient and lineage, the snapshot it was last reviewed against, the alleles
it carries and, after a replacement, the alleles last delivered; it computes independently
(plain Python, tests/naive_changes.py for the change rules) what each run must deliver.
Invariants:
- each run delivers exactly the model's (patient, lineage, variant, change, priority, before,
  after, from, to) rows, so every expected change is delivered in exactly one report;
- no delivered row compares across lineages (or builds) or goes back in time;
- a run that could not reanalyze someone never exits 0;
- `cohort status` announces exactly what the next run would deliver;
- after every command that takes the store lock, STORE/tmp holds no leftovers;
- the cohort index on disk is exactly the registry's catalog (every file at its size, no
  orphan, each rows file with a key directory listing exactly its keys), and every live
  registration's rows are there: each patient's current number holds exactly the alleles it
  carries, each number still pending a replacement's delivery those last delivered on that
  lineage.
A report folder left by a run that failed before the registry was saved is not a delivered
report (its run id is not in the registry's `delivered_runs`): the next run redoes it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from builders import STARS_TO_REVIEW, lab_mapping, write_clinvar, write_patient
from conftest import ROOT, CliResult, invoke
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from naive_changes import naive_change

Allele = tuple[str, int, str, str]
Cls = tuple[str, str, int, str]  # classification, tier, stars, review status
Key = tuple[Any, ...]
IndexRow = tuple[str, int, str, str, str]  # key_chrom, pos, ref, alt, zygosity
KEYS_SUFFIX = ".keys.parquet"  # the key directory beside each rows file of the cohort index

CLINVAR, LAB = "clinvar/GRCh38", "mylab/GRCh38"
PREFIX = {CLINVAR: "clinvar-GRCh38-", LAB: "mylab-GRCh38-"}
# Four alleles on contig 1, three on X: a release keeping none of X loses a contig. Every
# release also holds one filler record on contig 2 (a position no patient carries), which keeps
# two releases of the lab table from ever having the same content.
ALLELES: list[Allele] = [("1", 1000 + 100 * i, "A", "G") for i in range(4)] + [
    ("X", 5000 + 100 * i, "C", "T") for i in range(3)]
CLASSES = [("Pathogenic", "pathogenic"), ("Likely_pathogenic", "pathogenic"),
           ("Uncertain_significance", "uncertain"), ("Likely_benign", "benign"),
           ("Benign", "benign"), ("Conflicting_classifications_of_pathogenicity", "conflicting")]
PATIENT_IDS = ["P1", "P2"]
ZYGOSITY = {"0/1": "het", "1/1": "hom"}  # genotype -> the index's zygosity
MAX_SNAPSHOTS = 7
LAB_TOML = lab_mapping(gene=False, terms=False)  # classes written as ClinVar spells them

classification = st.tuples(st.sampled_from(CLASSES), st.integers(0, 3)).map(
    lambda t: (t[0][0], t[0][1], t[1], STARS_TO_REVIEW[t[1]]))


@dataclass
class Snap:
    name: str
    lineage: str
    released: str
    classes: dict[Allele, Cls]
    records: int
    contigs: frozenset[str]
    suspect: bool


@dataclass
class PatientModel:
    path: Path
    carried: dict[Allele, str]  # allele -> genotype
    reviewed: dict[str, str]  # lineage -> snapshot
    # lineage -> the alleles last delivered on it, while a replacement waits to be delivered
    previous: dict[str, frozenset[Allele]] = field(default_factory=dict)


@dataclass
class Plan:
    """What the model says a reanalysis does."""

    code: int
    rows: Counter[Key]
    moves: dict[tuple[str, str], str]  # (patient, lineage) -> new reviewed snapshot
    failing: set[tuple[str, str]]


def bare(chrom: str) -> str:
    return chrom[3:] if chrom.startswith("chr") else chrom


def read_tsv(path: Path) -> list[dict[str, str | None]]:
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    return [{k: (v if v != "" else None) for k, v in row.items()}
            for row in csv.DictReader(lines, delimiter="\t")]


def row_key(r: dict[str, Any]) -> Key:
    return (r["patient"], r["lineage"], bare(str(r["chrom"])), int(r["pos"]), r["ref"],
            r["alt"], r["change"], r["priority"], r["before"], r["after"], r["from_snapshot"],
            r["to_snapshot"])


class NightlyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.base = Path(tempfile.mkdtemp(prefix="varreinterp-nightly-"))
        self.store = self.base / "store"
        self.toml = self.base / "mylab.toml"
        self.toml.write_text(LAB_TOML)
        self.day = 0
        self.files = 0
        self.snaps: dict[str, Snap] = {}
        self.ever: dict[str, Snap] = {}  # every snapshot ever stored, removed ones too
        self.patients: dict[str, PatientModel] = {}
        self.expected: Counter[Key] = Counter()  # everything the model says was delivered
        self.known_runs: set[str] = set()
        self.locked_step = False
        self.read_files: dict[tuple[str, int, int], list[tuple[int, IndexRow]]] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    # ------------------------------------------------------------------ helpers
    def cli(self, *args: str | Path) -> CliResult:
        return invoke(self.store, *args)

    def new_path(self, name: str) -> Path:
        self.files += 1
        folder = self.base / "files" / str(self.files)
        folder.mkdir(parents=True)
        return folder / name

    def newest(self, lineage: str, trusted: bool = False) -> Snap | None:
        """The newest stored release of `lineage`; `trusted`: the newest not suspect."""
        series = sorted((s for s in self.snaps.values()
                         if s.lineage == lineage and not (trusted and s.suspect)),
                        key=lambda s: s.released)
        return series[-1] if series else None

    def registry(self) -> dict[str, Any]:
        path = self.store / "cohort" / "patients.json"
        data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        return data

    def delivered_runs(self) -> set[str]:
        return set(self.registry().get("delivered_runs", []))

    def report_of(self, run_id: str) -> Path:
        for parent in (self.store / "reports", self.base / "reports"):
            if parent.is_dir():
                for folder in parent.iterdir():
                    run = folder / "run.json"
                    if run.is_file() and json.loads(run.read_text())["run_id"] == run_id:
                        return folder
        raise AssertionError(f"no report folder holds delivered run {run_id}")

    def write_vcf(self, pid: str, carried: dict[Allele, str], noise: int) -> Path:
        """A one-sample VCF; `noise` changes the bytes (QUAL of a hom-ref record) without
        changing what the patient carries."""
        path = self.new_path(f"{pid}.vcf")
        records = [f"chr{c} {p} . {r} {a} 50 PASS . GT {gt}"
                   for (c, p, r, a), gt in sorted(carried.items(),
                                                  key=lambda x: (x[0][0] == "X", x[0][1]))]
        records.insert(0, f"chr1 777 . A C {noise} PASS . GT 0/0")
        return write_patient(path, [pid], records, extra_header="##reference=GRCh38")

    # ------------------------------------------------------------------ the model's runs
    def plan(self, to: str | None, accept_suspect: bool, exit_code: bool) -> Plan:
        rows: Counter[Key] = Counter()
        moves: dict[tuple[str, str], str] = {}
        failing: set[tuple[str, str]] = set()
        explicit = self.snaps[to] if to else None
        if explicit is not None and explicit.suspect and not accept_suspect:
            return Plan(4, rows, moves, failing)
        # A suspect newest release stops the run only when someone would move onto it: the
        # patients already reviewed against it (an earlier --accept-suspect) are up to date.
        if explicit is None and not accept_suspect and any(
                (n := self.newest(lin)) is not None and n.suspect and n.name != reviewed
                for p in self.patients.values() for lin, reviewed in p.reviewed.items()):
            return Plan(4, rows, moves, failing)
        for pid, p in self.patients.items():
            for lin, reviewed_name in p.reviewed.items():
                if explicit is not None and explicit.lineage != lin:
                    continue  # out of scope
                target = explicit or self.newest(lin)
                assert target is not None  # its reviewed snapshot is protected from removal
                before = self.snaps[reviewed_name]
                if target.released < before.released:
                    failing.add((pid, lin))
                    continue
                if target.name == reviewed_name and lin not in p.previous:
                    continue  # up to date
                moves[(pid, lin)] = target.name
                rows.update(self.track_rows(pid, p, lin, before, target))
        code = 6 if failing else 1 if exit_code and rows else 0
        return Plan(code, rows, moves, failing)

    def track_rows(self, pid: str, p: PatientModel, lin: str, a: Snap, b: Snap) -> list[Key]:
        out: list[Key] = []
        if a.name != b.name:
            for allele in p.carried:
                ca, cb = a.classes.get(allele), b.classes.get(allele)
                found = naive_change(ca, cb)
                if found:
                    kind, priority = found
                    out.append((pid, lin, *allele, kind.value, priority.value,
                                ca[0] if ca else None, cb[0] if cb else None, a.name, b.name))
        if lin in p.previous:
            last = p.previous[lin]
            for allele in set(p.carried) - last:
                if allele in a.classes:
                    cls = a.classes[allele]
                    prio = "high" if cls[1] == "pathogenic" else "medium"
                    out.append((pid, lin, *allele, "newly_carried", prio, None, cls[0],
                                a.name, a.name))
            for allele in last - set(p.carried):
                if allele in a.classes:
                    out.append((pid, lin, *allele, "no_longer_carried", "low",
                                a.classes[allele][0], None, a.name, a.name))
        return out

    def apply(self, plan: Plan) -> None:
        for (pid, lin), target in plan.moves.items():
            p = self.patients[pid]
            p.reviewed[lin] = target
            p.previous.pop(lin, None)
        self.expected.update(plan.rows)

    def check_run(self, plan: Plan, run_id: str | None) -> None:
        """The run `run_id` (None: it delivered no report) delivered exactly `plan.rows`."""
        if not plan.rows:
            assert run_id is None, "a report folder although nothing changed"
            return
        assert run_id is not None, f"nothing delivered; expected {sorted(plan.rows)}"
        folder = self.report_of(run_id)
        got = Counter(row_key(r) for r in read_tsv(folder / "changes.tsv"))
        assert got == plan.rows, (f"delivered but not expected: {sorted(got - plan.rows)}\n"
                                  f"expected, not delivered: {sorted(plan.rows - got)}")
        for key in got:
            a, b = self.ever[key[10]], self.ever[key[11]]
            assert a.lineage == b.lineage == key[1], f"compared across lineages: {key}"
            assert a.released <= b.released, f"went backwards: {key}"

    def check_registry(self) -> None:
        reg = self.registry().get("patients", {})
        assert {pid: p["reviewed"] for pid, p in reg.items()} == {
            pid: p.reviewed for pid, p in self.patients.items()}
        for pid, p in reg.items():
            assert sorted(p["previous"]) == sorted(self.patients[pid].previous), pid

    def finish_run(self, plan: Plan, r: CliResult, known: set[str]) -> None:
        new = self.delivered_runs() - known
        assert len(new) <= 1
        self.check_run(plan, next(iter(new), None))
        if r.code != 4:
            self.apply(plan)
        self.check_registry()
        self.known_runs |= new

    # ------------------------------------------------------------------ rules
    @precondition(lambda self: len(self.snaps) < MAX_SNAPSHOTS)
    @rule(lineage=st.sampled_from([CLINVAR, LAB]),
          classes=st.fixed_dictionaries({a: classification for a in ALLELES}),
          keep=st.one_of(st.none(), st.sets(st.sampled_from(ALLELES), max_size=5)))
    def add_release(self, lineage: str, classes: dict[Allele, Cls],
                    keep: set[Allele] | None) -> None:
        """A release of `lineage`; `keep` (a partial release): only these alleles."""
        self.day += 1
        released = (date(2024, 1, 1) + timedelta(days=self.day)).isoformat()
        if keep is not None:
            classes = {a: c for a, c in classes.items() if a in keep}
        filler = ("2", 90000 + self.day, "G", "A")
        records = [(*a, c[0], c[2], f"G{a[1]}", None) for a, c in classes.items()]
        records.append((*filler, "Benign", 2, "FILL", None))
        if lineage == CLINVAR:
            path = write_clinvar(self.new_path("release.vcf"), records, date=released)
            args: list[str | Path] = [path]
        else:
            path = self.new_path("release.tsv")
            path.write_text("chrom\tpos\tref\talt\tclass\treview\n" + "".join(
                f"{c}\t{p}\t{r}\t{a}\t{sig}\t{STARS_TO_REVIEW[stars]}\n"
                for c, p, r, a, sig, stars, _, _ in records))
            args = [path, "--format", "table", "--mapping", self.toml, "--assembly", "GRCh38",
                    "--release-date", released]
        name = PREFIX[lineage] + released
        contigs = frozenset({a[0] for a in classes} | {"2"})
        # The yardstick is the latest stored release of the lineage that is not itself
        # suspect: a second cut release compared with the first would pass as 'ok'.
        prev = self.newest(lineage, trusted=True)
        suspect = prev is not None and (len(records) < prev.records * 0.95
                                        or not prev.contigs <= contigs)
        r = self.cli("snapshot", "add", *args)
        assert r.code == 0, r.err
        manifest = json.loads((self.store / "snapshots" / name / "manifest.json").read_text())
        assert manifest["lineage"] == lineage and manifest["records"] == len(records)
        assert (manifest["suspect"] is not None) == suspect, (manifest["suspect"], prev)
        snap = Snap(name, lineage, released, classes, len(records), contigs, suspect)
        self.snaps[name] = self.ever[name] = snap
        self.locked_step = True

    @precondition(lambda self: self.snaps and len(self.patients) < len(PATIENT_IDS))
    @rule(data=st.data(), carried=st.dictionaries(st.sampled_from(ALLELES),
                                                  st.sampled_from(["0/1", "1/1"]), max_size=5),
          noise=st.integers(1, 99), both=st.booleans())
    def add_patient(self, data: st.DataObject, carried: dict[Allele, str], noise: int,
                    both: bool) -> None:
        """A new patient; `both`: it also follows the other lineage at once (when stored)."""
        pid = next(p for p in PATIENT_IDS if p not in self.patients)
        baseline = data.draw(st.sampled_from(sorted(self.snaps)), label="baseline")
        path = self.write_vcf(pid, carried, noise)
        r = self.cli("cohort", "add", path, "--baseline", baseline)
        assert r.code == 0, r.err
        self.patients[pid] = PatientModel(path, dict(carried),
                                          {self.snaps[baseline].lineage: baseline})
        self.check_registry()
        self.locked_step = True
        if both and len({s.lineage for s in self.snaps.values()}) == 2:
            self.follow(pid, data)

    def follow(self, pid: str, data: st.DataObject) -> None:
        p = self.patients[pid]
        other = [s for s in sorted(self.snaps) if self.snaps[s].lineage not in p.reviewed]
        baseline = data.draw(st.sampled_from(other), label="baseline")
        r = self.cli("cohort", "add", p.path, "--baseline", baseline)
        assert r.code == 0 and "now also follows" in r.err, r.err
        p.reviewed[self.snaps[baseline].lineage] = baseline
        self.check_registry()
        self.locked_step = True

    @precondition(lambda self: any(len(p.reviewed) < 2 for p in self.patients.values())
                  and len({s.lineage for s in self.snaps.values()}) == 2)
    @rule(data=st.data())
    def follow_lineage(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(p for p, m in self.patients.items()
                                               if len(m.reviewed) < 2)), label="patient")
        self.follow(pid, data)

    @precondition(lambda self: self.patients)
    @rule(data=st.data(), carried=st.one_of(st.none(), st.dictionaries(
        st.sampled_from(ALLELES), st.sampled_from(["0/1", "1/1"]), max_size=5)),
          noise=st.integers(1, 99), anchored=st.booleans())
    def replace_vcf(self, data: st.DataObject, carried: dict[Allele, str] | None,
                    noise: int, anchored: bool) -> None:
        """A new VCF for a patient; `carried` None: a re-called file with the same calls (only
        its bytes differ). `anchored`: --baseline names a snapshot the patient already follows
        (a no-op for a registered patient); without it, a store holding both lineages must not
        ask for one."""
        pid = data.draw(st.sampled_from(sorted(self.patients)), label="patient")
        p = self.patients[pid]
        carried = dict(p.carried) if carried is None else carried
        path = self.write_vcf(pid, carried, noise)
        same = path.read_bytes() == p.path.read_bytes()
        anchor: list[str | Path] = ["--baseline", sorted(p.reviewed.values())[0]] \
            if anchored else []
        if not same:
            r = self.cli("cohort", "add", path, *anchor)
            assert r.code == 4 and "--replace" in r.err, r.err
        r = self.cli("cohort", "add", path, "--replace", *anchor)
        assert r.code == 0, r.err
        if not same:
            for lin in p.reviewed:
                p.previous.setdefault(lin, frozenset(p.carried))
            p.carried = dict(carried)
        p.path = path
        self.check_registry()
        self.locked_step = True

    @precondition(lambda self: self.patients)
    @rule(data=st.data())
    def move_vcf_away(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.patients)), label="patient")
        p = self.patients[pid]
        moved = self.new_path(f"{pid}.archived.vcf")
        shutil.move(p.path, moved)
        p.path = moved

    @precondition(lambda self: len(self.snaps) >= 3)
    @rule(data=st.data())
    def remove_snapshot(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.snaps)), label="snapshot")
        in_use = any(name in p.reviewed.values() for p in self.patients.values())
        r = self.cli("snapshot", "remove", name)
        if in_use:
            assert r.code == 4 and "varreinterp reanalyze" in r.err, r.err
        else:
            assert r.code == 0, r.err
            del self.snaps[name]
        assert (self.store / "snapshots" / name).is_dir() == in_use
        self.locked_step = True

    @precondition(lambda self: self.patients)
    @rule(accept_suspect=st.booleans(), exit_code=st.booleans(), in_store=st.booleans())
    def reanalyze(self, accept_suspect: bool, exit_code: bool, in_store: bool) -> None:
        self.check_status()
        self.run_reanalyze(None, accept_suspect, exit_code, in_store)

    @precondition(lambda self: self.patients)
    @rule(data=st.data(), accept_suspect=st.booleans(), exit_code=st.booleans())
    def reanalyze_to(self, data: st.DataObject, accept_suspect: bool, exit_code: bool) -> None:
        """`--to` a stored snapshot: the other lineage is out of scope, an older one than a
        patient's reviewed snapshot fails that patient (exit 6)."""
        to = data.draw(st.sampled_from(sorted(self.snaps)), label="to")
        self.run_reanalyze(to, accept_suspect, exit_code, True)

    def run_reanalyze(self, to: str | None, accept_suspect: bool, exit_code: bool,
                      in_store: bool) -> None:
        plan = self.plan(to, accept_suspect, exit_code)
        known = self.delivered_runs()
        r = self.cli(*self.reanalyze_args(to, accept_suspect, exit_code, in_store))
        assert r.code == plan.code, (r.code, plan, r.err)
        if r.code in (0, 1, 6):
            last = json.loads((self.store / "runs.jsonl").read_text().splitlines()[-1])
            assert last["exit_code"] == r.code
            assert {(f["patient"], f["lineage"]) for f in last["patients"]["failing"]} == \
                plan.failing
            if last["patients"]["failing"]:
                assert r.code != 0, "a run that could not reanalyze someone exited 0"
        self.finish_run(plan, r, known)
        self.locked_step = True

    def reanalyze_args(self, to: str | None, accept_suspect: bool, exit_code: bool,
                       in_store: bool) -> list[str | Path]:
        args: list[str | Path] = ["reanalyze"]
        if to:
            args += ["--to", to]
        if accept_suspect:
            args.append("--accept-suspect")
        if exit_code:
            args.append("--exit-code")
        if not in_store:
            args += ["--report-dir", self.base / "reports" / "{date}-{run_id}"]
        return args

    @precondition(lambda self: self.patients)
    @rule(how=st.sampled_from(["before_registry", "before_log", "sigkill"]),
          accept_suspect=st.booleans(), delay=st.floats(0.2, 1.1))
    def killed_reanalyze(self, how: str, accept_suspect: bool, delay: float) -> None:
        import varreinterp.reanalyze as core

        plan = self.plan(None, accept_suspect, False)
        known = self.delivered_runs()
        args = self.reanalyze_args(None, accept_suspect, False, in_store=True)
        boom = RuntimeError("simulated crash")
        if how == "sigkill":
            proc = subprocess.Popen(
                [sys.executable, "-m", "varreinterp", "--store", str(self.store),
                 *map(str, args)], cwd=ROOT, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=60)
            finished = proc.returncode in (0, 1, 4, 6)
            if finished:  # it ended before the kill: an ordinary run
                assert proc.returncode == plan.code, (proc.returncode, plan, err)
                self.finish_run(plan, CliResult(proc.returncode, "", err), known)
                self.locked_step = True
                return
        else:
            target = "_record_reviewed" if how == "before_registry" else "append_run"
            with mock.patch.object(core, target, side_effect=boom):
                r = self.cli(*args)
            if r.code == 4:  # refused before anything (suspect target)
                assert plan.code == 4, r.err
                self.check_registry()
                return
            assert r.code == 70, r.err
            self.locked_step = True
        self.reconcile(plan, known)

    def reconcile(self, plan: Plan, known: set[str]) -> None:
        """After a kill: the registry either recorded the whole run (then its report is on
        disk, complete) or nothing of it (then the next run redoes it)."""
        reg = self.registry().get("patients", {})
        moved = {(pid, lin) for pid, p in reg.items() for lin, name in p["reviewed"].items()
                 if name != self.patients[pid].reviewed[lin]}
        cleared = {(pid, lin) for pid, p in reg.items() for lin in self.patients[pid].previous
                   if lin not in p["previous"]}
        if not moved and not cleared:
            self.check_registry()
            assert self.delivered_runs() == known
            return
        assert plan.code != 4
        new = self.delivered_runs() - known
        assert len(new) <= 1
        self.check_run(plan, next(iter(new), None))
        self.apply(plan)
        self.check_registry()
        self.known_runs |= new

    def check_status(self) -> None:
        """`cohort status` announces exactly what the next run delivers (a suspect target
        accepted): state and counts by priority of each (patient, lineage)."""
        plan = self.plan(None, True, False)
        r = self.cli("cohort", "status", "--format", "json")
        assert r.code == (6 if plan.failing else 0), r.err
        for s in (json.loads(ln) for ln in r.out.splitlines() if ln.strip()):
            pid, lin = s["patient"], s["lineage"]
            mine = [k for k in plan.rows if k[0] == pid and k[1] == lin]
            want = ("failing" if (pid, lin) in plan.failing else
                    "waiting" if (pid, lin) in plan.moves else "up_to_date")
            assert s["state"] == want, (s, plan)
            assert (s["high"], s["medium"], s["low"]) == tuple(
                sum(1 for k in mine if k[7] == prio) for prio in ("high", "medium", "low")), s

    # ------------------------------------------------------------------ invariants
    @invariant()
    def no_leftovers(self) -> None:
        tmp = self.store / "tmp"
        if self.locked_step and tmp.is_dir():
            assert sorted(p.name for p in tmp.iterdir()) == [], "STORE/tmp not cleaned"
        self.locked_step = False

    @invariant()
    def registered_indexes_exist(self) -> None:
        """The index files on disk are exactly the catalogued ones, at their sizes (a
        catalogued file gone stops every run; an orphan would hold rows nobody owns), and every
        live registration's rows are findable: a patient's current number holds exactly the
        alleles (and genotypes) it carries, and a number still pending delivery on a lineage
        exactly the alleles last delivered there."""
        registry = self.registry()
        bins = self.store / "cohort" / "bins"
        on_disk = {p.relative_to(bins).as_posix(): p.stat().st_size
                   for p in bins.glob("*/*/*.parquet")} if bins.is_dir() else {}
        files = registry.get("index", {}).get("files", {})
        assert on_disk == {name: e["size"] for name, e in files.items()}, \
            "cohort index files on disk differ from the catalog"
        rows: dict[int, list[IndexRow]] = {}
        for name in on_disk:
            if name.endswith(KEYS_SUFFIX):
                continue
            assert files[name]["role"] == "rows", name
            assert files[name.removesuffix(".parquet") + KEYS_SUFFIX]["role"] == "keys", \
                f"{name} has no key directory"
            for number, row in self.file_rows(bins / name):
                rows.setdefault(number, []).append(row)
        for pid, p in registry.get("patients", {}).items():
            model = self.patients[pid]
            assert p["alleles"] == len(model.carried), pid
            assert sorted(rows.get(p["number"], [])) == sorted(
                (*a, ZYGOSITY[gt]) for a, gt in model.carried.items()), \
                f"rows of {pid} (number {p['number']}) differ from what it carries"
            for lin, number in p["previous"].items():
                assert {r[:4] for r in rows.get(number, [])} == model.previous[lin], \
                    f"rows of {pid} last delivered on {lin} (number {number}) lost"

    def file_rows(self, path: Path) -> list[tuple[int, IndexRow]]:
        """The (patient number, row) of one rows file, read directly with pyarrow, after
        checking that its key directory lists exactly its keys by row group (a key left out is
        a change no run would look for). A file is never rewritten in place (new content gets a
        new name), so each is read once (keyed by its size and mtime too, should that change)."""
        import pyarrow.parquet as pq

        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in self.read_files:
            pf = pq.ParquetFile(path)
            found: list[tuple[int, IndexRow]] = []
            held = set()
            for i in range(pf.metadata.num_row_groups):
                t = pf.read_row_group(i, columns=["patient", "key_chrom", "pos", "ref", "alt",
                                                  "zygosity"]).to_pydict()
                for n, c, pos, ref, alt, z in zip(t["patient"], t["key_chrom"], t["pos"],
                                                  t["ref"], t["alt"], t["zygosity"],
                                                  strict=True):
                    found.append((int(n), (str(c), int(pos), str(ref), str(alt), str(z))))
                    held.add((int(pos), str(ref), str(alt), i))
            keys = pq.read_table(str(path).removesuffix(".parquet") + KEYS_SUFFIX).to_pydict()
            listed = list(zip(keys["pos"], keys["ref"], keys["alt"], keys["rg"], strict=True))
            assert sorted(listed) == sorted(held), f"{path}: key directory differs from rows"
            self.read_files[key] = found
        return self.read_files[key]

    @invariant()
    def every_delivered_change_exactly_once(self) -> None:
        """The union of all delivered reports is the model's multiset of expected changes."""
        got: Counter[Key] = Counter()
        for run_id in self.known_runs:
            got.update(row_key(r) for r in read_tsv(self.report_of(run_id) / "changes.tsv"))
        assert got == self.expected, (f"twice or invented: {sorted(got - self.expected)}\n"
                                      f"lost: {sorted(self.expected - got)}")


# Shrinking a failure of this machine takes minutes (each step runs the CLI): it is off
# unless VARREINTERP_SHRINK=1; the failing sequence (at most 25 steps) is printed as found.
# 12 sequences keep `make test` near ten minutes; VARREINTERP_STATEFUL_EXAMPLES=200 for a soak.
NightlyMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("VARREINTERP_STATEFUL_EXAMPLES", "12")),
    stateful_step_count=25, deadline=None, database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate,
            *([Phase.shrink] if os.environ.get("VARREINTERP_SHRINK") == "1" else [])],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestNightly = NightlyMachine.TestCase
