"""The Slack adapter's wiring: Settings → audit store → Room Engine client (paced by the store's
rate budget), policy, service, presenter → a bolt `AsyncApp` with every listener registered
(`register_all`), and the process's one request loop (`bot.requests.loop`: lease renewals and
takeovers of requests whose replica stopped), started by `Bot.start`, stopped by `Bot.aclose`."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import partial

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.audit import AuditStore, open_store
from bot.audit.dialect import BudgetRider
from bot.audit.retention import AuditPruner
from bot.config import ConfigError, Settings
from bot.policy import GroupDirectory, policy_from_settings
from bot.presenter import Presenter
from bot.requests.delivery import Deliveries
from bot.requests.loop import RequestLoop
from bot.service import RoomService
from bot.tencent.client import RoomEngineClient
from handlers import (
    actions,
    alerts,
    backstop,
    cards,
    commands,
    home,
    mentions,
    modal,
    timer_actions,
)
from handlers import approvals as approvals_slack
from handlers.blocks import Message
from handlers.callbacks import CallbackReceiver, build_receiver
from handlers.middleware import attach_actor
from handlers.renderer import SlackRenderer
from handlers.runtime import SlackRuntime
from handlers.slack_client import build_slack_client
from handlers.slack_delivery import slack_deliveries

log = logging.getLogger(__name__)


class _NoTokenWarning(logging.Filter):
    """Drops bolt's "`token` will be unused" warning: roombot hands bolt its own client on
    purpose, and bolt then finds SLACK_BOT_TOKEN in the environment and warns at every start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


_no_token_warning = _NoTokenWarning()


def group_directory(client: AsyncWebClient) -> GroupDirectory:
    """User-group membership through `usergroups.users.list` (cached and fail-closed by policy)."""

    async def fetch(group_id: str) -> Collection[str]:
        response = await client.usergroups_users_list(usergroup=group_id)
        return [str(u) for u in response.get("users") or []]

    return GroupDirectory(fetch)


@dataclass
class Bot:
    """A fully wired bot: the bolt app and what it owns (closed together by `aclose`).

    `loop` renews this process's leases and takes over requests whose replica stopped,
    reporting them in their threads; it runs from `start()` (once the server takes traffic)
    until `aclose()`.
    """

    app: AsyncApp
    presenter: Presenter[Message]
    tencent: RoomEngineClient
    slack: AsyncWebClient
    settings: Settings
    audit: AuditStore | None = None
    runtime: SlackRuntime = field(default_factory=SlackRuntime)
    #: `POST /tencent/callback`'s receiver; None without ROOMBOT_CALLBACK_TOKEN.
    callbacks: CallbackReceiver | None = None
    loop: RequestLoop | None = None
    #: Prunes rows older than ROOMBOT_AUDIT_RETENTION in the background; None when unset.
    pruner: AuditPruner | None = None

    def start(self) -> None:
        """Start the request loop: a look for due work now (a restart's unfinished requests),
        then every few seconds. Idempotent."""
        if self.loop is not None:
            self.loop.start()
        if self.pruner is not None:
            self.pruner.start()

    @property
    def service(self) -> RoomService:
        """The service behind every listener."""
        return self.presenter.service

    def reload_policy(self) -> bool:
        """Re-read `ROOMBOT_POLICY_FILE`; on any problem keep the current policy and say why."""
        try:
            policy = policy_from_settings(self.settings)
        except ConfigError as exc:
            for problem in str(exc).splitlines():
                log.error("policy not reloaded, keeping the current one: %s", problem)
            return False
        self.service.set_policy(policy)
        log.info("policy reloaded: %s", "; ".join(policy.describe()) or "nobody may run anything")
        return True

    async def aclose(self) -> None:
        """Stop the request loop, release network resources, and close the audit store (last:
        the others use it; callbacks still queued are handled, and their alerts posted,
        first). Leases still held stay in the store and expire, or are taken over at once by
        this process's successor."""
        if self.loop is not None:
            await self.loop.stop()
        if self.pruner is not None:
            await self.pruner.stop()
        if self.callbacks is not None:
            await self.callbacks.close()
        await self.tencent.aclose()
        if self.slack.session is not None:
            await self.slack.session.close()
        if self.audit is not None:
            await self.audit.close()


