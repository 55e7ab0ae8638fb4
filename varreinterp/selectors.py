"""Naming snapshots the way people do: the exact name, `latest`, `latest:GRCh38`, a release date
(`2023-07-10`) or month (`2023-07`), `previous` (the one before the latest).

A selector is resolved within a context (a build and/or a lineage, from the command: the
patient VCF's build, the other snapshot of a diff). A selector that still matches releases of
several lineages or builds is ambiguous: a usage error (exit 2) listing at most ten candidates,
never a guess. A selector is refused (exit 4) while a snapshot it could mean cannot be read:
choosing among the readable ones would silently pick an older release.

A snapshot name cannot read as a selector (`snapshots.check_name`). A store of an older version
may hold one (`--name latest`): while the two readings disagree, it is refused as ambiguous
(exit 2) instead of either being picked; `name:NAME` always means the snapshot named NAME (to
show or remove it)."""

from __future__ import annotations

import re

from varreinterp.errors import SnapshotNotFoundError, StoreError, UsageError
from varreinterp.store import Snapshot, Store

_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")
_BUILDS = ("GRCh37", "GRCh38")
_RELATIVE = ("latest", "previous")
EXACT = "name:"  # `name:NAME`: the snapshot named NAME, never a selector


def reads_as_selector(text: str) -> bool:
    """Whether `text` would be read as a selector (`latest`, `previous`, a date or a month,
    any of them qualified `:...`), so it cannot be a snapshot's name."""
    head = text.strip().partition(":")[0]
    return head in _RELATIVE or bool(_DATE.match(head))


def resolve(store: Store, selector: str, *, build: str | None = None,
            lineage: str | None = None, what: str = "snapshot") -> Snapshot:
    """The snapshot `selector` names (read, not yet verified: callers `store.use` it)."""
    if selector.startswith(EXACT):
        return store.get(selector[len(EXACT):])
    if store.exists(selector):
        named = store.get(selector)
        if reads_as_selector(selector):
            _refuse_double_reading(store, named, selector, build, lineage, what)
        return named
    return _select(store, selector, build, lineage, what)


def _select(store: Store, selector: str, build: str | None, lineage: str | None,
            what: str) -> Snapshot:
    text = selector.strip()
    head, _, qualifier = text.partition(":")
    if qualifier:
        if qualifier in _BUILDS:
            build = qualifier
        else:  # latest:clinvar, latest:clinvar/GRCh38
            lineage = qualifier if "/" in qualifier else None
            base = qualifier if "/" not in qualifier else None
            if base is not None:
                return _pick(store, head, build, None, base, selector, what)
    return _pick(store, head, build, lineage, None, selector, what)


def _pick(store: Store, head: str, build: str | None, lineage: str | None, base: str | None,
          selector: str, what: str) -> Snapshot:
    if head in _RELATIVE or _DATE.match(head):
        _refuse_broken(store, build, lineage, base, selector, what)
    pool = [s for s in store.snapshots()
            if build in (None, s.manifest.assembly) and lineage in (None, s.lineage)
            and base in (None, s.lineage.split("/")[0])]
    if head in _RELATIVE:
        lineages = sorted({s.lineage for s in pool})
        if len(lineages) > 1:
            newest = [[s for s in pool if s.lineage == lin][-1].name for lin in lineages]
            raise UsageError(f"{what} {selector!r} is ambiguous: the store holds several "
                             f"lineages here ({_candidates(newest)}); name one, or qualify "
                             "it (latest:GRCh38, latest:clinvar)")
        latest_date = pool[-1].manifest.release_date if pool else None
        if head == "previous" and any(s.manifest.release_date != latest_date for s in pool):
            # the release before the latest's date: a reissue of that date (a corrected copy)
            # is the same release, not the one a lab means by "previous" (with no earlier
            # date, the release the reissue corrects is the previous one)
            pool = [s for s in pool if s.manifest.release_date != latest_date] + pool[-1:]
        offset = 1 if head == "latest" else 2
        if len(pool) < offset:
            raise SnapshotNotFoundError(f"{what} {selector!r}: no such release in store "
                                        f"{store.root} ({_context(build, lineage, base)})")
        return pool[-offset]
    if _DATE.match(head):
        found = [s for s in pool if (s.manifest.release_date or "").startswith(head)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise UsageError(f"{what} {selector!r} is ambiguous: "
                             f"{_candidates([s.name for s in found])}")
        raise SnapshotNotFoundError(f"{what} {selector!r}: no release dated {head} in store "
                                    f"{store.root} ({_context(build, lineage, base)})")
    known = [s.name for s in store.snapshots()]
    raise SnapshotNotFoundError(f"no snapshot named {selector!r} in store {store.root} "
                                f"(stored: {_candidates(known) if known else 'none'})")


def _refuse_broken(store: Store, build: str | None, lineage: str | None, base: str | None,
                   selector: str, what: str) -> None:
    """StoreError when a snapshot of a lineage in this context cannot be read: with its
    manifest damaged, `latest` would silently mean the release before it (and a diff --to
    latest would compare a release with itself)."""
    for key, error in sorted(store.broken_lineages().items()):
        if key != "*":
            key_base, _, key_build = key.rpartition("/")
            if (build not in (None, key_build) or lineage not in (None, key)
                    or base not in (None, key_base)):
                continue
        which = "a snapshot" if key == "*" else f"a snapshot of {key}"
        raise StoreError(f"{what} {selector!r}: {which} cannot be read ({error}), so the "
                         "releases to choose from are unknown: repair or remove it (see "
                         "`snapshot verify`), or name an intact snapshot in full")


def _refuse_double_reading(store: Store, named: Snapshot, selector: str, build: str | None,
                           lineage: str | None, what: str) -> None:
    """UsageError unless `selector`, the name of a stored snapshot (made by an older version),
    reads as a selector for that same snapshot: otherwise either reading is a silent guess."""
    try:
        chosen = _select(store, selector, build, lineage, what)
    except (UsageError, StoreError) as exc:  # (not found is a StoreError too)
        reading = f"as a selector it reads otherwise ({exc.one_line()})"
    else:
        if chosen.name == named.name:
            return
        reading = f"as a selector it means {chosen.name}"
    raise UsageError(f"{what} {selector!r} is ambiguous: a stored snapshot is named "
                     f"{selector!r} and {reading}; give the release's full name, or rename "
                     f"the snapshot named {selector!r} (`snapshot remove {EXACT}{selector}`, "
                     "then add its file again under another --name)")


def _candidates(names: list[str]) -> str:
    shown = ", ".join(names[:10])
    return shown + (f", and {len(names) - 10} more" if len(names) > 10 else "")


def _context(build: str | None, lineage: str | None, base: str | None) -> str:
    parts = [p for p in (build, lineage, base) if p]
    return "among " + ", ".join(parts) if parts else "in the whole store"
