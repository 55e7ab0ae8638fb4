"""Configuration: one TOML file, environment variables and command-line flags, merged with the
precedence flag > environment > config file > default.

`KEYS` is the single table of every scalar setting (dotted name, type, variable, default, flag,
help); parsing, `Settings` and `config show` are all driven by it. Gene panels and cohort groups
are named tables that only the file defines. Everything here is pure: the caller passes the
environment (os.environ at the CLI edge) and the flags, so tests never touch the real HOME.

tomllib reports no positions for values, so `_key_lines` scans the text for the line of each key:
every error about the file names the file, the line and the dotted key."""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

from varreinterp.changes import Priority
from varreinterp.errors import EnvironmentIOError, InputError, UsageError

CONFIG_ENV = "VARREINTERP_CONFIG"


class KeyType(StrEnum):
    """What a key holds; the value is the wording used in error messages."""

    PATH = "a path"
    PRIORITY = "one of low, medium, high"
    COUNT = "an integer >= 1"
    SECONDS = "a number of seconds > 0"
    TEXT = "a non-empty string"
    URL = "a URL"
    URL_LIST = "a list of URLs"
    GENE_LIST = "a list of gene symbols"


class Layer(StrEnum):
    """Where an effective value came from, strongest first."""

    FLAG = "flag"
    ENV = "environment"
    FILE = "config file"
    DEFAULT = "default"


@dataclass(frozen=True)
class XdgDefault:
    """A default under an XDG base directory, computed from the environment passed in."""

    variable: str
    fallback: str
    leaf: str

    def path(self, env: Mapping[str, str]) -> Path:
        if base := env.get(self.variable):
            return Path(base) / self.leaf
        return _home(env) / self.fallback / self.leaf

    def __str__(self) -> str:
        return f"${self.variable}/{self.leaf}"


CONFIG_DEFAULT = XdgDefault("XDG_CONFIG_HOME", ".config", "varreinterp/config.toml")


@dataclass(frozen=True)
class Key:
    """One setting. `name` is its dotted path in the file; `flag` is how the CLI spells it."""

    name: str
    type: KeyType
    env: str | None
    default: object
    flag: str
    help: str
    attr: str = ""

    @property
    def attribute(self) -> str:
        """The `Settings` attribute holding the effective value."""
        return self.attr or self.name.replace(".", "_")


KEYS: tuple[Key, ...] = (
    Key("store", KeyType.PATH, "VARREINTERP_HOME",
        XdgDefault("XDG_DATA_HOME", ".local/share", "varreinterp"), "--store",
        "Store directory (snapshots, patients, run reports)."),
    Key("min_priority", KeyType.PRIORITY, "VARREINTERP_MIN_PRIORITY", "medium", "--min-priority",
        "Report changes at or above this priority: low, medium or high."),
    Key("stale_after_days", KeyType.COUNT, "VARREINTERP_STALE_AFTER_DAYS", 45,
        "--stale-after-days", "Days after which the newest snapshot counts as stale."),
    Key("notify", KeyType.URL_LIST, "VARREINTERP_NOTIFY", (), "--notify",
        "Notification targets (URLs); in the environment, separated by whitespace."),
    Key("fetch.mirror", KeyType.URL, "VARREINTERP_MIRROR",
        "https://ftp.ncbi.nlm.nih.gov/pub/clinvar", "--mirror",
        "Base URL that ClinVar releases are downloaded from.", attr="mirror"),
    Key("fetch.ca_bundle", KeyType.PATH, None, None, "--ca-bundle",
        "CA certificates for HTTPS downloads (default: the system's).", attr="ca_bundle"),
    Key("fetch.timeout", KeyType.SECONDS, None, 60.0, "--timeout",
        "Seconds without progress before a download attempt fails."),
    Key("scheduler", KeyType.TEXT, "VARREINTERP_SCHEDULER", None, "--scheduler",
        "Dask scheduler address for cohort work (default: run locally)."),
    Key("workers", KeyType.COUNT, "VARREINTERP_WORKERS", None, "--workers",
        "Worker processes for cohort work (default: chosen by the cohort runner)."),
)
KEY_BY_NAME: dict[str, Key] = {key.name: key for key in KEYS}

