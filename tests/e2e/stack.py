"""The end-to-end stack: roombot's real HTTP endpoint, the Room Engine emulator and a fake Slack,
all on 127.0.0.1. Requests are signed exactly as Slack signs them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.audit import AuditEntry
from bot.budget import RateBudget
from bot.config import Settings, load_settings
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from handlers.app import Bot, build_bot
from handlers.serve import make_web_app
from testkit.slack_api import FakeSlack
from testkit.slack_payloads import (
    app_home_opened,
    app_mention,
    block_actions,
    form_body,
    interactive_body,
    sign,
    slash_command,
    view_block_actions,
    view_submission,
)

SDKAPPID = 1400000001
SECRET_KEY = "e2e0test0secret0key0" + "0" * 44
SIGNING_SECRET = "e2e-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-e2e-test-token"
ALICE = "U0ALICE01"  # allow-listed
MALLORY = "U0MALLORY"  # nobody granted her anything
GENERAL = "C0GENERAL1"
ROOMS = ("room-test", "room-2", "room-3")
#: `ROOMBOT_CALLBACK_TOKEN` of a stack started with `callbacks=True`, and its alert channel.
CALLBACK_TOKEN = "e2e-callback-token-0123456789"
ALERTS = "C0ALERTS01"
#: A second App administrator the emulator accepts: changes made as it are made outside roombot.
OTHER_ADMIN = "ops-console"


def button(message: dict[str, Any], action_id: str) -> dict[str, Any] | None:
    """The button `action_id` in `message`'s actions blocks, or None."""
    for block in message["blocks"]:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element["action_id"] == action_id:
                found: dict[str, Any] = element
                return found
    return None


@dataclass
class Reply:
    """roombot's HTTP answer to one signed request."""

    status: int
    body: str
    elapsed_s: float

    def json(self) -> dict[str, Any]:
        """The body as JSON (an empty ack is `{}`)."""
        return json.loads(self.body) if self.body.strip() else {}


