"""Worker threads leave Ctrl-C, SIGTERM and SIGHUP to the main thread (`bot.aio.worker_threads`).

A thread that does not block a signal may be handed it by the kernel; the console's main thread,
waiting in readline for a key, then sees a Ctrl-C only at the next key.
"""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.aio import MAIN_THREAD_SIGNALS, worker_threads
from bot.audit import open_store


def _mask_of_a_thread_of(pool: ThreadPoolExecutor) -> set[int]:
    with pool:
        return {int(s) for s in pool.submit(signal.pthread_sigmask, signal.SIG_BLOCK, []).result()}


def test_a_worker_thread_blocks_the_signals_the_main_thread_handles() -> None:
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP} == MAIN_THREAD_SIGNALS
    wanted = {int(s) for s in MAIN_THREAD_SIGNALS}
    assert _mask_of_a_thread_of(worker_threads(1)) >= wanted
    # The control: an ordinary pool's thread takes them like the main thread.
    assert not _mask_of_a_thread_of(ThreadPoolExecutor(1)) & wanted


def _blocked(native_id: int) -> set[int]:
    """The signal numbers a thread of this process blocks, from /proc."""
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    [line] = [ln for ln in status.splitlines() if ln.startswith("SigBlk:")]
    mask = int(line.split()[1], 16)
    return {number for number in range(1, 64) if mask >> (number - 1) & 1}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
async def test_the_sqlite_audit_stores_thread_leaves_signals_to_the_main_thread(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "audit.sqlite3")
    try:
        [audit_thread] = [t for t in threading.enumerate() if t.name.startswith("roombot-audit")]
        assert audit_thread.native_id is not None
        assert _blocked(audit_thread.native_id) >= {int(s) for s in MAIN_THREAD_SIGNALS}
        main = threading.main_thread().native_id
        assert main is not None
        assert not _blocked(main) & {int(signal.SIGINT)}
    finally:
        await store.close()