# Fields of the named tables [panels.NAME] and [groups.NAME]; env and flag play no part.
PANEL_KEYS: tuple[Key, ...] = (
    Key("genes", KeyType.GENE_LIST, None, (), "", "Gene symbols."),
    Key("genes_file", KeyType.PATH, None, None, "", "File of gene symbols, one per line."),
    Key("regions", KeyType.PATH, None, None, "", "BED file of regions."),
)
GROUP_KEYS: tuple[Key, ...] = (
    Key("panel", KeyType.TEXT, None, None, "", "Panel applied to the group's patients."),
    Key("min_priority", KeyType.PRIORITY, None, None, "", "The group's own min_priority."),
)
NAMED_TABLES = {"panels": PANEL_KEYS, "groups": GROUP_KEYS}


@dataclass(frozen=True)
class PanelSpec:
    """A gene panel as declared; files are only named here (read with `read_genes`)."""

    name: str
    genes: tuple[str, ...]
    genes_file: Path | None
    regions: Path | None
    source: str

    def read_genes(self) -> frozenset[str]:
        """The inline genes plus those of `genes_file` (one symbol per line, # comments)."""
        genes = set(self.genes)
        if self.genes_file is not None:
            genes.update(_read_gene_file(self.genes_file))
        return frozenset(genes)

    def describe(self) -> str:
        parts = [f"genes: {' '.join(self.genes)}"] if self.genes else []
        parts += [f"genes_file: {self.genes_file}"] if self.genes_file else []
        parts += [f"regions: {self.regions}"] if self.regions else []
        return "; ".join(parts)


@dataclass(frozen=True)
class GroupSpec:
    """A cohort group: its patients get `panel`, and `min_priority` if set."""

    name: str
    panel: str
    min_priority: Priority | None
    source: str

    def describe(self) -> str:
        text = f"panel: {self.panel}"
        return text + (f"; min_priority: {self.min_priority}" if self.min_priority else "")


@dataclass(frozen=True)
class ConfigFile:
    """A parsed and validated config file; `path` None means there is none."""

    path: Path | None = None
    values: Mapping[str, object] = field(default_factory=dict)  # dotted key -> typed value
    lines: Mapping[str, int] = field(default_factory=dict)
    panels: Mapping[str, PanelSpec] = field(default_factory=dict)
    groups: Mapping[str, GroupSpec] = field(default_factory=dict)

    def where(self, dotted: str) -> str:
        """`file:line` of a key (the file alone when the line is unknown)."""
        line = self.lines.get(dotted)
        return f"{self.path}:{line}" if line else str(self.path)


@dataclass(frozen=True)
class Setting:
    """One line of `config show`."""

    key: str
    value: object
    source: str
    layer: Layer

    @property
    def text(self) -> str:
        """The value as `config show` prints it: URLs with their credentials redacted."""
        from varreinterp.notify import redact_url

        key = KEY_BY_NAME.get(self.key)
        if key is not None and key.type is KeyType.URL and isinstance(self.value, str):
            return _show(redact_url(self.value))
        if key is not None and key.type is KeyType.URL_LIST and isinstance(self.value, tuple):
            return _show(tuple(redact_url(str(url)) for url in self.value))
        return _show(self.value)


