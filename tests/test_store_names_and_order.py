"""Regressions of the snapshot store, each through the CLI: a snapshot name that reads as a
selector, the order of releases sharing a release date, the lineage of a lab table imported
under its own --name, and a --store folder that is not a store."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult

import varreinterp.snapshots
from varreinterp.store import MANIFEST_FILE, SnapshotManifest

Cli = Callable[..., CliResult]

SINGLE = "criteria_provided,_single_submitter"
PAT_POS = 1000  # the one variant the patient carries, first record of every release


def clinvar(path: Path, date: str, sig: str = "Uncertain_significance", n: int = 10) -> Path:
    """A GRCh38 ClinVar-format release of `n` records on chr1; the first one classified `sig`,
    the rest Benign."""
    lines = [
        "##fileformat=VCFv4.1", f"##fileDate={date}", "##reference=GRCh38",
        '##INFO=<ID=CLNSIG,Number=.,Type=String,Description="x">',
        '##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="x">',
        '##INFO=<ID=GENEINFO,Number=1,Type=String,Description="x">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    lines += [f"1\t{PAT_POS + 10 * i}\t{i}\tC\tT\t.\t.\tCLNSIG="
              f"{sig if i == 0 else 'Benign'};CLNREVSTAT={SINGLE};GENEINFO=BRCA1:672"
              for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def patient(path: Path) -> Path:
    """A single-sample GRCh38 VCF carrying the first record of every release."""
    path.write_text(
        "##fileformat=VCFv4.2\n##reference=GRCh38\n##contig=<ID=chr1,length=248956422>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tP1\n"
        f"chr1\t{PAT_POS}\t.\tC\tT\t50\tPASS\t.\tGT\t0/1\n")
    return path


def lab_table(path: Path, cls: str, n: int = 10) -> Path:
    rows = ["chrom\tpos\tref\talt\tclass"]
    rows += [f"1\t{PAT_POS + 10 * i}\tC\tT\t{cls if i == 0 else 'Benign'}" for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


def mapping(path: Path, name: str | None = "mylab") -> Path:
    source = 'format = "tsv"\n' + (f'name = "{name}"\n' if name else "")
    path.write_text(f"[source]\n{source}[columns]\ncontig = \"chrom\"\nposition = \"pos\"\n"
                    'ref = "ref"\nalt = "alt"\nclassification = "class"\n'
                    '[terms]\n"VUS" = "Uncertain_significance"\n"LP" = "Likely_pathogenic"\n')
    return path


def ok(res: CliResult, code: int = 0) -> CliResult:
    assert res.code == code, (res.code, res.err)
    return res


def refused(res: CliResult, code: int, *needles: str) -> str:
    """The one error line of a refused command, holding every needle."""
    assert res.code == code, (res.code, res.err)
    lines = res.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("varreinterp: error: "), res.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def json_lines(res: CliResult) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ok(res).out.splitlines() if line.strip()]


def shown(cli: Cli, selector: str) -> dict[str, Any]:
    """The manifest `snapshot show SELECTOR` prints."""
    rows = json_lines(cli("snapshot", "show", selector, "-f", "json"))
    assert len(rows) == 1, rows
    return rows[0]


def names(cli: Cli) -> list[str]:
    return [str(row["name"]) for row in json_lines(cli("snapshot", "list", "-f", "json"))]


def status(cli: Cli) -> dict[str, Any]:
    """The one patient's `cohort status` row."""
    rows = json_lines(cli("cohort", "status", "-f", "json"))
    assert len(rows) == 1, rows
    return rows[0]


def restamp(store: Path, name: str, imported_at: str) -> None:
    """Rewrite a stored manifest's import time as an older version (or a hand) wrote it,
    sealed again so that it passes its checksum."""
    path = store / "snapshots" / name / MANIFEST_FILE
    manifest = SnapshotManifest.load(path)
    manifest.imported_at = imported_at
    path.write_text(json.dumps(manifest.seal().to_json()))


# ------------------------------------------------------------- 1. names that read as selectors
@pytest.mark.parametrize("name", ["latest", "previous", "2024-06-02", "2024-06", "2023-01-01"])
def test_a_name_that_reads_as_a_selector_is_refused_at_import(cli: Cli, tmp_path: Path,
                                                              name: str) -> None:
    ok(cli("snapshot", "add", clinvar(tmp_path / "clinvar_20240107.vcf", "2024-01-07")))
    old = clinvar(tmp_path / "old.vcf", "2023-01-01", n=12)
    refused(cli("snapshot", "add", old, "--name", name), 2, repr(name), "selector")
    assert names(cli) == ["clinvar-GRCh38-2024-01-07"]


