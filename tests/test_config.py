"""Configuration: locating the file, precedence flag > env > file > default, where each value
came from, and refusal (exit 2, naming file:line and key) of every unknown key and wrong type.

Every test passes an explicit env dict with HOME inside tmp_path: the real HOME is never read."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from varreinterp.changes import Priority
from varreinterp.config import (
    _PARSERS,
    KEY_BY_NAME,
    KEYS,
    ConfigFile,
    Key,
    KeyType,
    Layer,
    Settings,
    _key_lines,
    effective_settings,
    load_config,
    locate_config,
)
from varreinterp.errors import ExitCode, InputError, UsageError


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home)}


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / "conf" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def resolve(path: Path | None, env: dict[str, str], **flags: object) -> Settings:
    return Settings.resolve(load_config(path, env), env, {k.replace("__", "."): v
                                                          for k, v in flags.items()})


def refused(text: str, tmp_path: Path, env: dict[str, str]) -> str:
    """Load `text` as a config file; it must be refused as a usage error. Returns the message."""
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_config(path, env)
    assert caught.value.exit_code == ExitCode.USAGE
    message = caught.value.one_line()
    assert message.startswith(str(path))
    return message


# ------------------------------------------------------------------------------ the table
def test_every_key_is_a_settings_attribute_and_every_env_name_is_unique() -> None:
    attributes = {f.name for f in dataclasses.fields(Settings)}
    assert {key.attribute for key in KEYS} <= attributes
    names = [key.env for key in KEYS if key.env]
    assert len(names) == len(set(names))
    assert all(name.startswith("VARREINTERP_") for name in names)
    assert len({key.flag for key in KEYS}) == len(KEYS)


def test_defaults(tmp_path: Path, env: dict[str, str]) -> None:
    settings = resolve(None, env)
    assert settings.store == Path(env["HOME"]) / ".local/share/varreinterp"
    assert settings.min_priority is Priority.MEDIUM
    assert settings.stale_after_days == 45
    assert settings.notify == ()
    assert settings.mirror.startswith("https://")
    assert settings.ca_bundle is None
    assert settings.fetch_timeout == 60.0
    assert settings.scheduler is None and settings.workers is None
    assert settings.panels == {} and settings.groups == {}
    assert set(settings.sources.values()) == {"default"}
    assert set(settings.layers.values()) == {Layer.DEFAULT}
    assert settings.config_path is None


def test_store_default_honours_xdg_data_home(tmp_path: Path, env: dict[str, str]) -> None:
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    assert resolve(None, env).store == tmp_path / "data" / "varreinterp"


# ------------------------------------------------------------------------------ precedence
# key, file value (TOML), env value, flag value, and the typed value each layer must give
PRECEDENCE = [
    ("stale_after_days", "10", "20", 30, (10, 20, 30)),
    ("min_priority", '"low"', "high", "low", (Priority.LOW, Priority.HIGH, Priority.LOW)),
    ("workers", "2", "4", "8", (2, 4, 8)),
    ("notify", '["mailto:a@x.org"]', "https://h/1 https://h/2", ["file:///tmp/n"],
     (("mailto:a@x.org",), ("https://h/1", "https://h/2"), ("file:///tmp/n",))),
    ("scheduler", '"tcp://10.0.0.1:8786"', "tcp://env:8786", "tcp://flag:8786",
     ("tcp://10.0.0.1:8786", "tcp://env:8786", "tcp://flag:8786")),
    ("fetch.mirror", '"https://file.example/clinvar"', "https://env.example",
     "https://flag.example",
     ("https://file.example/clinvar", "https://env.example", "https://flag.example")),
]


@pytest.mark.parametrize(("name", "in_file", "in_env", "flag", "expected"), PRECEDENCE,
                         ids=[row[0] for row in PRECEDENCE])
def test_flag_beats_env_beats_file_beats_default(
        tmp_path: Path, env: dict[str, str], name: str, in_file: str, in_env: str,
        flag: object, expected: tuple[object, object, object]) -> None:
    key = KEY_BY_NAME[name]
    section, _, leaf = name.rpartition(".")
    header = f"[{section}]\n" if section else ""
    path = write(tmp_path, f"# comment\n\n{header}{leaf} = {in_file}\n")
    line = 4 if section else 3
    assert key.env is not None
    with_env = {**env, key.env: in_env}

    default = resolve(None, env)
    assert default.sources[name] == "default"
    from_file = resolve(path, env, **{name.replace(".", "__"): None})
    from_env = resolve(path, with_env)
    from_flag = resolve(path, with_env, **{name.replace(".", "__"): flag})

    got = [getattr(s, key.attribute) for s in (from_file, from_env, from_flag)]
    assert got == list(expected)
    # each layer changes the value, so each one visibly took effect
    assert getattr(default, key.attribute) != expected[0] != expected[1] != expected[2]
    assert from_file.sources[name] == f"{path}:{line}"
    assert from_env.sources[name] == f"${key.env}"
    assert from_flag.sources[name] == key.flag
    layers = [s.layers[name] for s in (default, from_file, from_env, from_flag)]
    assert layers == [Layer.DEFAULT, Layer.FILE, Layer.ENV, Layer.FLAG]


def test_store_from_each_layer(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, 'store = "/srv/file-store"\n')
    assert resolve(path, env).store == Path("/srv/file-store")
    env["VARREINTERP_HOME"] = "/srv/env-store"
    assert resolve(path, env).store == Path("/srv/env-store")
    settings = resolve(path, env, store="/srv/flag-store")
    assert settings.store == Path("/srv/flag-store")
    assert settings.sources["store"] == "--store"


def test_empty_env_value_counts_as_unset(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, "workers = 3\n")
    env["VARREINTERP_WORKERS"] = "  "
    settings = resolve(path, env)
    assert settings.workers == 3
    assert settings.layers["workers"] is Layer.FILE


def test_empty_list_flag_counts_as_not_given(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, 'notify = ["mailto:lab@x.org"]\n')
    assert resolve(path, env, notify=[]).notify == ("mailto:lab@x.org",)


def test_unknown_flag_name_is_a_wiring_bug(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="min_prio"):
        Settings.resolve(ConfigFile(), env, {"min_prio": "low"})


# ------------------------------------------------------------------------------ sources
FULL = """\
# varreinterp configuration
store = "store"
min_priority = "high"

