"""`timeline` (DESIGN §2.14): the window and its refusals, ordering and grouping on both
backends, outside changes, member traffic summed, kinds of request the timeline does not know
(approvals, reverts...) shown generically, and the story a postmortem needs, end to end through
the service, the callbacks processor and the console's renderer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.audit import NewEntry, Outcome, RequestState, open_store
from bot.audit.sql import Body, Query
from bot.callbacks import CallbackProcessor
from bot.commands import InvalidValue, ParseError, parse_command
from bot.commands.window import resolve_window
from bot.console.text import TextRenderer
from bot.outcomes import Approved, Plan
from bot.presenter import Answer, Presenter
from bot.timeline import Window, build_timeline
from tests.bot.conftest import CoreFactory
from tests.bot.corekit import ADMIN, ALICE, Core, actor, plan_for
from tests.bot.requestkit import new_request
from tests.bot.test_callbacks_processor import outside

T0 = 1_765_000_000.0  # 2025-12-06T05:46:40Z
DAY = 86_400.0
WEEK = 7 * DAY

# -- the window -------------------------------------------------------------------------------


def _window(text: str, *, now: float = T0, max_s: float = WEEK) -> tuple[float, float]:
    command = parse_command(text)
    assert command.window is not None
    return resolve_window(command.window, now=now, max_s=max_s)


def test_the_window_forms() -> None:
    assert _window("timeline") == (T0 - 3600, T0)  # the last hour by default
    assert _window("timeline --since 2h") == (T0 - 7200, T0)
    assert _window("timeline --since=1d") == (T0 - DAY, T0)
    assert _window("timeline --since 1h30m") == (T0 - 5400, T0)
    # HH:MM is today in UTC.
    assert _window("timeline --from 05:00") == (1_764_997_200.0, T0)
    assert _window("timeline --from 2025-12-06T01:00Z --to 2025-12-06T03:00Z") == (
        1_764_982_800.0,
        1_764_990_000.0,
    )
    assert _window("timeline --from 2025-12-06T01:00+01:00 --to 02:00") == (
        1_764_979_200.0,
        1_764_986_400.0,
    )
    # --to alone: the hour before it.
    assert _window("timeline --to 05:00") == (1_764_993_600.0, 1_764_997_200.0)
    command = parse_command("timeline room-1 room-2 --since 2h")
    assert command.rooms == ("room-1", "room-2")
    assert parse_command(command.canonical_text()) == command


def test_a_window_wider_than_the_most_is_refused_with_one_line() -> None:
    with pytest.raises(InvalidValue) as refused:
        _window("timeline --since 8d")
    assert str(refused.value) == (
        "the window from 2025-11-28 05:46:40Z to 2025-12-06 05:46:40Z is 8d long; the most is "
        "7d (ROOMBOT_TIMELINE_MAX): narrow it with --since, or --from and --to"
    )
    assert _window("timeline --since 7d") == (T0 - WEEK, T0)
    with pytest.raises(InvalidValue, match="the most is 1d"):
        _window("timeline --since 25h", max_s=DAY)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timeline --from 05:00 --to 04:00", "it must start before it ends"),
        ("timeline --from 2099-01-01", "it must start before it ends"),
        ("timeline --from 2099-01-01 --to 2099-01-02", "in the future"),
    ],
)
def test_a_window_that_makes_no_sense_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        _window(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timeline --since yesterday", "`--since` takes a time like `2h`, `1d`, `14:05`"),
        ("timeline --since", "`--since` needs a time"),
        ("timeline --since 2h --from 05:00", "either `--since` or `--from`/`--to`"),
        ("timeline --to 05:00 --since 2h", "either `--since` or `--from`/`--to`"),
        ("timeline --since 2h --since 3h", "given twice"),
        ("timeline --from 25:00", "`--from` takes a time"),
        ("timeline --dry-run", "does not apply to `timeline`"),
        ("history room-1 --since 2h", "`--since` does not apply to `history`"),
        ("timeline <#C123|general>", "looks like a Slack mention"),
    ],
)
def test_bad_window_words_are_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)) as refused:
        parse_command(text)
    verb = text.split()[0]
    usage = (
        "/room history ROOM"
        if verb == "history"
        else "/room timeline [ROOM...] [--since 2h | --from T --to T]"
    )
    assert refused.value.usage == usage


# -- grouping and ordering, on both backends ----------------------------------------------------


def _row(key: str, room: str | None, **fields: object) -> NewEntry:
    values: dict[str, object] = {
        "request_key": key,
        "source": "slash",
        "user_id": "U0ALICE01",
        "verb": "mute-all",
        "raw_text": f"mute-all {room}",
        "room_id": room,
        "reason": "incident 42",
        "outcome": Outcome.OK,
    }
    values.update(fields)
    return NewEntry(**values)  # type: ignore[arg-type]


async def test_grouped_by_request_in_time_order(target: str | Path) -> None:
    now = [T0]
    async with await open_store(target, clock=lambda: now[0]) as store:
        # A 200-room request: one entry, its 3 failures listed with their RequestIds.
        ids = await store.begin(
            [_row("k-big", f"room-{i:03}", outcome=Outcome.PENDING) for i in range(200)]
        )
        failed = {"outcome": Outcome.FAILED, "error_code": 100004, "error_info": "no room"}
        await store.complete_many(
            [
                (
                    row_id,
                    {
                        "outcome": Outcome.OK,
                        "tencent_request_id": f"Id-{i:03}",
                        **(failed if i in (7, 70, 170) else {}),
                    },
                )
                for i, row_id in enumerate(ids)
            ]
        )
        now[0] += 60
        await store.record(
            [
                _row(
                    "k-out",
                    "room-007",
                    source="tencent",
                    user_id="ops-console",
                    verb="outside-update",
                    raw_text="Room.CallbackAfterUpdateRoomInfo (OptPlatform Web)",
                    reason=None,
                    patch={"IsAudioDisabled": False},
                    previous={"IsAudioDisabled": True},
                )
            ]
        )
        now[0] += 60
        for i in range(30):  # member traffic: summed, never listed
            await store.record(
                [
                    _row(
                        "t",
                        "room-001",
                        verb="member-enter" if i % 3 else "member-leave",
                        user_id=f"user_{i}",
                        source="tencent",
                    )
                ]
            )
        first, *_ = await store.rows_for_request("k-big")
        now[0] += 60
        await store.record(
            [
                _row(
                    "k-undo",
                    "room-000",
                    verb="undo",
                    undo_of=first.id,
                    source="button",
                    reason="undo of mute-all run by U0ALICE01",
                )
            ]
        )
        now[0] += 3600  # outside the window
        await store.record([_row("k-late", "room-000")])
        timeline = await build_timeline(store, Window(T0, T0 + 3600))
        assert [e.request_key for e in timeline.entries] == ["k-big", "k-out", "k-undo"]
        big, out, undo = timeline.entries
        assert len(big.rooms) == 200
        assert big.outcomes == {"ok": 197, "failed": 3}
        assert [(f.room_id, f.code, f.request_id) for f in big.failures] == [
            ("room-007", 100004, "Id-007"),
            ("room-070", 100004, "Id-070"),
            ("room-170", 100004, "Id-170"),
        ]
        assert out.outside
        assert out.who == "ops-console"
        assert undo.undo_of == [first.id]
        assert {k: dict(v) for k, v in timeline.traffic.items()} == {
            ("room-001", T0 + 120 - (T0 + 120) % 3600): {"member-enter": 20, "member-leave": 10}
        }
        text = timeline.markdown()
        lines = text.splitlines()
        big_line = next(x for x in lines if x.startswith("- **") and "mute-all 200 rooms" in x)
        assert "(room-000, room-001" in big_line
        assert "and 190 more)" in big_line
        assert "reason: incident 42" in big_line
        assert "197 ok, 3 failed, RequestIds Id-000 … Id-199 (200)" in big_line
        assert "  - failed 100004 in room-007: no room (RequestId Id-007)" in lines
        assert any(
            "outside roombot: ops-console via Web outside-update room-007: "
            "IsAudioDisabled true → false" in line
            for line in lines
        )
        assert "user_" not in text  # traffic is never listed
        assert "| room-001 | 20 member-enter, 10 member-leave |" in text
        events = [x for x in lines if x.startswith("- **")]
        assert len(events) == 3
        assert "mute-all 200 rooms" in events[0]
        assert "outside roombot" in events[1]
        assert "undoing row(s)" in events[2]
        # Rooms narrow it: rows of other rooms are left out, requests that touched one stay.
        narrow = await build_timeline(store, Window(T0, T0 + 3600, ("room-000",)))
        assert [e.request_key for e in narrow.entries] == ["k-big", "k-undo"]
        assert narrow.entries[0].rooms == ["room-000"]


async def test_kinds_and_states_it_does_not_know_are_shown_as_they_are(
    target: str | Path,
) -> None:
    """Approvals, time-boxed reverts and whatever comes next are requests of their own kind:
    the timeline shows any kind and any waiting state without knowing them."""
    now = [T0]
    async with await open_store(target, clock=lambda: now[0]) as store:
        await store.record_request(
            new_request(
                "k-wait",
                kind="approval",
                plan={"command": {"rooms": ["room-1"]}},
                waiting=RequestState.AWAITING_APPROVAL,
            )
        )
        now[0] += 10
        await store.record_request(
            new_request(
                "k-revert",
                kind="revert",
                verb="unmute-all",
                plan={"command": {"rooms": ["room-2"]}},
                run_after=T0 + 7200,
            )
        )

        def taken_over() -> Body[None]:  # as a survivor's takeover leaves the record
            yield Query("UPDATE requests SET takeovers = 2 WHERE request_key = 'k-wait'")

        await store.dialect.write("take over", taken_over)
        timeline = await build_timeline(store, Window(T0 - 60, T0 + 60))
        assert [(e.request_key, e.kind, e.state) for e in timeline.entries] == [
            ("k-wait", "approval", "awaiting_approval"),
            ("k-revert", "revert", "scheduled"),
        ]
        text = timeline.markdown()
        assert (
            "U111 (slash) [approval] mute-all room-1, taken over 2 time(s) after its replica "
            "stopped — reason: incident 42 — awaiting approval (request k-wait)"
        ) in text
        assert "[revert] unmute-all room-2" in text
        assert "scheduled for 2025-12-06 07:46:40Z" in text
        only = await build_timeline(store, Window(T0 - 60, T0 + 60, ("room-2",)))
        assert [e.request_key for e in only.entries] == ["k-revert"]


async def test_an_empty_window_says_so(target: str | Path) -> None:
    async with await open_store(target, clock=lambda: T0) as store:
        timeline = await build_timeline(store, Window(T0 - 3600, T0, ("room-1",)))
    assert timeline.entries == []
    assert timeline.summary_lines() == [
        "Nothing happened in room-1 from 2025-12-06 04:46:40Z to 2025-12-06 05:46:40Z."
    ]


# -- the story, through the service --------------------------------------------------------------


async def _run(core: Core, text: str) -> str:
    prepared = await core.service.prepare(text, actor())
    assert isinstance(prepared, Approved)
    return (await core.service.execute(prepared)).request_key


async def _timeline(core: Core, text: str) -> Answer[str]:
    presenter = Presenter(core.service, TextRenderer())
    reply = await presenter.answer(text, actor())
    assert isinstance(reply, Approved)
    return await presenter.read(reply)


async def test_the_story_of_an_incident_in_order(core: Core) -> None:
    """Mute three rooms, undo one, a room changed from outside: `timeline --since 1h` tells
    exactly that, in order, with the RequestIds."""
    keys = []
    for room in ("room-test", "room-2", "room-3"):
        core.clock.advance(30)
        keys.append(await _run(core, f"mute-all {room} --reason spam wave"))
    core.clock.advance(30)
    undo = await core.service.plan_undo(keys[1], actor())
    assert isinstance(undo, Plan)
    run = await core.service.run(undo)
    assert all(r.ok for r in run.results)
    core.clock.advance(30)
    handled = await CallbackProcessor(core.store, admin_id=ADMIN, clock=core.clock).handle(
        outside(core, "room-3", IsAudioDisabled=False)
    )
    assert handled.handling.value == "outside"
    core.clock.advance(30)
    answer = await _timeline(core, "timeline --since 1h")
    assert answer.ok
    text = answer.message
    events = [line for line in text.splitlines() if line.startswith("- **")]
    rows = {r.request_key: r for r in await core.rows()}
    expected = [
        f"{ALICE} (slash) mute-all room-test — reason: spam wave — 1 ok, RequestId "
        f"{rows[keys[0]].tencent_request_id}",
        f"{ALICE} (slash) mute-all room-2 — reason: spam wave — 1 ok, RequestId "
        f"{rows[keys[1]].tencent_request_id}",
        f"{ALICE} (slash) mute-all room-3 — reason: spam wave — 1 ok, RequestId "
        f"{rows[keys[2]].tencent_request_id}",
        f"{ALICE} (slash) undo room-2, undoing row(s) #{rows[keys[1]].id} — reason: "
        f"undo of mute-all run by {ALICE} — 1 ok, RequestId "
        f"{rows[undo.request_key].tencent_request_id}",
        "outside roombot: ops-console via Web outside-update room-3: IsAudioDisabled true → false"
        " — 1 ok",
    ]
    assert [re.sub(r"^- \*\*[0-9:]+Z\*\* ", "", line) for line in events] == expected
    assert "4 roombot request(s) (0 with failures), 1 change(s) made outside roombot" in text
    assert f"Who acted: {ALICE}, ops-console" in text
    # Another window: nothing.
    empty = await _timeline(core, "timeline --from 2000-01-01T00:00Z --to 2000-01-01T01:00Z")
    assert "Nothing happened in every room" in empty.message


async def test_a_refused_window_is_one_line(make_core: CoreFactory) -> None:
    """Refused at once (in Slack: in the ack), in one line and the usage, and audited."""
    core = await make_core()
    answer = await Presenter(core.service, TextRenderer()).answer("timeline --since 30d", actor())
    assert isinstance(answer, Answer)
    assert not answer.ok
    line, usage = answer.message.splitlines()
    assert line.startswith("❌ the window from ")
    assert "the most is 7d (ROOMBOT_TIMELINE_MAX)" in line
    assert usage == "Usage: /room timeline [ROOM...] [--since 2h | --from T --to T]"
    [row] = await core.store.query(limit=5)
    assert (row.outcome, row.raw_text) == (Outcome.INVALID, "timeline --since 30d")


async def test_a_request_for_many_rooms_is_one_entry_with_its_failures(
    make_core: CoreFactory,
) -> None:
    rooms = [f"r-{i:03}" for i in range(200)]
    core = await make_core(rooms=rooms[3:], max_rooms=500)
    run = await core.service.run(plan_for("mute-all " + " ".join(rooms)))
    assert sum(not r.ok for r in run.results) == 3
    core.clock.advance(1)
    answer = await _timeline(core, "timeline")
    events = [line for line in answer.message.splitlines() if line.startswith("- **")]
    assert len(events) == 1
    assert "mute-all 200 rooms (r-000, r-001" in events[0]
    assert "197 ok, 3 failed" in events[0]
    failures = [line for line in answer.message.splitlines() if line.startswith("  - failed")]
    assert [line.split(" in ")[1].split(":")[0] for line in failures] == ["r-000", "r-001", "r-002"]
    assert all("100004" in line and "(RequestId Id-" in line for line in failures)


async def test_a_decision_on_the_record_is_shown(target: str | Path) -> None:
    """Two-person approval keeps its decision on the request record (`decision`, `decided_by`,
    `decided_at`): the timeline shows it. (`tests/bot/test_approvals.py` has the timeline of a
    real denial.)"""
    from dataclasses import replace

    from bot.timeline import Entry, _apply_record, entry_lines

    async with await open_store(target, clock=lambda: T0) as store:
        await store.record_request(new_request("k-ask", waiting=RequestState.AWAITING_APPROVAL))
        record = await store.get_request("k-ask")
    assert record is not None
    decided = replace(
        record,
        state=RequestState.DENIED,
        decision="denied",
        decided_by="U0BOB0001",
        decided_at=T0 + 60,
    )
    entry = Entry(
        at=T0,
        request_key="k-ask",
        who="U111",
        source="slash",
        kind="request",
        verb="mute-all",
        raw_text="mute-all room-1",
        reason=None,
    )
    _apply_record(entry, decided)
    [line] = entry_lines(entry)
    assert line.endswith("— denied by U0BOB0001 at 05:47:40Z; denied (request k-ask)")
    plain = Entry(
        at=T0,
        request_key="k-ask",
        who="U111",
        source="slash",
        kind="request",
        verb="mute-all",
        raw_text="mute-all room-1",
        reason=None,
    )
    _apply_record(plain, record)
    assert plain.decision is None
    assert entry_lines(plain)[0].endswith("— awaiting approval (request k-ask)")