def test_names_that_only_look_alike_are_still_accepted(cli: Cli, tmp_path: Path) -> None:
    ok(cli("snapshot", "add", clinvar(tmp_path / "a.vcf", "2024-01-07"), "--name",
           "latest-fix"))
    ok(cli("snapshot", "add", clinvar(tmp_path / "b.vcf", "2024-06-02", n=11), "--name",
           "Latest"))
    assert shown(cli, "latest")["name"] == "Latest"
    assert shown(cli, "previous")["name"] == "latest-fix"


@pytest.fixture
def legacy_latest(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store of an older version: releases 2024-01-07 and 2024-06-02, and a 2023 release
    stored under the name `latest` (the name check of that version let it through)."""
    ok(cli("snapshot", "add", clinvar(tmp_path / "clinvar_20240107.vcf", "2024-01-07")))
    ok(cli("snapshot", "add", clinvar(tmp_path / "clinvar_20240602.vcf", "2024-06-02")))
    with monkeypatch.context() as patch:
        patch.setattr(varreinterp.snapshots, "check_name", lambda name: name)
        ok(cli("snapshot", "add", clinvar(tmp_path / "old.vcf", "2023-01-01", n=12),
               "--name", "latest"))
    return patient(tmp_path / "p1.vcf")


def test_a_stored_name_that_reads_as_a_selector_is_refused_as_ambiguous(
        cli: Cli, legacy_latest: Path) -> None:
    line = refused(cli("snapshot", "show", "latest"), 2, "'latest' is ambiguous",
                   "clinvar-GRCh38-2024-06-02", "name:latest")
    assert "Traceback" not in line
    refused(cli("annotate", legacy_latest, "--snapshot", "latest", "-f", "tsv"), 2,
            "'latest' is ambiguous")
    refused(cli("diff", legacy_latest, "--from", "2024-01-07", "-f", "tsv"), 2,
            "'latest' is ambiguous")
    # The snapshot itself stays reachable under `name:`, so it can be shown and removed.
    assert shown(cli, "name:latest")["release_date"] == "2023-01-01"
    ok(cli("snapshot", "remove", "name:latest"))
    assert shown(cli, "latest")["name"] == "clinvar-GRCh38-2024-06-02"


def test_a_stored_date_name_that_means_its_own_release_is_not_ambiguous(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok(cli("snapshot", "add", clinvar(tmp_path / "a.vcf", "2024-01-07")))
    with monkeypatch.context() as patch:
        patch.setattr(varreinterp.snapshots, "check_name", lambda name: name)
        ok(cli("snapshot", "add", clinvar(tmp_path / "b.vcf", "2024-06-02"), "--name",
               "2024-06-02"))
        ok(cli("snapshot", "add", clinvar(tmp_path / "c.vcf", "2024-02-04"), "--name",
               "2024-03-03"))
    assert shown(cli, "2024-06-02")["name"] == "2024-06-02"  # both readings agree
    # Named for a date it is not: read as a name or as a selector, it means different things.
    refused(cli("snapshot", "show", "2024-03-03"), 2, "'2024-03-03' is ambiguous")


# ------------------------------------------------------------- 2. releases of one date
@pytest.fixture
def reissued(cli: Cli, tmp_path: Path) -> Path:
    """Patient P1 reviewed against the 2024-03-03 release; then a corrected reissue of that
    release (same ##fileDate, P1's variant VUS -> LP) imported under a name sorting first."""
    ok(cli("snapshot", "add", clinvar(tmp_path / "clinvar_20240303.vcf", "2024-03-03")))
    ok(cli("cohort", "add", patient(tmp_path / "p1.vcf")))
    ok(cli("snapshot", "add", clinvar(tmp_path / "fixed.vcf", "2024-03-03",
                                      sig="Likely_pathogenic"),
           "--name", "clinvar-2024-03-03-fix"))
    return tmp_path


def test_a_reissue_of_a_release_date_imported_later_is_the_newest(cli: Cli,
                                                                   reissued: Path) -> None:
    assert shown(cli, "latest")["name"] == "clinvar-2024-03-03-fix"
    assert shown(cli, "previous")["name"] == "clinvar-GRCh38-2024-03-03"
    assert names(cli) == ["clinvar-GRCh38-2024-03-03", "clinvar-2024-03-03-fix"]
    row = status(cli)
    assert (row["state"], row["target_snapshot"]) == ("waiting", "clinvar-2024-03-03-fix"), row
    ok(cli("reanalyze", "--exit-code", "-o", reissued / "run"), 1)
    assert "clinvar-2024-03-03-fix" in (reissued / "run" / "changes.tsv").read_text()
    row = status(cli)
    assert (row["state"], row["reviewed_snapshot"]) == ("up_to_date",
                                                       "clinvar-2024-03-03-fix"), row


def test_import_times_of_older_manifests_order_a_date_then_the_name(
        cli: Cli, store_dir: Path, tmp_path: Path) -> None:
    """Older manifests stamp whole seconds: parsed, not compared as text; a tie falls back to
    the name; an unreadable stamp counts as the earliest."""
    for name, n in (("a-later", 10), ("b-earlier", 11), ("c-tie", 12), ("d-garbled", 13)):
        ok(cli("snapshot", "add", clinvar(tmp_path / f"{name}.vcf", "2024-03-03", n=n),
               "--name", name))
    restamp(store_dir, "a-later", "2024-03-05T10:00:05Z")
    restamp(store_dir, "b-earlier", "2024-03-05T10:00:04.900000Z")
    restamp(store_dir, "c-tie", "2024-03-05T10:00:05Z")
    restamp(store_dir, "d-garbled", "sometime in March")
    ok(cli("snapshot", "verify"))
    assert names(cli) == ["d-garbled", "b-earlier", "a-later", "c-tie"]
    assert shown(cli, "latest")["name"] == "c-tie"
    restamp(store_dir, "a-later", "2024-03-05T10:00:05.000001Z")
    assert shown(cli, "latest")["name"] == "a-later"


# ------------------------------------------------------------- 3. a lab table's lineage
def test_a_lab_table_imported_under_its_own_name_stays_in_its_lineage(cli: Cli,
                                                                      tmp_path: Path) -> None:
    lab = mapping(tmp_path / "mylab.toml")
    first = lab_table(tmp_path / "lab_2024-01-10.tsv", "VUS")
    ok(cli("snapshot", "add", first, "--format", "table", "--mapping", lab, "--assembly",
           "GRCh38"))
    ok(cli("cohort", "add", patient(tmp_path / "p1.vcf"), "--baseline",
           "mylab-GRCh38-2024-01-10"))
    second = lab_table(tmp_path / "lab_2024-04-10.tsv", "LP")
    ok(cli("snapshot", "add", second, "--format", "table", "--mapping", lab, "--assembly",
           "GRCh38", "--name", "mylab-april-2024"))
    assert shown(cli, "mylab-april-2024")["lineage"] == "mylab/GRCh38"
    row = status(cli)
    assert (row["lineage"], row["state"], row["target_snapshot"]) == (
        "mylab/GRCh38", "waiting", "mylab-april-2024"), row
    # The partial-release check measures it against its lineage too.
    cut = lab_table(tmp_path / "lab_2024-05-10.tsv", "LP", n=5)
    err = ok(cli("snapshot", "add", cut, "--format", "table", "--mapping", lab, "--assembly",
                 "GRCh38", "--name", "mylab-may-2024")).err
    assert "SUSPECT" in err and "mylab-april-2024" in err, err
    assert shown(cli, "mylab-may-2024")["suspect"]


def test_a_lab_table_keeps_the_lineage_of_its_mapping(cli: Cli, tmp_path: Path) -> None:
    """A mapping with no [source] name names no lab (two labs' files may both be called
    mapping.toml): the first release's lineage comes from its snapshot name, as older
    versions made it, and later releases read with the same mapping file stay in it whatever
    their --name. A release that starts another lab lineage of the build is said."""
    lab = mapping(tmp_path / "otherlab.toml", name=None)
    ok(cli("snapshot", "add", lab_table(tmp_path / "t_2024-01-10.tsv", "VUS"), "--format",
           "table", "--mapping", lab, "--assembly", "GRCh38", "--name", "spring"))
    assert shown(cli, "spring")["lineage"] == "spring/GRCh38"
    later = ok(cli("snapshot", "add", lab_table(tmp_path / "t_2024-06-10.tsv", "LP"),
                   "--format", "table", "--mapping", lab, "--assembly", "GRCh38",
                   "--name", "summer"))
    assert shown(cli, "summer")["lineage"] == "spring/GRCh38"
    assert "new lineage" not in later.err
    named = mapping(tmp_path / "named.toml", name="otherlab")
    other = ok(cli("snapshot", "add", lab_table(tmp_path / "t_2024-07-10.tsv", "LP"),
                   "--format", "table", "--mapping", named, "--assembly", "GRCh38"))
    assert "starts a new lineage otherlab/GRCh38 beside spring/GRCh38" in other.err


# ------------------------------------------------------------- 4. a folder that is not a store
def files_of(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_a_folder_that_is_not_a_store_is_refused_and_left_untouched(cli: Cli,
                                                                    tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "tmp" / "results" / "run1").mkdir(parents=True)
    (proj / "data").mkdir()
    (proj / "tmp" / "results" / "run1" / "calls.tsv").write_text("precious analysis\n")
    (proj / "tmp" / "todo.txt").write_text("notes\n")
    (proj / "tmp" / "stage-mine").mkdir()  # named like ours, still not ours
    (proj / "lock").write_text("my lock notes\n")
    (proj / "data" / "p.vcf").write_text("patient data\n")
    before = files_of(proj)
    release = clinvar(tmp_path / "clinvar_20240107.vcf", "2024-01-07")
    refused(cli("snapshot", "add", release, store=proj), 4, str(proj),
            "not a varreinterp store")
    # Other commands fail before writing anything too (they find no snapshot to use).
    for args in (["annotate", patient(tmp_path / "p1.vcf"), "--snapshot", "latest"],
                 ["cohort", "add", tmp_path / "p1.vcf"]):
        refused(cli(*args, store=proj), 4, str(proj))
    assert files_of(proj) == before
    assert sorted(p.name for p in proj.iterdir()) == ["data", "lock", "tmp"]
    assert (proj / "tmp" / "stage-mine").is_dir()


@pytest.mark.parametrize("state", ["missing", "empty", "interrupted"])
def test_a_new_empty_or_half_created_folder_becomes_a_store(cli: Cli, tmp_path: Path,
                                                            state: str) -> None:
    store = tmp_path / "fresh"
    if state != "missing":
        store.mkdir()
    if state == "interrupted":  # killed between making the folders and writing store.json
        (store / "snapshots").mkdir()
        (store / "tmp").mkdir()
        (store / ".store.json.k3j2x").write_text("")
    ok(cli("snapshot", "add", clinvar(tmp_path / "clinvar_20240107.vcf", "2024-01-07"),
           store=store))
    assert json.loads((store / "store.json").read_text()) == {"schema_version": 1}
    assert names(lambda *a: cli(*a, store=store)) == ["clinvar-GRCh38-2024-01-07"]


def test_a_writer_cleans_only_its_own_leftovers_in_tmp(cli: Cli, store_dir: Path,
                                                       tmp_path: Path) -> None:
    ok(cli("snapshot", "add", clinvar(tmp_path / "clinvar_20240107.vcf", "2024-01-07")))
    tmp = store_dir / "tmp"
    dead = 2 ** 31 - 2  # above any pid_max: no such process
    ours = ["stage-x1", "trash-x2", f"work-{dead}-x3", f".report.stage-{dead}-x4",
            "engine-probe-0123", ".run.stage-x5", ".trash-x6"]
    for name in ours[:-4]:
        (tmp / name).mkdir()
        (tmp / name / "part").write_text("left by a killed run")
    (tmp / ours[-4]).mkdir()
    (tmp / ours[-3]).write_text("token")
    (tmp / ours[-2]).mkdir()
    (tmp / ours[-1]).mkdir()
    alive = tmp / f"work-{os.getpid()}-live"
    alive.mkdir()
    foreign = {"notes.txt": "mine", "stage": "no dash: not ours", "mywork-1-2": "mine too"}
    for name, text in foreign.items():
        (tmp / name).write_text(text)
    (tmp / "results").mkdir()
    (tmp / "results" / "calls.tsv").write_text("precious")
    ok(cli("snapshot", "add", clinvar(tmp_path / "clinvar_20240602.vcf", "2024-06-02")))
    left = sorted(p.name for p in tmp.iterdir())
    assert left == sorted([*foreign, "results", alive.name]), left
    assert (tmp / "results" / "calls.tsv").read_text() == "precious"
    assert {n: (tmp / n).read_text() for n in foreign} == foreign


@pytest.mark.parametrize("args", [["snapshot", "list", "-f", "tsv"], ["cohort", "status"],
                                  ["snapshot", "add", "{clinvar}"]])
def test_a_store_path_that_is_a_file_is_refused(tmp_path: Path, args: list[str]) -> None:
    """Readers listed nothing with exit 0 (an empty store, to a cron job), writers said
    "File exists"."""
    from conftest import SAMPLES, invoke

    store = tmp_path / "store"
    store.write_text("the lab's notes\n")
    clinvar = SAMPLES / "clinvar_GRCh38_2024-01-07.vcf"
    res = invoke(store, *[a.format(clinvar=clinvar) for a in args])
    assert res.code == 4, res.err
    assert f"{store}: not a varreinterp store (not a folder)" in res.err
    assert store.read_text() == "the lab's notes\n"
