"""The release key: read from the environment or a key file, created once in local mode, never logged.

The key is the secret that makes person_id unlinkable to person_key: anyone holding it and the
restricted spine can re-identify. So it never comes from the repository or a config value, and
this module never prints it, puts it in an exception, or returns it inside anything that gets logged.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

from linkage.config import AppConfig
from linkage.errors import ConfigError

# RFC 2104: a key shorter than the hash output (32 bytes for SHA-256) weakens the MAC.
KEY_BYTES = 32


def load_release_key(
    config: AppConfig, environ: Mapping[str, str], say: Callable[[str], None] = print
) -> bytes:
    """The release key: $<key_env> first, then the key file; in local mode a missing key file is created.

    The key is written as hex text (at least 64 hex digits). Outside local mode a missing key is a
    ConfigError (exit 2). `say` receives one line naming the created file's path, never its content.
    """
    settings = config.pseudonymise
    from_env = environ.get(settings.key_env, "").strip()
    if from_env:
        return _decode(from_env, f"environment variable {settings.key_env}")
    key_file = Path(settings.key_file) if settings.key_file else None
    if key_file is not None:
        _refuse_inside_lake(key_file, config.paths.lake)
    if key_file is not None and key_file.exists():
        if key_file.stat().st_mode & 0o077:
            say(
                f"warning: release key file {key_file} can be read by other users; restrict it with chmod 600"
            )
        return _decode(key_file.read_text(encoding="ascii", errors="replace").strip(), f"key file {key_file}")
    if config.environment != "local":
        raise ConfigError(
            f"no pseudonymisation key for release '{settings.release_id}': set the environment variable "
            f"{settings.key_env} or pseudonymise.key_file to a file holding the release key "
            f"(a key is created automatically only when environment is 'local', here '{config.environment}')"
        )
    if key_file is None:
        raise ConfigError(
            "no pseudonymisation key: in local mode set pseudonymise.key_file to a path outside the "
            f"lake where a key can be created, or set {settings.key_env}"
        )
    created = create_key_file(key_file)
    if created:
        say(
            f"local mode: created a new release key file at {key_file} (mode 0600; keep it out of git and backups "
            f"shared with analysts)"
        )
    return _decode(key_file.read_text(encoding="ascii").strip(), f"key file {key_file}")


def create_key_file(path: Path) -> bool:
    """Write a random hex key to `path` with mode 0600 unless it exists; True when this call created it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # O_EXCL: two jobs starting at once must not each write (and use) a different key.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(KEY_BYTES) + "\n")
    os.chmod(path, 0o600)  # the umask may have narrowed it further; never wider
    return True


def _decode(text: str, where: str) -> bytes:
    # The message names where the key came from and what is wrong, never any part of the value.
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(
            f"{where}: the release key must be hex text (e.g. from `python -c "
            f'"import secrets; print(secrets.token_hex({KEY_BYTES}))"`)'
        ) from None
    if len(key) < KEY_BYTES:
        raise ConfigError(
            f"{where}: the release key must be at least {KEY_BYTES} bytes ({2 * KEY_BYTES} hex digits), "
            f"got {len(key)} bytes"
        )
    return key


def _refuse_inside_lake(key_file: Path, lake: str) -> None:
    # Analysts read the lake: a key stored there would travel with the tables it protects.
    if "://" in lake:
        return
    if key_file.resolve().is_relative_to(Path(lake).resolve()):
        raise ConfigError(
            f"pseudonymise.key_file {key_file} is inside the lake {lake}: keep the key outside it"
        )
