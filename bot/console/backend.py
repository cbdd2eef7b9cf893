"""What the console talks to: the configured Room Engine, or an embedded emulator with demo rooms.

The description it gives is the console's first line, so the console never silently talks to
production. The demo's rooms (their settings, members and bans) are kept between runs in a JSON
file beside the audit trail (`demo_rooms_path`), so `show` never contradicts `history`:
`roombot console --reset-demo` (or deleting that file) starts the demo afresh.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.budget import CallBudget, RateBudget
from bot.config import Settings
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import DEMO_ROOMS, DEMO_SDKAPPID, RoomEngineEmulator

log = logging.getLogger(__name__)


def demo_rooms_path(settings: Settings) -> Path:
    """Where the demo keeps its rooms: beside a SQLite audit trail (`X.sqlite3` →
    `X.demo-rooms.json`), else in the working directory."""
    target = settings.roombot_audit_db
    if isinstance(target, Path):
        return target.with_name(target.stem + ".demo-rooms.json")
    return Path("roombot-demo-rooms.json")


def _saved_rooms(path: Path) -> list[dict[str, Any]] | None:
    """The rooms a previous demo run saved, or None (none saved, or unreadable: say so)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring the saved demo rooms in %s: %s", path, exc)
        return None
    if not isinstance(data, list) or not all(isinstance(room, dict) for room in data):
        log.warning("ignoring the saved demo rooms in %s: not a list of rooms", path)
        return None
    return data


@dataclass
class Backend:
    """What the console talks to, and what to say about it on the first line."""

    client: RoomEngineClient
    description: str
    emulator: RoomEngineEmulator | None = None
    #: Where the embedded emulator's rooms are kept between runs.
    state_file: Path | None = None

    async def save(self) -> None:
        """Keep the embedded emulator's rooms for the next run (nothing for real Room Engine)."""
        if self.emulator is None or self.state_file is None:
            return
        text = json.dumps(self.emulator.snapshot(), ensure_ascii=False, indent=1)
        partial = self.state_file.with_name(self.state_file.name + ".tmp")
        try:
            partial.write_text(text, encoding="utf-8")
            partial.replace(self.state_file)
        except OSError as exc:
            log.warning("could not keep the demo rooms in %s: %s", self.state_file, exc)

    async def aclose(self) -> None:
        """Close the client and stop the embedded emulator, if any."""
        await self.client.aclose()
        if self.emulator is not None:
            await self.emulator.stop()


@contextlib.asynccontextmanager
async def open_backend(
    settings: Settings, *, rate_budget: CallBudget | None = None, reset_demo: bool = False
) -> AsyncIterator[Backend]:
    """The configured Room Engine (paced by `rate_budget`, the audit store's: shared with every
    replica on PostgreSQL), or an embedded emulator seeded with demo rooms: those kept from the
    last run, or new ones with `reset_demo` (the kept ones are then forgotten)."""
    if settings.tencent_configured:
        client = RoomEngineClient.from_settings(settings, rate_budget=rate_budget)
        backend = Backend(
            client=client,
            description=(
                f"Room Engine at {settings.tencent_base_url} "
                f"(SDKAppID {settings.tencent_sdkappid}, admin {settings.tencent_admin_id}) — "
                "REAL rooms: changes take effect"
            ),
        )
    else:
        key = secrets.token_hex(32)
        state_file = demo_rooms_path(settings)
        if reset_demo:
            state_file.unlink(missing_ok=True)
        saved = _saved_rooms(state_file)
        try:
            emulator = RoomEngineEmulator(
                sdkappid=DEMO_SDKAPPID,
                secret_key=key,
                admin_id="administrator",
                rooms=saved if saved is not None else DEMO_ROOMS,
            )
        except ValueError as exc:
            log.warning("ignoring the saved demo rooms in %s: %s", state_file, exc)
            saved = None
            emulator = RoomEngineEmulator(
                sdkappid=DEMO_SDKAPPID, secret_key=key, admin_id="administrator", rooms=DEMO_ROOMS
            )
        base_url = await emulator.start()
        client = RoomEngineClient(
            base_url=base_url,
            sdkappid=DEMO_SDKAPPID,
            secret_key=key,
            admin_id="administrator",
            rate_budget=RateBudget(settings.roombot_rate_limit),
        )
        if saved is not None:
            kept = f"kept from the last run in {state_file}; --reset-demo starts them afresh"
        else:
            kept = f"{'reset' if reset_demo else 'new'}, kept in {state_file}"
        backend = Backend(
            client=client,
            emulator=emulator,
            state_file=state_file,
            description=(
                f"embedded Room Engine emulator at {base_url} (SDKAppID {DEMO_SDKAPPID}, demo "
                f"rooms: {', '.join(emulator.rooms)}; {kept}) — TENCENT_* not "
                "configured"
            ),
        )
    try:
        yield backend
    finally:
        await backend.aclose()
