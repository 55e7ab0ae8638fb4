"""Provenance: which tool, which snapshots (with release dates and checksums) and which command
produced an output. Built here only; every writer in `output/` prints it in its own form (a TSV
`#` line, JSON, a VCF header line, Parquet metadata, a table caption, a report footer)."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from varreinterp import __version__

if TYPE_CHECKING:
    from varreinterp.store import Snapshot

TOOL = "varreinterp"


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as a shell would repeat it (default: this process's own arguments), on one
    line: an argument holding a control character (a newline in a file name) is written in
    bash's $'...' form, so the TSV '#' line and the VCF header line stay one line each."""
    args = ["varreinterp", *argv] if argv is not None else sys.argv
    return " ".join(_shell_word(a) for a in args)


def _one_line(value: object) -> str:
    """A provenance value with its control characters (from a file name) escaped, so the line
    that carries it stays one line."""
    text = str(value)
    if not any(ord(c) < 32 or ord(c) == 127 for c in text):
        return text
    return "".join(c if ord(c) >= 32 and ord(c) != 127 else f"\\x{ord(c):02x}" for c in text)


def _shell_word(arg: str) -> str:
    if not any(ord(c) < 32 or ord(c) == 127 for c in arg):
        return shlex.quote(arg)
    named = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", "'": "\\'"}
    return "$'" + "".join(named.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127
                                           else c) for c in arg) + "'"


@dataclass(frozen=True)
class SnapshotStamp:
    """What identifies a snapshot for good: content checksums and release date, not its name."""

    name: str
    release_date: str | None
    assembly: str
    source_kind: str
    lineage: str
    source_sha256: str
    snapshot_sha256: str

    @classmethod
    def of(cls, snapshot: Snapshot) -> SnapshotStamp:
        m = snapshot.manifest
        return cls(m.name, m.release_date, m.assembly, m.source_kind, m.lineage,
                   m.source_sha256, m.manifest_sha256)

    def to_json(self) -> dict[str, Any]:
        return {"snapshot": self.name, "release_date": self.release_date,
                "assembly": self.assembly, "source_kind": self.source_kind,
                "lineage": self.lineage, "source_sha256": self.source_sha256,
                "snapshot_sha256": self.snapshot_sha256}

    def short(self) -> str:
        return (f"{self.name} ({self.release_date}, {self.assembly}, sha256 "
                f"{self.source_sha256[:12]})")


@dataclass(frozen=True)
class Provenance:
    """`snapshots` holds (role, stamp) pairs in order: ("snapshot", s) for an annotation,
    ("from_snapshot", a), ("to_snapshot", b) for a diff, one per snapshot for a history.
    `facts` holds other settings that shaped the output (a panel, --pass-only, a run id)."""

    command: str
    snapshots: tuple[tuple[str, SnapshotStamp], ...] = ()
    facts: tuple[tuple[str, str], ...] = ()
    tool_version: str = field(default=__version__)

    @classmethod
    def of(cls, command: str, *roles: tuple[str, Snapshot],
           facts: Sequence[tuple[str, str]] = ()) -> Provenance:
        return cls(command, tuple((role, SnapshotStamp.of(s)) for role, s in roles),
                   tuple(facts))

    def with_facts(self, *facts: tuple[str, str]) -> Provenance:
        return Provenance(self.command, self.snapshots, (*self.facts, *facts),
                          self.tool_version)

    def stamp(self, role: str) -> SnapshotStamp:
        return dict(self.snapshots)[role]

    def to_json(self) -> dict[str, Any]:
        """Nested form, for JSON outputs and run reports."""
        out: dict[str, Any] = {"tool": TOOL, "tool_version": self.tool_version}
        builds = {stamp.assembly for _, stamp in self.snapshots}
        if len(builds) == 1:
            out["assembly"] = builds.pop()
        for role, stamp in self.snapshots:
            out[role] = stamp.to_json()
        out.update(self.facts)
        out["command"] = self.command
        return out

    def flat(self) -> dict[str, Any]:
        """One level of keys, for a TSV line and per-row JSON fields: a role's fields are
        prefixed by the role ("from_snapshot" -> "from_release_date"); the single role
        "snapshot" keeps the plain names."""
        out: dict[str, Any] = {"tool": TOOL, "tool_version": self.tool_version}
        for role, stamp in self.snapshots:
            prefix = role[:-len("snapshot")] if role.endswith("snapshot") else role + "_"
            for key, value in stamp.to_json().items():
                out[prefix + key] = value
        out.update(self.facts)
        out["command"] = self.command
        return out

    def tsv_line(self) -> str:
        """The first line of every TSV we write: `#key=value ...`, the command last."""
        return "#" + " ".join(f"{k}={'' if v is None else _one_line(v)}"
                              for k, v in self.flat().items())

    def vcf_header(self) -> str:
        """`##varreinterp=<...>` for the annotated VCF (one snapshot)."""
        def esc(text: object) -> str:
            return _one_line(text).replace("\\", "\\\\").replace('"', '\\"')

        parts = [f'Version="{esc(self.tool_version)}"']
        for role, stamp in self.snapshots:
            prefix = "" if role == "snapshot" else role.title().replace("_", "")
            parts += [f'{prefix}Snapshot="{esc(stamp.name)}"',
                      f'{prefix}ReleaseDate="{esc(stamp.release_date)}"',
                      f'{prefix}Assembly="{esc(stamp.assembly)}"',
                      f'{prefix}SourceSHA256="{esc(stamp.source_sha256)}"',
                      f'{prefix}SnapshotSHA256="{esc(stamp.snapshot_sha256)}"']
        parts += [f'{k.title().replace("_", "")}="{esc(v)}"' for k, v in self.facts]
        parts.append(f'Command="{esc(self.command)}"')
        return "##varreinterp=<" + ",".join(parts) + ">"

    def metadata(self) -> dict[str, str]:
        """Parquet key-value metadata."""
        return {TOOL: json.dumps(self.to_json(), sort_keys=True)}

    def caption(self) -> str:
        """One line under a terminal table."""
        parts = [f"{TOOL} {self.tool_version}"]
        parts += [f"{role.replace('_', ' ')} {stamp.short()}" for role, stamp in self.snapshots]
        parts += [f"{k} {v}" for k, v in self.facts]
        return "; ".join(parts)