@dataclass(frozen=True)
class Settings:
    """Effective configuration. `sources` maps each dotted key to where its value came from
    (`--store`, `$VARREINTERP_HOME`, `/path/config.toml:3`, `default`)."""

    store: Path
    min_priority: Priority
    stale_after_days: int
    notify: tuple[str, ...]
    mirror: str
    ca_bundle: Path | None
    fetch_timeout: float
    scheduler: str | None
    workers: int | None
    panels: dict[str, PanelSpec]
    groups: dict[str, GroupSpec]
    sources: dict[str, str]
    layers: dict[str, Layer]
    config_path: Path | None = None

    @classmethod
    def resolve(cls, config: ConfigFile, env: Mapping[str, str],
                flags: Mapping[str, object | None]) -> Settings:
        """Merge flags (keyed by dotted key name; None = not given), `env` and `config`."""
        unknown = sorted(set(flags) - set(KEY_BY_NAME))
        if unknown:  # a wiring bug in the CLI, not a user mistake
            raise ValueError(f"flags for unknown settings: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        layers: dict[str, Layer] = {}
        for key in KEYS:
            value, sources[key.name], layers[key.name] = _resolve_key(
                key, config, env, flags.get(key.name))
            values[key.attribute] = value
        return cls(**values, panels=dict(config.panels), groups=dict(config.groups),
                   sources=sources, layers=layers, config_path=config.path)

    def min_priority_for(self, group: str | None) -> Priority:
        """A group's own min_priority applies unless --min-priority was given."""
        if group is None or self.layers["min_priority"] is Layer.FLAG:
            return self.min_priority
        return self.group(group).min_priority or self.min_priority

    def panel_for(self, group: str | None) -> PanelSpec | None:
        """The panel of a cohort group (None for patients in no group)."""
        return None if group is None else self.panels[self.group(group).panel]

    def group(self, name: str) -> GroupSpec:
        """A cohort group by name; a name the config no longer defines is an error."""
        try:
            return self.groups[name]
        except KeyError:
            where = self.config_path or "the config file"
            raise UsageError(f"no cohort group {name!r} in {where} "
                             f"(defined: {', '.join(sorted(self.groups)) or 'none'})") from None


def effective_settings(settings: Settings) -> list[Setting]:
    """Every key in table order, then panels and groups, each with its source."""
    rows = [Setting(key.name, getattr(settings, key.attribute), settings.sources[key.name],
                    settings.layers[key.name]) for key in KEYS]
    rows += [Setting(f"panels.{name}", spec, spec.source, Layer.FILE)
             for name, spec in settings.panels.items()]
    rows += [Setting(f"groups.{name}", spec, spec.source, Layer.FILE)
             for name, spec in settings.groups.items()]
    return rows


def locate_config(option: Path | None, env: Mapping[str, str]) -> Path | None:
    """--config, else $VARREINTERP_CONFIG, else the XDG file if it exists (else None).

    A file named explicitly must exist; the XDG default being absent means no config file."""
    if option is not None:
        return _must_exist(option, f"--config {option}")
    if named := env.get(CONFIG_ENV, "").strip():
        return _must_exist(Path(named), f"${CONFIG_ENV}={named}")
    default = CONFIG_DEFAULT.path(env)
    return default if default.exists() else None


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> ConfigFile:
    """Parse and validate a config file. `env` supplies HOME for `~` in paths (None: the
    process's). Relative paths resolve against the file's directory."""
    if path is None:
        return ConfigFile()
    text = _read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    return _FileReader(path, _key_lines(text), env).read(data)


# ------------------------------------------------------------------------------ resolution
def _resolve_key(key: Key, config: ConfigFile, env: Mapping[str, str],
                 flag: object | None) -> tuple[object, str, Layer]:
    if _given(flag):
        origin = _Origin(key.flag, textual=True, base=None, env=env)
        return _parse(key.type, key.name, flag, origin), key.flag, Layer.FLAG
    if key.env and (text := env.get(key.env, "").strip()):
        origin = _Origin(f"${key.env}", textual=True, base=None, env=env)
        return _parse(key.type, key.name, text, origin), f"${key.env}", Layer.ENV
    if key.name in config.values:
        return config.values[key.name], config.where(key.name), Layer.FILE
    if isinstance(key.default, XdgDefault):
        return key.default.path(env), Layer.DEFAULT.value, Layer.DEFAULT
    if key.default is None:
        return None, Layer.DEFAULT.value, Layer.DEFAULT
    origin = _Origin("default", textual=False, base=None, env=env)
    return _parse(key.type, key.name, key.default, origin), Layer.DEFAULT.value, Layer.DEFAULT


def _given(flag: object | None) -> bool:
    # typer hands an empty list for a repeatable option that was not used
    return flag is not None and not (isinstance(flag, list | tuple) and not flag)


def _must_exist(path: Path, named_by: str) -> Path:
    if not path.exists():
        raise UsageError(f"{named_by}: config file not found")
    return path


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: config file not found") from None
    except OSError as exc:
        raise EnvironmentIOError.from_os_error(exc, path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _home(env: Mapping[str, str]) -> Path:
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


# ------------------------------------------------------------------------------ values
class _Invalid(Exception):
    """A value does not fit its type; the message, if any, says which part."""


@dataclass(frozen=True)
class _Origin:
    where: str  # "path:3", "$VAR", "--flag", "default"
    textual: bool  # environment / command-line text rather than a TOML value
    base: Path | None  # directory that relative paths resolve against
    env: Mapping[str, str] | None


def _parse(kind: KeyType, name: str, raw: object, origin: _Origin) -> Any:
    try:
        return _PARSERS[kind](raw, origin)
    except _Invalid as exc:
        shown = repr(raw) if origin.textual and isinstance(raw, str) else _describe(raw)
        detail = f" ({exc})" if str(exc) else ""
        raise UsageError(f"{origin.where}: {name} must be {kind.value}, not {shown}{detail}"
                         ) from None


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a float ({value})"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__} ({value})"  # TOML dates and times


def _number(raw: object, origin: _Origin, convert: Callable[[str], int | float]) -> object:
    if origin.textual and isinstance(raw, str):
        try:
            return convert(raw.strip())
        except ValueError:
            raise _Invalid from None
    if isinstance(raw, bool):  # bool is an int subclass, and never a count
        raise _Invalid
    return raw


def _count(raw: object, origin: _Origin) -> int:
    value = _number(raw, origin, int)
    if not isinstance(value, int) or value < 1:
        raise _Invalid
    return value


def _seconds(raw: object, origin: _Origin) -> float:
    value = _number(raw, origin, float)
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise _Invalid
    return float(value)


def _text(raw: object, origin: _Origin) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _Invalid
    return raw.strip()


# A scheme of two letters or more, so a Windows drive letter (C:) is not a URL.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:\S+\Z")


def _url(raw: object, origin: _Origin) -> str:
    text = _text(raw, origin)
    if not _URL.match(text):
        raise _Invalid
    return text


def _items(raw: object, origin: _Origin) -> list[object]:
    if origin.textual and isinstance(raw, str):
        return list(raw.split())
    if not isinstance(raw, list | tuple):
        raise _Invalid
    return list(raw)


def _url_list(raw: object, origin: _Origin) -> tuple[str, ...]:
    items = _items(raw, origin)
    for number, item in enumerate(items, start=1):
        if not isinstance(item, str) or not _URL.match(item):
            raise _Invalid(f"entry {number} is {_describe(item)}")
    return tuple(str(item) for item in items)


def _gene_list(raw: object, origin: _Origin) -> tuple[str, ...]:
    items = _items(raw, origin)
    for number, item in enumerate(items, start=1):
        if not isinstance(item, str) or not item or item.split() != [item]:
            raise _Invalid(f"entry {number} is {_describe(item)}")
    return tuple(dict.fromkeys(str(item) for item in items))


def _path(raw: object, origin: _Origin) -> Path:
    if isinstance(raw, os.PathLike):  # a typer Path option
        raw = os.fspath(raw)
    if not isinstance(raw, str) or not raw.strip():
        raise _Invalid
    path = _expand_user(raw, origin.env)
    return origin.base / path if origin.base is not None and not path.is_absolute() else path


def _expand_user(text: str, env: Mapping[str, str] | None) -> Path:
    if env is not None and (text == "~" or text.startswith("~/")):
        return _home(env) / text[2:]
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~user with no such user
        raise _Invalid("cannot expand ~") from None


def _priority(raw: object, origin: _Origin) -> Priority:
    if not isinstance(raw, str):
        raise _Invalid
    try:
        return Priority(raw.strip().lower())
    except ValueError:
        raise _Invalid from None


_PARSERS: dict[KeyType, Callable[[object, _Origin], object]] = {
    KeyType.PATH: _path,
    KeyType.PRIORITY: _priority,
    KeyType.COUNT: _count,
    KeyType.SECONDS: _seconds,
    KeyType.TEXT: _text,
    KeyType.URL: _url,
    KeyType.URL_LIST: _url_list,
    KeyType.GENE_LIST: _gene_list,
}


def _show(value: object) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, tuple):
        return " ".join(str(item) for item in value) or "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, PanelSpec | GroupSpec):
        return value.describe()
    return str(value)


def _read_gene_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("gene panel file not found", path) from None
    except UnicodeDecodeError:
        raise InputError("gene panel file is not UTF-8 text", path) from None
    except OSError as exc:
        raise EnvironmentIOError.from_os_error(exc, path) from None
    genes = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        if len(content.split()) != 1:
            raise InputError(f"expected one gene symbol per line, got {content!r}", path, number)
        genes.append(content)
    return genes


# ------------------------------------------------------------------------------ the file
class _FileReader:
    """Validates parsed TOML against `KEYS` and the named tables, naming file:line on error."""

    def __init__(self, path: Path, lines: dict[tuple[str, ...], int],
                 env: Mapping[str, str] | None):
        self.path = path
        self.base = path.absolute().parent
        self.key_lines = lines
        self.env = env
        self.values: dict[str, object] = {}

    def read(self, data: dict[str, Any]) -> ConfigFile:
        self._walk(data, ())
        panels = self._panels(data.get("panels", {}))
        groups = self._groups(data.get("groups", {}), panels)
        lines = {name: line for name in self.values
                 if (line := self._line(tuple(name.split("."))))}
        return ConfigFile(self.path, self.values, lines, panels, groups)

    def _walk(self, table: dict[str, Any], prefix: tuple[str, ...]) -> None:
        for name, value in table.items():
            parts = (*prefix, name)
            dotted = ".".join(parts)
            if dotted in KEY_BY_NAME:
                key = KEY_BY_NAME[dotted]
                self.values[dotted] = _parse(key.type, dotted, value, self._origin(parts))
            elif dotted in NAMED_TABLES:
                pass  # read by _panels / _groups
            elif any(known.startswith(dotted + ".") for known in KEY_BY_NAME):
                self._walk(self._table(value, parts), parts)
            else:
                self._unknown(parts, _children(prefix))

    def _panels(self, raw: object) -> dict[str, PanelSpec]:
        panels = {}
        for name, table in self._table(raw, ("panels",)).items():
            parts = ("panels", name)
            found = self._fields(self._table(table, parts), parts, PANEL_KEYS)
            genes = found.get("genes", ())
            if not genes and "genes_file" not in found and "regions" not in found:
                raise UsageError(f"{self._where(parts)}: panel {name!r} is empty: set genes, "
                                 "genes_file or regions")
            panels[name] = PanelSpec(name, genes, found.get("genes_file"),
                                     found.get("regions"), self._where(parts))
        return panels

    def _groups(self, raw: object, panels: Mapping[str, PanelSpec]) -> dict[str, GroupSpec]:
        groups = {}
        for name, table in self._table(raw, ("groups",)).items():
            parts = ("groups", name)
            found = self._fields(self._table(table, parts), parts, GROUP_KEYS)
            panel = found.get("panel")
            if panel is None:
                raise UsageError(f"{self._where(parts)}: group {name!r} names no panel "
                                 "(panel = \"NAME\")")
            if panel not in panels:
                defined = ", ".join(sorted(panels)) or "none"
                raise UsageError(f"{self._where((*parts, 'panel'))}: groups.{name}.panel: "
                                 f"no panel named {panel!r} (defined: {defined})")
            groups[name] = GroupSpec(name, panel, found.get("min_priority"),
                                     self._where(parts))
        return groups

    def _fields(self, table: dict[str, Any], parts: tuple[str, ...],
                keys: tuple[Key, ...]) -> dict[str, Any]:
        by_name = {key.name: key for key in keys}
        found = {}
        for name, value in table.items():
            if name not in by_name:
                self._unknown((*parts, name), list(by_name))
            dotted = ".".join((*parts, name))
            found[name] = _parse(by_name[name].type, dotted, value, self._origin((*parts, name)))
        return found

    def _table(self, value: object, parts: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise UsageError(f"{self._where(parts)}: {'.'.join(parts)} must be a table, "
                             f"not {_describe(value)}")
        return value

    def _unknown(self, parts: tuple[str, ...], known: Iterable[str]) -> NoReturn:
        dotted = ".".join(parts)
        candidates = [".".join((*parts[:-1], name)) for name in known]
        close = difflib.get_close_matches(dotted, candidates, n=1)
        hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(candidates)}"
        raise UsageError(f"{self._where(parts)}: unknown key {dotted!r} ({hint})")

    def _origin(self, parts: tuple[str, ...]) -> _Origin:
        return _Origin(self._where(parts), textual=False, base=self.base, env=self.env)

    def _line(self, parts: tuple[str, ...]) -> int | None:
        # A key inside an inline table has no line of its own: use its nearest parent's.
        for end in range(len(parts), 0, -1):
            if (line := self.key_lines.get(parts[:end])) is not None:
                return line
        return None

    def _where(self, parts: tuple[str, ...]) -> str:
        line = self._line(parts)
        return f"{self.path}:{line}" if line else str(self.path)


def _children(prefix: tuple[str, ...]) -> list[str]:
    """Names allowed directly under a table of `KEYS` (plus the named tables at the top)."""
    depth = len(prefix)
    names = [key.name.split(".")[depth] for key in KEYS
             if tuple(key.name.split("."))[:depth] == prefix and key.name.count(".") >= depth]
    names += list(NAMED_TABLES) if not prefix else []
    return list(dict.fromkeys(names))


# ------------------------------------------------------------------------------ key lines
def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """First line (1-based) defining each key or table in valid TOML text, by dotted path.

    Lines inside multi-line strings and open arrays / inline tables are skipped, so a string
    that looks like `key = 1` or `[table]` is never taken for one."""
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    lexer = _Lexer()
    for number, line in enumerate(text.split("\n"), start=1):  # TOML's newlines, as tomllib
        if lexer.at_top_level:
            stripped = line.lstrip()
            if stripped.startswith("["):
                header = _dotted(stripped.lstrip("["), "]")
                if header is not None:
                    table = header
                    _record(found, table, number)
            elif stripped and not stripped.startswith("#"):
                parts = _dotted(stripped, "=")
                if parts is not None:
                    _record(found, table + parts, number)
        lexer.feed(line)
    return found


def _record(found: dict[tuple[str, ...], int], parts: tuple[str, ...], line: int) -> None:
    for end in range(1, len(parts) + 1):
        found.setdefault(parts[:end], line)


_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _dotted(text: str, end: str) -> tuple[str, ...] | None:
    """The dotted key at the start of `text` if `end` follows it, else None."""
    parts: list[str] = []
    at = _skip_blank(text, 0)
    while True:
        if text[at:at + 1] in ("\"", "'"):
            close = _string_end(text, at)
            part = _unquote(text[at:close]) if close is not None else None
            if part is None or close is None:
                return None
            parts.append(part)
            at = close
        elif match := _BARE.match(text, at):
            parts.append(match.group())
            at = match.end()
        else:
            return None
        at = _skip_blank(text, at)
        if not text.startswith(".", at):
            return tuple(parts) if text.startswith(end, at) else None
        at = _skip_blank(text, at + 1)


def _skip_blank(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t":
        at += 1
    return at


def _unquote(token: str) -> str | None:
    try:  # tomllib itself decodes the escapes of a quoted key
        value = tomllib.loads(f"k = {token}")["k"]
    except tomllib.TOMLDecodeError:
        return None
    return value if isinstance(value, str) else None


def _string_end(text: str, start: int) -> int | None:
    """Index just past the one-line string opening at `start`."""
    quote = text[start]
    at = start + 1
    while at < len(text):
        if quote == '"' and text[at] == "\\":
            at += 2
            continue
        if text[at] == quote:
            return at + 1
        at += 1
    return None


class _Lexer:
    """Carries across lines what TOML lets span them: multi-line strings and open brackets."""

    def __init__(self) -> None:
        self.depth = 0
        self.multiline: str | None = None  # the open delimiter, \"\"\" or '''

    @property
    def at_top_level(self) -> bool:
        return self.depth == 0 and self.multiline is None

    def feed(self, line: str) -> None:
        at = 0
        while at < len(line):
            if self.multiline is not None:
                close = self._multiline_end(line, at)
                if close is None:
                    return
                self.multiline, at = None, close
                continue
            char = line[at]
            if char == "#":
                return
            if line.startswith('"""', at) or line.startswith("'''", at):
                self.multiline, at = line[at:at + 3], at + 3
            elif char in "\"'":
                close = _string_end(line, at)
                if close is None:
                    return
                at = close
            else:
                self.depth += (char in "[{") - (char in "]}")
                self.depth = max(self.depth, 0)
                at += 1

    def _multiline_end(self, line: str, at: int) -> int | None:
        assert self.multiline is not None
        quote = self.multiline[0]
        while at < len(line):
            if quote == '"' and line[at] == "\\":
                at += 2
                continue
            if line.startswith(self.multiline, at):
                # up to two quotes may end the content right before the delimiter
                run = len(line[at:]) - len(line[at:].lstrip(quote))
                return at + run
            at += 1
        return None
