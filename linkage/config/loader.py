"""Loading the configuration: conf/base.yaml + an environment overlay + --set overrides, parsed once.

Every job calls `load_config` before Spark starts, so a wrong key or value fails fast with
the file (or `--set`) that supplied it, the dotted key, and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from linkage.config.models import AppConfig, PathsConfig, flatten_keys
from linkage.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONF_DIR = PROJECT_ROOT / "conf"
DEFAULT_OVERLAY = DEFAULT_CONF_DIR / "local.yaml"


def load_config(
    overlay: str | Path | None = None,
    overrides: Sequence[str] = (),
    base: str | Path | None = None,
) -> AppConfig:
    """Merge base.yaml, the overlay and `key=value` overrides (later wins), then validate.

    Relative paths in `paths.*` and cohort/ingest file settings are resolved against the
    project root, so a job behaves the same whatever folder it is started from.
    """
    overlay_path = Path(overlay) if overlay else DEFAULT_OVERLAY
    base_path = Path(base) if base else _base_beside(overlay_path)
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    _deep_merge(merged, _read_yaml(base_path), origin, str(base_path))
    for path, content in overlay_chain(overlay_path):
        _deep_merge(merged, content, origin, str(path))
    file_environment = merged.get("environment")
    for item in overrides:
        key, value = _parse_override(item)
        _deep_merge(merged, _nest(key, value), origin, "--set")
    if file_environment is None and overlay_path.stem in OVERLAY_ENVIRONMENTS:
        file_environment = overlay_path.stem
    environment_origin = _settle_environment(merged, origin, overlay_path)
    try:
        config = AppConfig.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(_describe(error, origin)) from None
    _check_safety_switches(config, origin, file_environment)
    config = _resolve_paths(config)
    _check_scratch_is_restricted(config.paths, origin)
    config._environment_origin = environment_origin
    return config


OVERLAY_ENVIRONMENTS = ("local", "docker", "cluster")
# Outside local mode these keys may change only in a reviewed configuration file, never on the command line.
PROTECTED_OUTSIDE_LOCAL = ("cohorts.disclosure",)


def _settle_environment(merged: dict[str, Any], origin: dict[str, str], overlay_path: Path) -> str:
    """Where `environment` comes from: stated in a file or --set, else the overlay's file name; never a default.

    An overlay that does not say which environment it is must not run as local by accident
    (local mode generates data, creates keys and approves models by itself).
    """
    if "environment" in merged:
        return origin.get("environment", "configuration")
    if overlay_path.stem in OVERLAY_ENVIRONMENTS:
        merged["environment"] = overlay_path.stem
        origin["environment"] = f"{overlay_path} (file name)"
        return origin["environment"]
    raise ConfigError(
        f"{overlay_path}: says no `environment` and its name is not one of "
        f"{', '.join(f'{name}.yaml' for name in OVERLAY_ENVIRONMENTS)}: add `environment: local` "
        f"(or docker, cluster) to it"
    )


def _check_scratch_is_restricted(paths: PathsConfig, origin: Mapping[str, str]) -> None:
    """Splink's scratch files hold identifiable values: they belong inside <lake>/restricted."""
    if paths.scratch is None:
        return
    restricted = f"{paths.lake.rstrip('/')}/restricted"
    if "://" in paths.scratch or "://" in restricted:
        inside = paths.scratch.rstrip("/").startswith(f"{restricted}/")
    else:
        inside = Path(paths.scratch).resolve().is_relative_to(Path(restricted).resolve())
        inside = inside and Path(paths.scratch).resolve() != Path(restricted).resolve()
    if not inside:
        raise ConfigError(
            f"{_origin_of('paths.scratch', origin)}: paths.scratch must be a folder inside "
            f"{restricted} (scratch files hold identifiable values), got {paths.scratch}"
        )


def _check_safety_switches(
    config: AppConfig, origin: Mapping[str, str], file_environment: str | None
) -> None:
    """Outside local mode, --set cannot loosen disclosure control nor turn the run into local mode."""
    if config.environment == "local":
        if origin.get("environment") == "--set" and file_environment not in (None, "local"):
            raise ConfigError(
                "--set environment=local: the configuration files say otherwise; local mode "
                "(generated data, new keys, auto-approval) is chosen in a file, not on the command line"
            )
        return
    changed = sorted(
        key for key, source in origin.items() if source == "--set" and key.startswith(PROTECTED_OUTSIDE_LOCAL)
    )
    if changed:
        raise ConfigError(
            f"--set {', '.join(changed)}: disclosure control cannot be changed on the command line "
            f"outside local mode (environment {config.environment}); change it in a reviewed "
            f"configuration file"
        )


EXTENDS_KEY = "extends"