async def open_audit(settings: Settings) -> AuditStore:
    """Open (and migrate) the audit store; say loudly if a crash left requests unfinished."""
    store = await open_store(settings.roombot_audit_db, lease_s=settings.roombot_lease_s)
    if store.recovered:
        log.warning(
            "audit: %d request(s) were in flight when roombot last stopped; each room is read "
            "back and the verdict posted in the request's thread",
            store.recovered,
        )
    return store


async def build_bot(
    settings: Settings,
    *,
    tencent: RoomEngineClient | None = None,
) -> Bot:
    """Build the bolt app and everything behind it from `settings` (opens the audit store)."""
    policy = policy_from_settings(settings)
    # Opened first: when it cannot be, nothing else is left open behind the error.
    audit = await open_audit(settings)
    slack = build_slack_client(
        settings, aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    )
    if policy.is_empty:
        log.warning("nobody may run any command: set ROOMBOT_ALLOWED_USERS or ROOMBOT_POLICY_FILE")
    # The store's budget: on PostgreSQL, one budget for every replica on the database.
    budget = audit.rate_budget(settings.roombot_rate_limit, app=settings.tencent_sdkappid)
    if isinstance(budget, BudgetRider):
        await budget.warm()  # its first use, under load, waits for no login
    tencent = tencent or RoomEngineClient.from_settings(settings, rate_budget=budget)
    service = RoomService(
        client=tencent,
        policy=policy,
        groups=group_directory(slack),
        audit=audit,
        max_rooms=settings.roombot_max_rooms,
        max_timebox=settings.roombot_max_timebox,
        confirm_above=settings.roombot_confirm_above,
        allow_unaudited=settings.roombot_allow_unaudited,
        timeline_max_s=settings.roombot_timeline_max,
    )
    signing_secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    )
    bolt_logger = logging.getLogger("slack_bolt.AsyncApp")
    if _no_token_warning not in bolt_logger.filters:
        bolt_logger.addFilter(_no_token_warning)
    app = AsyncApp(
        client=slack,
        signing_secret=signing_secret,
        request_verification_enabled=bool(signing_secret),
    )
    runtime = SlackRuntime()
    presenter = Presenter(service, SlackRenderer())
    register_all(app, presenter, runtime)
    assert service.book is not None  # there is an audit store
    deliveries = slack_deliveries(Deliveries(), slack, runtime, restarted=audit.backend == "sqlite")
    approvals = service.approvals
    assert approvals is not None  # there is an audit store
    approvals.deliveries = deliveries
    approvals_slack.register_notices(approvals, slack)
    loop = RequestLoop(
        audit, tencent, deliveries, service.book, due=service.due, on_expired=approvals.expired
    )
    return Bot(
        app=app,
        presenter=presenter,
        tencent=tencent,
        slack=slack,
        settings=settings,
        audit=audit,
        runtime=runtime,
        callbacks=build_receiver(settings, audit, slack, limits=budget),
        loop=loop,
        pruner=(
            AuditPruner(audit, settings.roombot_audit_retention)
            if settings.roombot_audit_retention is not None
            else None
        ),
    )


def register_all(app: AsyncApp, presenter: Presenter[Message], runtime: SlackRuntime) -> None:
    """Install the middleware and every listener on `app`."""
    app.use(attach_actor)
    commands.register(app, presenter, runtime)
    mentions.register(app, presenter, runtime)
    actions.register(app, presenter.service, runtime)
    timer_actions.register(app, presenter.service, runtime)
    approvals_slack.register(
        app, presenter.service.approvals, runtime, partial(home.publish_home, presenter.service)
    )
    modal.register(app, presenter, runtime)
    cards.register(app, presenter, runtime)
    home.register(app, presenter, runtime)
    alerts.register(app, presenter, runtime)
    backstop.register(app)
