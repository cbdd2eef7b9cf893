"""The Kubernetes Deployment's promise, tried on a real process: with PostgreSQL, `roombot serve`
needs no writable disk. The process runs in a mount namespace of its own where `/` is
read-only (as `readOnlyRootFilesystem: true` makes it), takes a command end to end and drains
on SIGTERM; with the SQLite default in its working directory it cannot start, which shows the
read-only root is really in force. Needs root's right to make a mount namespace (`unshare -m`);
skips, saying so, where it is not granted."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.serve_proc import clean_env, serve_process
from tests.e2e.stack import BOT_TOKEN, SDKAPPID, SECRET_KEY, SIGNING_SECRET

pytestmark = pytest.mark.slow

_READ_ONLY_ROOT = 'mount -o remount,bind,ro / && exec "$0" "$@"'


@functools.cache
def _namespaces_allowed() -> bool:
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", _READ_ONLY_ROOT, "true"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return probe.returncode == 0


def _read_only_python(tmp_path: Path) -> str:
    """A stand-in for the interpreter that runs it with `/` read-only."""
    if not _namespaces_allowed():
        pytest.skip("cannot make a mount namespace here (unshare -m needs CAP_SYS_ADMIN)")
    wrapper = tmp_path / "python-on-read-only-root"
    wrapper.write_text(
        "#!/bin/sh\n"
        "exec unshare -m --propagation private "
        f"sh -c '{_READ_ONLY_ROOT}' {sys.executable} \"$@\"\n",
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.mark.postgres
async def test_serve_on_postgresql_runs_with_a_read_only_root(
    tmp_path: Path, pg_database: str
) -> None:
    python = _read_only_python(tmp_path)
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    async with serve_process(
        workdir, python=python, ROOMBOT_AUDIT_DB=pg_database, ROOMBOT_LOG_FORMAT="json"
    ) as served:
        status, _ = await served.slash_ack("mute-all room-test")
        assert status == 200
        for _ in range(100):
            if any("done: 1/1" in m.get("text", "") for m in served.slack.messages()):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(served.slack.summary())
        assert (await served.ready())[0] == 200
        assert await served.stop() == 0
        log = served.output.log
    assert "Read-only file system" not in log
    assert "Traceback" not in log
    assert list(workdir.iterdir()) == []


async def test_the_sqlite_default_cannot_start_there(tmp_path: Path) -> None:
    python = _read_only_python(tmp_path)
    settings = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": "http://127.0.0.1:9/api/",
        "TENCENT_SDKAPPID": str(SDKAPPID),
        "TENCENT_SECRET_KEY": SECRET_KEY,
    }
    proc = await asyncio.create_subprocess_exec(
        python, "-m", "bot", "serve", "--http", "--host", "127.0.0.1", "--port", "0",
        env=clean_env(**settings), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 2, err.decode()
    assert "roombot-audit.sqlite3" in err.decode()
    assert not (tmp_path / "roombot-audit.sqlite3").exists()