@dataclass
class Stack:
    """A running roombot with its fakes. `slash`, `mention` and `click` send signed requests."""

    bot: Bot
    slack: FakeSlack
    emulator: RoomEngineEmulator
    url: str
    settings: Settings
    session: aiohttp.ClientSession
    response_key: int = field(default=0)
    #: roombot's callback URL, token included (`callbacks=True` only).
    callback_url: str | None = None

    async def post(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
        content_type: str = "application/x-www-form-urlencoded",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """POST `body` to /slack/events, signed (with `secret`, at `timestamp`)."""
        all_headers = {
            "Content-Type": content_type,
            **sign(body, secret, timestamp),
            **(headers or {}),
        }
        started = time.perf_counter()
        async with self.session.post(self.url, data=body, headers=all_headers) as response:
            text = await response.text()
        return Reply(status=response.status, body=text, elapsed_s=time.perf_counter() - started)

    def new_response_url(self) -> tuple[str, str]:
        """A fresh response_url and its key in the fake Slack."""
        self.response_key += 1
        key = f"r{self.response_key}"
        return key, self.slack.response_url(key)

    async def slash(
        self, text: str, *, user: str = ALICE, channel: str = GENERAL, **fields: str
    ) -> tuple[Reply, str]:
        """Send `/room text`; returns the ack and the response_url key it carried. Its
        trigger_id is one the fake Slack issued just now (good for one views.open in 3 s)."""
        key, url = self.new_response_url()
        fields.setdefault("trigger_id", self.slack.issue_trigger_id())
        body = form_body(
            slash_command(text, user_id=user, channel_id=channel, response_url=url, **fields)
        )
        return await self.post(body), key

    async def submit(
        self, view: dict[str, Any], answers: dict[str, Any], *, user: str = ALICE
    ) -> Reply:
        """Submit `view` (as the fake Slack holds it) filled in with `answers`."""
        payload = view_submission(view, answers, user_id=user)
        return await self.post(interactive_body(payload))

    async def in_view(
        self,
        view: dict[str, Any],
        action_id: str,
        *,
        value: str | None = None,
        user: str = ALICE,
        answers: dict[str, Any] | None = None,
    ) -> Reply:
        """Click a button or pick an option inside a view (a modal or the Home tab)."""
        payload = view_block_actions(view, action_id, value=value, user_id=user, answers=answers)
        return await self.post(interactive_body(payload))

    async def home_opened(self, user: str = ALICE, *, tab: str = "home") -> Reply:
        """`user` opens roombot's App Home (its Home tab, or `tab`)."""
        envelope = app_home_opened(user, tab=tab)
        return await self.post(json.dumps(envelope).encode(), content_type="application/json")

    async def mention(self, text: str, **kwargs: Any) -> tuple[Reply, dict[str, Any]]:
        """Send an `app_mention` event; returns the ack and the envelope sent."""
        envelope = app_mention(text, **kwargs)
        body = json.dumps(envelope).encode()
        return await self.post(body, content_type="application/json"), envelope

    async def click(self, action_id: str, value: str, **kwargs: Any) -> tuple[Reply, str]:
        """Click a button; returns the ack and the response_url key of the click."""
        key, url = self.new_response_url()
        payload = block_actions(action_id, value, response_url=url, **kwargs)
        return await self.post(interactive_body(payload)), key

    async def settle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every request roombot acknowledged has finished its background work.

        bolt runs a listener after the HTTP ack, so work may start just after a request returns:
        wait until nothing has been running for a short quiet period.
        """
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 0.2:
            left = deadline - time.monotonic()
            assert left > 0, f"{self.bot.runtime.tasks.pending} request(s) still running"
            if self.bot.runtime.tasks.pending:
                unfinished = await self.bot.runtime.tasks.drain(left)
                assert unfinished == 0, f"{unfinished} request(s) still running after {timeout}s"
                quiet_since = time.monotonic()
            await asyncio.sleep(0.02)

    async def rows(self) -> list[AuditEntry]:
        """Every audit row so far, oldest first."""
        store = self.bot.audit
        assert store is not None
        return list(reversed(await store.query(limit=10_000)))

    @property
    def audit_path(self) -> Path:
        """The SQLite file of this stack's audit trail."""
        target = self.settings.roombot_audit_db
        assert isinstance(target, Path), "the e2e stack's audit trail is a SQLite file"
        return target

    def response_posts(self, key: str) -> list[dict[str, Any]]:
        """What roombot posted to one response_url."""
        return [body for k, body in self.slack.response_posts if k == key]

    async def callback(
        self, query: dict[str, str], body: dict[str, Any] | bytes
    ) -> tuple[int, dict[str, Any]]:
        """POST a callback to roombot's `/tencent/callback` with exactly `query` (no token
        added); the HTTP status and the JSON answer."""
        assert self.callback_url is not None, "start the stack with callbacks=True"
        url = self.callback_url.split("?", 1)[0]
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with self.session.post(url, params=query, data=data) as response:
            text = await response.text()
        return response.status, (json.loads(text) if text.strip() else {})

    async def settle_callbacks(self) -> None:
        """Wait until the emulator has posted every callback and roombot has handled them,
        alerts included."""
        await self.emulator.settle_callbacks()
        receiver = self.bot.callbacks
        assert receiver is not None
        await receiver.settle()
        if receiver.alerts is not None:
            assert await receiver.alerts.flush(10)

    def as_admin(self, admin_id: str = OTHER_ADMIN) -> RoomEngineClient:
        """A Room Engine client of the same app calling as `admin_id` (close it after use):
        the Tencent console, or the platform's own backend when `admin_id` is roombot's."""
        return RoomEngineClient(
            base_url=self.emulator.base_url,
            sdkappid=SDKAPPID,
            secret_key=SECRET_KEY,
            admin_id=admin_id,
            rate_budget=RateBudget(50),
        )

    def tencent_calls(self, command: str = "update_room_info") -> list[Any]:
        """The emulator's recorded requests for `command`."""
        return [r for r in self.emulator.requests if r.command == command]


@asynccontextmanager
async def running_stack(
    tmp_path: Path,
    *,
    rooms: Iterable[str | dict[str, Any]] = ROOMS,
    allowed_users: tuple[str, ...] = (ALICE,),
    policy_toml: str | None = None,
    emulator_secret_key: str = SECRET_KEY,
    callbacks: bool = False,
    sign_callbacks: bool = False,
    **settings_overrides: Any,
) -> AsyncIterator[Stack]:
    """Start the emulator, the fake Slack and roombot's HTTP app on real loopback ports.

    `emulator_secret_key` other than roombot's makes every call fail Tencent's UserSig check.
    With `callbacks`, roombot takes Room Engine callbacks (`CALLBACK_TOKEN`, alerts to
    `ALERTS`) and the emulator posts them there (signed too with `sign_callbacks`).
    """
    emulator = RoomEngineEmulator(
        sdkappid=SDKAPPID,
        secret_key=emulator_secret_key,
        rooms=list(rooms),
        other_admins=[OTHER_ADMIN],
        callback_token=CALLBACK_TOKEN if sign_callbacks else None,
    )
    if callbacks:
        settings_overrides.setdefault("roombot_callback_token", CALLBACK_TOKEN)
        settings_overrides.setdefault("roombot_alert_channel", ALERTS)
    await emulator.start()
    slack = FakeSlack(bot_token=BOT_TOKEN)
    await slack.start()
    policy_file = None
    if policy_toml is not None:
        policy_file = tmp_path / "policy.toml"
        policy_file.write_text(policy_toml, encoding="utf-8")
    settings = load_settings(
        env_file=None,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.api_url,
        tencent_sdkappid=SDKAPPID,
        tencent_secret_key=SECRET_KEY,
        tencent_api_url=emulator.base_url,
        roombot_allowed_users=",".join(allowed_users),
        roombot_policy_file=policy_file,
        roombot_audit_db=tmp_path / "audit.sqlite3",
        **settings_overrides,
    )
    bot = await build_bot(settings)
    bot.start()
    runner = web.AppRunner(make_web_app(bot), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    callback_url = None
    if callbacks:
        callback_url = f"http://127.0.0.1:{port}/tencent/callback?token={CALLBACK_TOKEN}"
        emulator.callback_url = callback_url
    session = aiohttp.ClientSession()
    try:
        yield Stack(
            bot=bot,
            slack=slack,
            emulator=emulator,
            url=f"http://127.0.0.1:{port}/slack/events",
            settings=settings,
            session=session,
            callback_url=callback_url,
        )
    finally:
        await session.close()
        await bot.runtime.tasks.drain(10)
        await runner.cleanup()
        await bot.aclose()
        await slack.stop()
        await emulator.stop()