[fetch]
mirror = "https://mirror.example/clinvar"
timeout = 12.5
ca_bundle = "certs/ca.pem"

[panels.cardio]
genes = ["MYH7", "MYBPC3", "MYH7"]
regions = "cardio.bed"

[groups.heart_clinic]
panel = "cardio"
min_priority = "low"
"""


def test_effective_settings_name_file_and_line(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, FULL)
    env["VARREINTERP_STALE_AFTER_DAYS"] = "7"
    settings = resolve(path, env, workers=3)
    rows = {row.key: row for row in effective_settings(settings)}
    assert [row.key for row in effective_settings(settings)][:len(KEYS)] == [k.name for k in KEYS]
    assert rows["store"].source == f"{path}:2"
    assert rows["min_priority"].source == f"{path}:3"
    assert rows["fetch.mirror"].source == f"{path}:6"
    assert rows["fetch.timeout"].source == f"{path}:7"
    assert rows["fetch.ca_bundle"].source == f"{path}:8"
    assert rows["stale_after_days"].source == "$VARREINTERP_STALE_AFTER_DAYS"
    assert rows["workers"].source == "--workers"
    assert rows["scheduler"].source == "default"
    assert rows["panels.cardio"].source == f"{path}:10"
    assert rows["groups.heart_clinic"].source == f"{path}:14"
    assert rows["fetch.timeout"].text == "12.5"
    assert rows["stale_after_days"].text == "7"
    assert rows["scheduler"].text == "(not set)"
    assert rows["notify"].text == "(none)"
    assert rows["panels.cardio"].text == f"genes: MYH7 MYBPC3; regions: {path.parent}/cardio.bed"
    assert rows["groups.heart_clinic"].text == "panel: cardio; min_priority: low"


SECRET_URLS = (
    "https://lab:pa55word@hooks.example.org/hook?channel=x&token=tok123",
    "smtps://alerts:pa55word@mail.example.org?to=lab@example.org",
    "https://hooks.example.org/services/x?api_key=tok123&sig=tok123",
    "https://lab:pa55#word@hooks.example.org/hook",  # unencoded '#': the parser splits there
    "https://lab:pa?55word@hooks.example.org/hook?token=tok123",
    "http://[::1/hook?token=tok123",  # does not parse at all
)


def test_config_show_redacts_credentials_and_tokens(tmp_path: Path,
                                                    env: dict[str, str]) -> None:
    """issue 13: `config show` printed notification URLs with user:password@ and ?token= in
    clear. URL values are redacted as notifications show their targets."""
    path = write(tmp_path, 'notify = ["https://lab:pa55word@hooks.example.org/x?token=tok123"]\n'
                 '[fetch]\nmirror = "https://me:pa55word@mirror.example.org/clinvar"\n')
    env["VARREINTERP_NOTIFY"] = " ".join(SECRET_URLS)
    for settings in (resolve(path, env), resolve(path, {"HOME": env["HOME"]})):
        rows = {row.key: row for row in effective_settings(settings)}
        for key in ("notify", "fetch.mirror"):
            assert "pa55" not in rows[key].text and "tok123" not in rows[key].text, rows[key]
            assert "***" in rows[key].text
        assert rows["store"].text == str(settings.store)  # not a URL: as it is
    rows = {row.key: row for row in effective_settings(resolve(path, env))}
    assert rows["fetch.mirror"].text == "https://me:***@mirror.example.org/clinvar"
    assert rows["notify"].text.split() == [
        "https://lab:***@hooks.example.org/hook?channel=x&token=***",
        "smtps://alerts:***@mail.example.org?to=lab@example.org",
        "https://hooks.example.org/services/x?api_key=***&sig=***",
        "https://***@hooks.example.org/hook",
        "https://***@hooks.example.org/hook?token=***",
        "http://[::1/hook?token=***"]
    # The values themselves are untouched: only what is shown is redacted.
    assert resolve(path, env).notify == SECRET_URLS


def test_config_show_command_prints_no_secret(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import invoke

    path = write(tmp_path, '[fetch]\nmirror = "https://me:pa55word@mirror.example.org/c"\n')
    monkeypatch.setenv("VARREINTERP_NOTIFY", SECRET_URLS[0])
    for fmt in ("tsv", "json", "table"):
        r = invoke(None, "--config", path, "config", "show", "--format", fmt)
        assert r.code == 0, r.err
        assert "pa55word" not in r.out + r.err and "tok123" not in r.out + r.err
        assert "hooks.example.org" in r.out and "mirror.example.org" in r.out


def test_panels_and_groups(tmp_path: Path, env: dict[str, str]) -> None:
    settings = resolve(write(tmp_path, FULL), env)
    cardio = settings.panels["cardio"]
    assert cardio.genes == ("MYH7", "MYBPC3")  # duplicates dropped, order kept
    assert cardio.genes_file is None
    assert settings.panel_for("heart_clinic") == cardio
    assert settings.panel_for(None) is None
    # the group's own min_priority beats the file's global one, but not --min-priority
    assert settings.min_priority is Priority.HIGH
    assert settings.min_priority_for("heart_clinic") is Priority.LOW
    assert settings.min_priority_for(None) is Priority.HIGH
    flagged = resolve(write(tmp_path, FULL), env, min_priority="medium")
    assert flagged.min_priority_for("heart_clinic") is Priority.MEDIUM
    with pytest.raises(UsageError, match="no cohort group 'oncology'.*heart_clinic"):
        settings.min_priority_for("oncology")


def test_relative_paths_resolve_against_the_config_directory(
        tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # elsewhere than the config file's directory
    path = write(tmp_path, FULL + '\n[panels.onco]\ngenes_file = "../lists/onco.txt"\n'
                 'regions = "~/beds/onco.bed"\n')
    settings = resolve(path, env)
    conf = path.parent
    assert settings.store == conf / "store"
    assert settings.ca_bundle == conf / "certs/ca.pem"
    assert settings.panels["cardio"].regions == conf / "cardio.bed"
    assert settings.panels["onco"].genes_file == conf / "../lists/onco.txt"
    assert settings.panels["onco"].regions == Path(env["HOME"]) / "beds/onco.bed"
    # from the environment or a flag a relative path stays relative to the working directory
    env["VARREINTERP_HOME"] = "rel/store"
    assert resolve(path, env).store == Path("rel/store")


def test_panel_genes_file_is_read_with_inline_genes(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "genes.txt").write_text("# cardio\nTTN\n\nLMNA  # dilated\n")
    path = write(tmp_path, '[panels.p]\ngenes = ["MYH7"]\ngenes_file = "genes.txt"\n')
    assert resolve(path, env).panels["p"].read_genes() == {"MYH7", "TTN", "LMNA"}


def test_panel_genes_file_problems_name_the_file(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, '[panels.p]\ngenes_file = "genes.txt"\n')
    panel = resolve(path, env).panels["p"]
    with pytest.raises(InputError, match="genes.txt: gene panel file not found"):
        panel.read_genes()
    (tmp_path / "conf" / "genes.txt").write_text("TTN\nLMNA BRCA1\n")
    with pytest.raises(InputError, match=r"genes.txt:2: expected one gene symbol per line"):
        panel.read_genes()


# ------------------------------------------------------------------------------ locating
def test_absent_xdg_file_means_no_config(tmp_path: Path, env: dict[str, str]) -> None:
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    assert locate_config(None, env) is None
    assert load_config(None, env) == ConfigFile()


def test_xdg_config_home_is_honoured(tmp_path: Path, env: dict[str, str]) -> None:
    target = tmp_path / "xdg" / "varreinterp" / "config.toml"
    target.parent.mkdir(parents=True)
    target.write_text("workers = 5\n")
    decoy = Path(env["HOME"]) / ".config" / "varreinterp" / "config.toml"
    decoy.parent.mkdir(parents=True)
    decoy.write_text("workers = 9\n")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    found = locate_config(None, env)
    assert found == target
    settings = resolve(found, env)
    assert settings.workers == 5
    assert settings.sources["workers"] == f"{target}:1"
    del env["XDG_CONFIG_HOME"]
    assert locate_config(None, env) == decoy  # ~/.config when XDG_CONFIG_HOME is unset


def test_option_beats_env_beats_xdg(tmp_path: Path, env: dict[str, str]) -> None:
    xdg = tmp_path / "xdg" / "varreinterp" / "config.toml"
    xdg.parent.mkdir(parents=True)
    xdg.write_text("")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    named = write(tmp_path, "", "named.toml")
    option = write(tmp_path, "", "option.toml")
    assert locate_config(None, env) == xdg
    env["VARREINTERP_CONFIG"] = str(named)
    assert locate_config(None, env) == named
    assert locate_config(option, env) == option


def test_missing_named_config_is_a_usage_error(tmp_path: Path, env: dict[str, str]) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(UsageError, match=r"^--config .*nope.toml: config file not found$") as e:
        locate_config(missing, env)
    assert e.value.exit_code == ExitCode.USAGE
    env["VARREINTERP_CONFIG"] = str(missing)
    with pytest.raises(UsageError, match=r"^\$VARREINTERP_CONFIG=.*nope.toml: config file not"):
        locate_config(None, env)
    with pytest.raises(UsageError, match="config file not found"):
        load_config(missing, env)


# ------------------------------------------------------------------------------ refusals
def test_unknown_top_level_key(tmp_path: Path, env: dict[str, str]) -> None:
    message = refused("# c\nstore = \"s\"\nstale_after_day = 3\n", tmp_path, env)
    assert re.search(r"config.toml:3: unknown key 'stale_after_day' \(did you mean "
                     r"stale_after_days\?\)", message)


def test_unknown_key_in_fetch(tmp_path: Path, env: dict[str, str]) -> None:
    message = refused('workers = 2\n\n[fetch]\nmirror = "https://m"\nmirorr = "x"\n',
                      tmp_path, env)
    assert ":5: unknown key 'fetch.mirorr' (did you mean fetch.mirror?)" in message


def test_unknown_key_in_a_panel(tmp_path: Path, env: dict[str, str]) -> None:
    text = ('[panels.onco]\ngenes = ["BRCA1"]\n\n[panels.cardio]\ngenes = [\n  "MYH7",\n'
            '  "genez=1",\n]\ngenez = ["TTN"]\n')
    message = refused(text, tmp_path, env)
    assert ":9: unknown key 'panels.cardio.genez' (did you mean panels.cardio.genes?)" in message


def test_unknown_key_in_a_group_and_unknown_section(tmp_path: Path, env: dict[str, str]) -> None:
    text = '[panels.p]\ngenes = ["A"]\n[groups.g]\npanel = "p"\npriority = "low"\n'
    assert ":5: unknown key 'groups.g.priority'" in refused(text, tmp_path, env)
    assert ":2: unknown key 'fetcher'" in refused("\n[fetcher]\nmirror = 1\n", tmp_path, env)


def test_unknown_key_after_multiline_string_and_dotted_keys(
        tmp_path: Path, env: dict[str, str]) -> None:
    text = ('store = """\n[fetch]\nbogus = 1\n"""\nfetch.timeout = 3\nfetch.bogus = 1\n')
    assert ":6: unknown key 'fetch.bogus'" in refused(text, tmp_path, env)


# A wrong value for each kind of key: (file text, line, key, words the message must contain)
WRONG_TYPES = [
    ('stale_after_days = "45"\n', 1, "stale_after_days", "an integer >= 1, not a string ('45')"),
    ("stale_after_days = 0\n", 1, "stale_after_days", "an integer >= 1, not an integer (0)"),
    ("workers = true\n", 1, "workers", "an integer >= 1, not a boolean (true)"),
    ("workers = 2.0\n", 1, "workers", "not a float"),
    ("notify = 3\n", 1, "notify", "a list of URLs, not an integer (3)"),
    ('notify = "mailto:a@b.org"\n', 1, "notify", "a list of URLs, not a string"),
    ('notify = ["mailto:a@b.org", "lab"]\n', 1, "notify", "entry 2 is a string ('lab')"),
    ('min_priority = "urgent"\n', 1, "min_priority", "one of low, medium, high"),
    ("\n[fetch]\ntimeout = true\n", 3, "fetch.timeout", "seconds > 0, not a boolean"),
    ('\n[fetch]\ntimeout = "60"\n', 3, "fetch.timeout", "not a string ('60')"),
    ("\n[fetch]\ntimeout = nan\n", 3, "fetch.timeout", "not a float (nan)"),
    ('\n[fetch]\nmirror = "ftp.ncbi.nlm.nih.gov"\n', 3, "fetch.mirror", "a URL"),
    ("\n[fetch]\nca_bundle = []\n", 3, "fetch.ca_bundle", "a path, not a list"),
    ("store = 3\n", 1, "store", "a path, not an integer (3)"),
    ("store = 1979-05-27\n", 1, "store", "not a date (1979-05-27)"),
    ("scheduler = []\n", 1, "scheduler", "a non-empty string, not a list"),
    ('scheduler = ""\n', 1, "scheduler", "a non-empty string"),
    ('fetch = "https://x"\n', 1, "fetch", "must be a table, not a string"),
    ("[store]\n", 1, "store", "a path, not a table"),
    ("panels = 1\n", 1, "panels", "must be a table, not an integer"),
    ('\n[panels.x]\ngenes = "BRCA1"\n', 3, "panels.x.genes", "a list of gene symbols, not a str"),
    ('\n[panels.x]\ngenes = ["BRCA1", 7]\n', 3, "panels.x.genes", "entry 2 is an integer"),
    ("\n[panels.x]\ngenes_file = 1\n", 3, "panels.x.genes_file", "a path, not an integer"),
    ('[panels]\nx = "BRCA1"\n', 2, "panels.x", "must be a table, not a string"),
    ('[panels.p]\ngenes=["A"]\n[groups.g]\npanel = 1\n', 4, "groups.g.panel", "a non-empty str"),
    ('[panels.p]\ngenes=["A"]\n[groups.g]\npanel = "p"\nmin_priority = 3\n', 5,
     "groups.g.min_priority", "one of low, medium, high, not an integer"),
]


@pytest.mark.parametrize(("text", "line", "key", "words"), WRONG_TYPES,
                         ids=[f"{row[2]}-{n}" for n, row in enumerate(WRONG_TYPES)])
def test_wrong_type_names_file_line_and_key(tmp_path: Path, env: dict[str, str], text: str,
                                            line: int, key: str, words: str) -> None:
    message = refused(text, tmp_path, env)
    assert f"config.toml:{line}: {key} must be" in message
    assert words in message


@pytest.mark.parametrize("key", KEYS, ids=[key.name for key in KEYS])
@pytest.mark.parametrize("value", ["true", "{ a = 1 }", "1979-05-27"])
def test_every_key_refuses_a_wrong_type(tmp_path: Path, env: dict[str, str], key: Key,
                                        value: str) -> None:
    section, _, leaf = key.name.rpartition(".")
    text = (f"[{section}]\n" if section else "\n") + f"{leaf} = {value}\n"
    message = refused(text, tmp_path, env)
    assert f"config.toml:2: {key.name} must be {key.type.value}, not " in message


def test_empty_panel_and_group_problems(tmp_path: Path, env: dict[str, str]) -> None:
    assert ":2: panel 'x' is empty" in refused("\n[panels.x]\ngenes = []\n", tmp_path, env)
    text = '[panels.p]\ngenes = ["A"]\n\n[groups.g]\npanel = "q"\n'
    assert (":5: groups.g.panel: no panel named 'q' (defined: p)"
            in refused(text, tmp_path, env))
    assert ":1: group 'g' names no panel" in refused('[groups.g]\nmin_priority = "low"\n',
                                                     tmp_path, env)


def test_malformed_toml_gives_line_and_column(tmp_path: Path, env: dict[str, str]) -> None:
    message = refused('store = "a"\nworkers = = 3\n', tmp_path, env)
    assert "invalid TOML" in message
    assert "line 2, column" in message


def test_duplicate_key_is_malformed(tmp_path: Path, env: dict[str, str]) -> None:
    assert "line 2" in refused("workers = 1\nworkers = 2\n", tmp_path, env)


def test_not_utf8(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, "")
    path.write_bytes(b'store = "caf\xe9"\n')
    with pytest.raises(UsageError, match="not UTF-8 text"):
        load_config(path, env)


# ------------------------------------------------------------------------------ env and flags
ENV_ERRORS = [
    ("VARREINTERP_STALE_AFTER_DAYS", "abc", "stale_after_days must be an integer >= 1, not 'abc'"),
    ("VARREINTERP_WORKERS", "0", "workers must be an integer >= 1, not '0'"),
    ("VARREINTERP_WORKERS", "2.5", "workers must be an integer >= 1"),
    ("VARREINTERP_MIN_PRIORITY", "urgent", "min_priority must be one of low, medium, high"),
    ("VARREINTERP_NOTIFY", "mailto:a@b.org nobody", "entry 2 is a string ('nobody')"),
    ("VARREINTERP_MIRROR", "mirror.local", "fetch.mirror must be a URL"),
]


@pytest.mark.parametrize(("variable", "value", "words"), ENV_ERRORS)
def test_bad_env_value_names_the_variable(env: dict[str, str], variable: str, value: str,
                                          words: str) -> None:
    env[variable] = value
    with pytest.raises(UsageError) as caught:
        Settings.resolve(ConfigFile(), env, {})
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.one_line().startswith(f"${variable}: ")
    assert words in caught.value.one_line()


def test_flag_hides_a_bad_env_value_of_its_own_key_only(
        tmp_path: Path, env: dict[str, str]) -> None:
    env["VARREINTERP_WORKERS"] = "many"
    assert resolve(None, env, workers=2).workers == 2
    with pytest.raises(UsageError, match=r"^\$VARREINTERP_WORKERS"):
        resolve(None, env, stale_after_days=3)


def test_bad_flag_value_names_the_flag(env: dict[str, str]) -> None:
    with pytest.raises(UsageError, match=r"^--stale-after-days: .* not 'soon'"):
        resolve(None, env, stale_after_days="soon")
    with pytest.raises(UsageError, match=r"^--workers: .* not a boolean"):
        resolve(None, env, workers=True)
    with pytest.raises(UsageError, match=r"^--timeout: fetch.timeout must be"):
        resolve(None, env, fetch__timeout=-1)


# ------------------------------------------------------------------------------ internals
def test_key_lines_skip_strings_and_arrays() -> None:
    text = ('a = """\n[x]\nb = 1\n"""\nc = [\n  "d = 1",\n  { e = 1 },\n]\n'
            "f = 'it''s'\n[ t . \"q.k\" ]\ng = \"\\\" [h] = 1\"\n[[arr]]\ni = 1\n")
    lines = _key_lines(text)
    assert lines[("a",)] == 1 and lines[("c",)] == 5 and lines[("f",)] == 9
    assert ("x",) not in lines and ("b",) not in lines and ("d",) not in lines
    assert lines[("t", "q.k")] == 10 and lines[("t", "q.k", "g")] == 11
    assert lines[("arr", "i")] == 13


def test_every_key_type_has_a_parser() -> None:
    assert set(_PARSERS) == set(KeyType)


def test_import_is_cheap() -> None:
    code = ("import sys, varreinterp.config as c; "
            "print(sorted(m for m in ('duckdb', 'pandas', 'pyarrow', 'cyvcf2', 'httpx') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
