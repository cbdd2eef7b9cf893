"""The async Room Engine REST client: signed requests, parsed answers, retries, a rate budget.

One `RoomEngineClient` (one pooled `httpx.AsyncClient`) per process is the intended use; every
attempt runs inside a slot of its rate budget (a `CallBudget`: the process's, or the one all
replicas share on PostgreSQL). Failures are raised as the typed errors of `bot.tencent.errors`
(and `RateBudgetUnavailable` when the budget grants nothing); a UserSig or secret key never
appears in a message, a log line or a repr.

The client is put together from one module per API family on one transport
(`bot.tencent.transport`: signing, budget, retries, parsing): rooms (`client_rooms`), members
(`client_members`), seats (`client_seats`) and the callback configuration (`client_callbacks`).

Which calls are retried after a failure whose effect is unknown (a timeout, HTTP 5xx, 100001):

* reads (`get_*`) and calls that set values (`update_room_info`, `update_callback`,
  `lock_seat`): repeating them leaves the same state and gets the same answer, so every
  transient failure is retried;
* `create_room`, `destroy_room`, `kick_user_out`, `ban_room_member`, `unban_room_member`,
  `set_callback`, `delete_callback`, `kick_user_off_seat`, `pick_user_on_seat`: the state they
  leave is the same when repeated, but the answer is not. If the first attempt worked unseen, the
  repeat answers an error (the room exists (100003) or is gone (100004), the account is no longer
  a member or no longer banned (100005), the configuration exists (100300) or is gone (100301),
  the account is no longer on a seat (100206) or already on one (100203)) and a success would be
  reported as a failure. They are retried only when the request certainly had no effect: refused
  by a frequency limit (60007, 60011, 60018, 60019) or never sent (the connection was not made).
  Otherwise the caller gets the error and should look at the room before trying again.
"""

from __future__ import annotations

from bot.tencent.client_callbacks import NO_CALLBACK_CONFIG, CallbackCalls
from bot.tencent.client_members import MemberCalls
from bot.tencent.client_rooms import CONFERENCE, RoomCalls
from bot.tencent.client_seats import SeatCalls
from bot.tencent.transport import Abort, ApiResult, RetryPolicy

__all__ = [
    "CONFERENCE",
    "NO_CALLBACK_CONFIG",
    "Abort",
    "ApiResult",
    "RetryPolicy",
    "RoomEngineClient",
]


class RoomEngineClient(RoomCalls, MemberCalls, SeatCalls, CallbackCalls):
    """Calls the Room Engine REST API as the App administrator `admin_id`.

    It signs (and re-signs) the admin UserSig from `secret_key` itself, waits on `rate_budget`
    before every attempt, retries what is worth retrying under `retry`, and raises
    `RoomEngineError` subclasses. Use it as an async context manager, or call `aclose()`.
    Its constructor and `from_settings` are the transport's (`RoomEngineTransport`).
    """