def overlay_chain(overlay_path: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The overlay and the overlays it `extends` (a file name beside it), oldest ancestor first.

    One overlay can then say only how it differs from another, e.g. conf/docker-trial.yaml is
    conf/docker.yaml in local mode, instead of copying it and drifting from it.
    """
    chain: list[tuple[Path, dict[str, Any]]] = []
    path: Path | None = overlay_path
    while path is not None:
        if any(path.resolve() == seen.resolve() for seen, _ in chain):
            names = " -> ".join(str(seen) for seen, _ in chain)
            raise ConfigError(f"{names} -> {path}: `{EXTENDS_KEY}` goes round in a circle")
        content = _read_yaml(path)
        parent = content.pop(EXTENDS_KEY, None)
        if parent is not None and (not isinstance(parent, str) or not parent.strip()):
            raise ConfigError(f"{path}: `{EXTENDS_KEY}` must be the file name of another overlay")
        chain.append((path, content))
        path = path.parent / parent if parent else None
        if path is not None and not path.exists():
            raise ConfigError(
                f"{path}: configuration file not found (named by `{EXTENDS_KEY}` in {chain[-1][0]})"
            )
    return chain[::-1]


def _base_beside(overlay_path: Path) -> Path:
    beside = overlay_path.parent / "base.yaml"
    return beside if beside.exists() else DEFAULT_CONF_DIR / "base.yaml"


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(error, 'problem', error)})") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(content).__name__}")
    return content


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    key = key.strip()
    # A path typed on the command line means what the shell user sees: relative to their cwd.
    # (Paths inside YAML files are relative to the project root instead; see _resolve_paths.)
    if key in _COMMAND_LINE_PATH_KEYS and isinstance(value, str) and "://" not in value:
        value = str(Path(value).expanduser().resolve())
    return key, value


_COMMAND_LINE_PATH_KEYS = {f"paths.{name}" for name in PathsConfig.model_fields} | {
    "pseudonymise.key_file",
    "pseudonymise.vocabularies",
    "cohorts.declarations",
    "cohorts.codelists",
    "ingest.nicknames_file",
    "spark.local_dir",
}


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    cursor = nested
    parts = dotted.split(".")
    # spark.conf.* keys themselves contain dots: everything after `spark.conf.` is one key.
    if parts[:2] == ["spark", "conf"] and len(parts) > 2:
        parts = ["spark", "conf", ".".join(parts[2:])]
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def _deep_merge(
    target: dict[str, Any], update: Mapping[str, Any], origin: dict[str, str], source: str, prefix: str = ""
) -> None:
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value, origin, source, f"{dotted}.")
        else:
            target[key] = dict(value) if isinstance(value, Mapping) else value
            origin.pop(dotted, None)
            origin[dotted] = source
            if isinstance(value, Mapping):
                for sub in flatten_keys(value):
                    origin.pop(f"{dotted}.{sub}", None)
                    origin[f"{dotted}.{sub}"] = source


def _describe(error: ValidationError, origin: Mapping[str, str]) -> str:
    lines = []
    for item in error.errors():
        dotted = ".".join(str(part) for part in item["loc"])
        source = _origin_of(dotted, origin)
        if item["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{dotted}'")
        elif item["type"] == "missing":
            lines.append(f"{source}: missing required key '{dotted}'")
        else:
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: {dotted}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _origin_of(dotted: str, origin: Mapping[str, str]) -> str:
    """The file (or --set) that last set this key or anything under it: a cross-field rule on a
    section is reported against the latest source that touched the section."""
    inside = [key for key in origin if key == dotted or key.startswith(f"{dotted}.")]
    if inside:
        # origin preserves insertion order and later sources re-insert keys at the end
        return origin[inside[-1]]
    parts = dotted.split(".")
    for end in range(len(parts) - 1, 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in origin:
            return origin[candidate]
    return "configuration"


def _resolve(path: str | None) -> str | None:
    if path is None or "://" in path or path.startswith("/"):
        return path
    return str((PROJECT_ROOT / path).resolve())


def _resolve_paths(config: AppConfig) -> AppConfig:
    paths = config.paths.model_copy(
        update={name: _resolve(getattr(config.paths, name)) for name in PathsConfig.model_fields}
    )
    ingest = config.ingest.model_copy(update={"nicknames_file": _resolve(config.ingest.nicknames_file)})
    cohorts = config.cohorts.model_copy(
        update={
            "declarations": _resolve(config.cohorts.declarations),
            "codelists": _resolve(config.cohorts.codelists),
        }
    )
    pseudonymise = config.pseudonymise.model_copy(
        update={
            "key_file": _resolve(config.pseudonymise.key_file),
            "vocabularies": _resolve(config.pseudonymise.vocabularies),
        }
    )
    local_dir = _resolve(config.spark.local_dir)
    spark = config.spark.model_copy(update={"local_dir": local_dir})
    return config.model_copy(
        update={
            "paths": paths,
            "ingest": ingest,
            "cohorts": cohorts,
            "pseudonymise": pseudonymise,
            "spark": spark,
        }
    )
