"""What the console talks to: the configured Room Engine, or an embedded emulator with demo rooms.

The description it gives is the console's first line, so the console never silently talks to
production.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bot.config import Settings
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import DEMO_ROOMS, DEMO_SDKAPPID, RoomEngineEmulator
from bot.tencent.ratelimit import CallBudget, RateBudget


@dataclass
class Backend:
    """What the console talks to, and what to say about it on the first line."""

    client: RoomEngineClient
    description: str
    emulator: RoomEngineEmulator | None = None

    async def aclose(self) -> None:
        """Close the client and stop the embedded emulator, if any."""
        await self.client.aclose()
        if self.emulator is not None:
            await self.emulator.stop()


@contextlib.asynccontextmanager
async def open_backend(
    settings: Settings, *, rate_budget: CallBudget | None = None
) -> AsyncIterator[Backend]:
    """The configured Room Engine (paced by `rate_budget`, the audit store's: shared with every
    replica on PostgreSQL), or an embedded emulator seeded with demo rooms."""
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
        backend = Backend(
            client=client,
            emulator=emulator,
            description=(
                f"embedded Room Engine emulator at {base_url} (SDKAppID {DEMO_SDKAPPID}, demo "
                "rooms: " + ", ".join(_demo_room_ids()) + ") — TENCENT_* not configured"
            ),
        )
    try:
        yield backend
    finally:
        await backend.aclose()


def _demo_room_ids() -> list[str]:
    return [str(room["RoomId"]) for room in DEMO_ROOMS]
