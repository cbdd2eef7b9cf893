"""A throwaway PostgreSQL server for tests: a temporary directory, a free port on 127.0.0.1, a
random password, and everything removed when it stops.

`scripts/with-postgres CMD...` runs CMD with one (its URL in `ROOMBOT_TEST_DATABASE_URL`);
`tests/postgres.py` starts one for a test session when that variable is unset and the server
programs are installed. Standard library only, so it runs before any install.

`initdb` refuses to run as root: as root, the data directory is given to the `postgres` user and
the server programs run as that user (`runuser`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

#: Where Debian puts each major version's server programs.
_DEBIAN_ROOT: Final = Path("/usr/lib/postgresql")
URL_VARIABLE: Final = "ROOMBOT_TEST_DATABASE_URL"
_USER: Final = "roombot"
#: Settings for speed, not durability: a test server's data dies with it anyway.
_FAST_SETTINGS: Final = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
_SERVER_SETTINGS: Final = (
    "max_connections=200",
    "shared_buffers=32MB",
    "log_min_messages=warning",
)


class PostgresUnavailable(RuntimeError):
    """No server could be started here; the message says what is missing."""


def find_bindir() -> Path:
    """The directory holding `initdb`, `pg_ctl` and `postgres`: `$ROOMBOT_PG_BINDIR`, the newest
    Debian version, or the `PATH`. Raises `PostgresUnavailable` naming what is missing."""
    configured = os.environ.get("ROOMBOT_PG_BINDIR")
    candidates: list[Path] = [Path(configured)] if configured else []
    if configured:
        pass  # only where it says
    elif _DEBIAN_ROOT.is_dir():
        versions = sorted(
            (p for p in _DEBIAN_ROOT.iterdir() if p.name.isdigit()),
            key=lambda p: int(p.name),
            reverse=True,
        )
        candidates += [v / "bin" for v in versions]
    on_path = shutil.which("initdb")
    if on_path and not configured:
        candidates.append(Path(on_path).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise PostgresUnavailable(
        "PostgreSQL server programs (initdb, pg_ctl) not found: install Debian's postgresql-15 "
        "(or set ROOMBOT_PG_BINDIR), or set ROOMBOT_TEST_DATABASE_URL to a server"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TemporaryPostgres:
    """One server; `start()` then `url`, and `stop()` (idempotent) removes every trace.

    It trades durability for speed (no fsync), unless `durable` (a benchmark wants PostgreSQL's
    own defaults, as in production).
    """

    def __init__(self, bindir: Path | None = None, *, durable: bool = False) -> None:
        self.bindir = bindir or find_bindir()
        self.durable = durable
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self._tmp: Path | None = None
        self._as_postgres = os.geteuid() == 0

    @property
    def postmaster_pid(self) -> int | None:
        """The server's main process (its first line of postmaster.pid), while it runs."""
        if self._tmp is None:
            return None
        try:
            return int((self._tmp / "data" / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    @property
    def url(self) -> str:
        """The URL of the `postgres` database, as the superuser `roombot` with its password."""
        return f"postgresql://{_USER}:{self.password}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """initdb, then start on a free port (retried if another process takes the port first)."""
        self._tmp = Path(tempfile.mkdtemp(prefix="roombot-pg-"))
        try:
            self._initdb()
            for _ in range(5):
                self.port = _free_port()
                if self._pg_ctl_start():
                    return
            raise PostgresUnavailable(f"the server would not start; see {self._tmp / 'log'}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (fast: nothing in it matters) and delete its directory."""
        tmp, self._tmp = self._tmp, None
        if tmp is None:
            return
        data = tmp / "data"
        if (data / "postmaster.pid").exists():
            self._run(
                [str(self.bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w"],
                check=False,
            )
        shutil.rmtree(tmp, ignore_errors=True)

    def _initdb(self) -> None:
        assert self._tmp is not None
        pwfile = self._tmp / "pw"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            for path in (self._tmp, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        pwfile.chmod(0o600)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self._tmp / "data"),
                "-U",
                _USER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )
        pwfile.unlink()

    def _pg_ctl_start(self) -> bool:
        assert self._tmp is not None
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-p {self.port}",
            f"-c unix_socket_directories={self._tmp}",
            *(f"-c {setting}" for setting in _SERVER_SETTINGS),
            *(() if self.durable else (f"-c {setting}" for setting in _FAST_SETTINGS)),
        ]
        done = self._run(
            [
                str(self.bindir / "pg_ctl"),
                "start",
                "-D",
                str(self._tmp / "data"),
                "-l",
                str(self._tmp / "log"),
                "-w",
                "-t",
                "30",
                "-o",
                " ".join(options),
            ],
            check=False,
        )
        return done.returncode == 0

    def _run(self, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        program = Path(argv[0]).name
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise PostgresUnavailable(
                f"{program} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
            )
        return done


@contextlib.contextmanager
def temporary_postgres() -> Iterator[TemporaryPostgres]:
    """A started server for the `with` block, always stopped and removed afterwards."""
    server = TemporaryPostgres()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: Sequence[str]) -> int:
    """`with-postgres CMD...`: run CMD with `ROOMBOT_TEST_DATABASE_URL` set; CMD's exit status."""
    if not argv:
        print("usage: with-postgres CMD [ARGS...]", file=sys.stderr)
        return 2
    try:
        server = TemporaryPostgres()
        server.start()
    except PostgresUnavailable as exc:
        print(f"with-postgres: {exc}", file=sys.stderr)
        return 3
    # A signal must still stop the server: turn SIGTERM into the normal exit path.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        print(f"with-postgres: PostgreSQL on 127.0.0.1:{server.port}", file=sys.stderr, flush=True)
        env = {**os.environ, URL_VARIABLE: server.url}
        started = time.monotonic()
        status = subprocess.run(list(argv), env=env, check=False).returncode
        elapsed = time.monotonic() - started
        print(f"with-postgres: command exited {status} after {elapsed:.0f} s", file=sys.stderr)
        return status
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
