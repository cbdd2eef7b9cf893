"""How outcomes are said, in any medium: one vocabulary, formatted by each adapter's `Style`.

Slack and the terminal say the same things ("audio muted", "✅ done: 2/2 rooms changed",
"error 100004: … — check the ID"); they differ only in how a literal (a room ID, a RequestId, a
value) is shown, how free text is made safe, how a user is named and how a title stands out. A
`Style` holds those four choices; every function here takes one. The Slack adapter's style makes
mrkdwn (code spans, escaping, `<@U…>` mentions, `*bold*`); the console's makes plain text.

Core messages (`Rejected.message`, `Failure.hint`, help) mark literals with backticks, the one
markup they use; `Style.prose` turns such a sentence into the medium's form.

The vocabulary is split by job, and everything is importable from here (`from bot import
wording`; `wording.final_status(...)`):

* `style`: `Style`, the marks (✅ ❌ ⏳ ⚠️) and `CORE`, the core's own style;
* `changes`: settings and changes in words ("audio muted", "`bob` banned for 2h");
* `results`: a request and its outcome: its head, status lines, each target's line, notes,
  failures and policy refusals;
* `views`: what reads show: a room, its history, outside changes, members and bans;
* `alerts`: seat changes made outside roombot, and Tencent's rate warnings;
* `takeover`: a request whose replica stopped, as a survivor reports it.
"""

from __future__ import annotations

from bot.wording.alerts import rate_warning_line, seat_event_phrase, seat_events_phrase
from bot.wording.changes import (
    PAST_TENSE,
    SEAT_MODES,
    TOGGLES,
    command_change,
    describe_change,
    describe_changes,
    describe_effect,
    describe_outside,
    describe_setting,
    describe_target,
    rooms_phrase,
)
from bot.wording.results import (
    audit_failed_note,
    denial_sentence,
    failure_phrase,
    final_status,
    not_attempted_line,
    not_undoable_note,
    outcome_lines,
    progress_status,
    read_before_note,
    read_failure_line,
    request_head,
    request_id_phrase,
    restates,
    room_line,
)
from bot.wording.style import (
    CORE,
    FAIL_MARK,
    OK_MARK,
    OUTSIDE_MARK,
    WARN_MARK,
    WORKING_MARK,
    Style,
)
from bot.wording.takeover import (
    TAKEOVER_RETRY,
    takeover_counts,
    takeover_noun,
    takeover_retry_count,
    takeover_status,
    takeover_summary,
    verdict_line,
)
from bot.wording.views import (
    LISTING_LINES,
    banned_lines,
    history_head,
    history_line,
    members_lines,
    outside_change_line,
    outside_summary,
    room_view_lines,
)

__all__ = [
    "CORE",
    "FAIL_MARK",
    "LISTING_LINES",
    "OK_MARK",
    "OUTSIDE_MARK",
    "PAST_TENSE",
    "SEAT_MODES",
    "TAKEOVER_RETRY",
    "TOGGLES",
    "WARN_MARK",
    "WORKING_MARK",
    "Style",
    "audit_failed_note",
    "banned_lines",
    "command_change",
    "denial_sentence",
    "describe_change",
    "describe_changes",
    "describe_effect",
    "describe_outside",
    "describe_setting",
    "describe_target",
    "failure_phrase",
    "final_status",
    "history_head",
    "history_line",
    "members_lines",
    "not_attempted_line",
    "not_undoable_note",
    "outcome_lines",
    "outside_change_line",
    "outside_summary",
    "progress_status",
    "rate_warning_line",
    "read_before_note",
    "read_failure_line",
    "request_head",
    "request_id_phrase",
    "restates",
    "room_line",
    "room_view_lines",
    "rooms_phrase",
    "seat_event_phrase",
    "seat_events_phrase",
    "takeover_counts",
    "takeover_noun",
    "takeover_retry_count",
    "takeover_status",
    "takeover_summary",
    "verdict_line",
]
