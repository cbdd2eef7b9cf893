"""`roombot emulator`: run the Room Engine emulator as a server until SIGINT/SIGTERM.

The emulator itself (`bot.tencent.emulator`) is a library the tests, the console and the bench
start in-process; this module is only its command-line face: seeding rooms from options or a
file, printing how to point the bot at it, and stopping cleanly on a signal.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from bot.config import Settings
from bot.errors import RoombotError
from bot.tencent.emulator import DEMO_ROOMS, DEMO_SDKAPPID, RoomEngineEmulator


class EmulatorUsageError(RoombotError, ValueError):
    """Bad `roombot emulator` options (the CLI turns this into exit status 2)."""


def load_rooms_file(path: str | Path) -> list[str | dict[str, Any]]:
    """Rooms from a JSON file: a list of RoomIds and/or RoomInfo objects, or {RoomId: {fields}}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise EmulatorUsageError(f"cannot read rooms file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise EmulatorUsageError(f"rooms file {path} is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        if not all(isinstance(v, dict) for v in data.values()):
            raise EmulatorUsageError(f"rooms file {path}: each room's value must be an object")
        return [{**fields, "RoomId": room_id} for room_id, fields in data.items()]
    if isinstance(data, list) and all(isinstance(item, str | dict) for item in data):
        return list(data)
    raise EmulatorUsageError(
        f"rooms file {path} must hold a list of room IDs or RoomInfo objects, "
        "or an object mapping room IDs to fields"
    )


def run_cli(
    *,
    settings: Settings,
    host: str,
    port: int,
    rooms: Sequence[str],
    rooms_file: str | None,
    latency_ms: float,
    fail_rate: float,
    http_502_rate: float,
    hang_rate: float,
    callback_url: str | None = None,
    callback_token: str | None = None,
    other_admins: Sequence[str] = (),
    key_source: str | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """`roombot emulator`: serve until SIGINT/SIGTERM, printing how to point the bot at it.

    `key_source` says where a configured TENCENT_SECRET_KEY was read (".env", "the
    environment"); the banner names it. Raises `EmulatorUsageError` for bad options.
    """
    seeded: list[str | dict[str, Any]] = list(rooms)
    if rooms_file:
        seeded.extend(load_rooms_file(rooms_file))
    if not seeded:
        seeded = [dict(room) for room in DEMO_ROOMS]
    configured_key = settings.tencent_secret_key
    secret_key = configured_key.get_secret_value() if configured_key else secrets.token_hex(32)
    try:
        emulator = RoomEngineEmulator(
            sdkappid=settings.tencent_sdkappid or DEMO_SDKAPPID,
            secret_key=secret_key,
            admin_id=settings.tencent_admin_id,
            rooms=seeded,
            latency_s=latency_ms / 1000.0,
            fail_rate=fail_rate,
            http_502_rate=http_502_rate,
            hang_rate=hang_rate,
            callback_url=callback_url,
            callback_token=callback_token,
            other_admins=other_admins,
        )
    except ValueError as exc:
        raise EmulatorUsageError(str(exc)) from None
    # Say where the key came from: a .env read without saying so surprises people.
    shown_key = (
        f"<your configured TENCENT_SECRET_KEY, read from {key_source or 'the settings'}>"
        if configured_key
        else f"{secret_key}   # generated for this run (no TENCENT_SECRET_KEY is set)"
    )
    return asyncio.run(_serve_until_signalled(emulator, host, port, shown_key, out))


async def _serve_until_signalled(
    emulator: RoomEngineEmulator, host: str, port: int, shown_key: str, out: TextIO
) -> int:
    try:
        base_url = await emulator.start(host, port)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise EmulatorUsageError(f"cannot listen on {host}:{port}: {reason}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    faults = [
        f"{label} {value:g}"
        for label, value in (
            ("latency_s", emulator.latency_s),
            ("fail_rate", emulator.fail_rate),
            ("http_502_rate", emulator.http_502_rate),
            ("hang_rate", emulator.hang_rate),
        )
        if value
    ]
    also = "".join(f" (also {admin!r})" for admin in emulator.other_admins)
    lines = [
        f"Room Engine emulator listening on {base_url}",
        f"  SDKAppID {emulator.sdkappid}, admin {emulator.admin_id!r}{also}, "
        f"{len(emulator.rooms)} room(s): {', '.join(sorted(emulator.rooms))}",
        f"  faults: {', '.join(faults) if faults else 'none'}",
        f"  callbacks: {_callbacks_line(emulator)}",
        "Point the bot at it (environment or .env):",
        f"  TENCENT_API_URL={base_url}",
        f"  TENCENT_SDKAPPID={emulator.sdkappid}",
        f"  TENCENT_SECRET_KEY={shown_key}",
        f"  TENCENT_ADMIN_ID={emulator.admin_id}",
        "Stop with Ctrl-C.",
    ]
    print("\n".join(lines), file=out, flush=True)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await emulator.stop()
    print(
        f"emulator stopped after {len(emulator.requests)} request(s), "
        f"{emulator.rate_limited} rate-limited, {len(emulator.callbacks)} callback(s) sent",
        file=out,
        flush=True,
    )
    return 0


def _callbacks_line(emulator: RoomEngineEmulator) -> str:
    """Where callbacks go, without the URL's query (it may carry the receiver's token)."""
    if emulator.callback_url is None:
        return "none until configured through v4/room_config/set_callback"
    shown = emulator.callback_url.split("?", 1)[0]
    signed = ", signed" if emulator.callback_signed else ""
    return f"every command to {shown}{signed} (until a configuration is set through the API)"
