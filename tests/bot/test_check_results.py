"""`bot.check`'s core pieces one at a time: what each outcome becomes, the report's shape,
secrets."""

from __future__ import annotations

import pytest

from bot.check import (
    CheckResult,
    Status,
    exit_code,
    load_settings_leniently,
    render,
    scrub,
    summary,
    tencent_result,
)
from bot.config import Settings
from bot.regions import Region
from bot.tencent.errors import ApiError, MalformedResponse, TransportError

BASE = "https://adminapisgp.im.qcloud.com"


# -- Tencent outcomes ---------------------------------------------------------------------------


def _tencent(outcome: ApiError | TransportError | MalformedResponse | None) -> CheckResult:
    return tencent_result(outcome, base_url=BASE, sdkappid=1400000000, admin_id="administrator")


def test_room_not_found_means_the_credentials_work() -> None:
    ok = _tencent(ApiError(100004, "room does not exist"))
    assert ok.status is Status.OK
    assert f"{BASE} accepted SDKAppID 1400000000 and the UserSig for administrator" in ok.detail
    assert _tencent(None).status is Status.OK


@pytest.mark.parametrize(
    ("code", "verb", "hint"),
    [
        (70009, "refused the credentials", "check TENCENT_SECRET_KEY"),
        (70001, "refused the credentials", "check the server clock"),
        (70020, "refused the credentials", "check TENCENT_SDKAPPID and TENCENT_REGION"),
        (70107, "refused the credentials", "check TENCENT_ADMIN_ID"),
        (70999, "refused the credentials", "check TENCENT_* settings"),
        (60010, "answered", "TENCENT_ADMIN_ID must be one"),
        (100001, "answered", "safe to try again"),
    ],
)
def test_error_codes_come_with_their_hint(code: int, verb: str, hint: str) -> None:
    result = _tencent(ApiError(code, "some info"))
    assert result.is_problem
    assert result.detail == f"{BASE} {verb}: error {code} (some info)"
    assert result.fix is not None
    assert hint in result.fix


def test_transport_failures() -> None:
    down = _tencent(TransportError("get_room_info: ConnectError: All connection attempts failed"))
    assert down.detail == f"cannot reach {BASE} (ConnectError: All connection attempts failed)"
    assert down.fix == "check TENCENT_REGION / TENCENT_API_URL and outbound HTTPS"
    not_found = _tencent(TransportError("get_room_info: HTTP 404 Not Found", status=404))
    assert not_found.detail == f"{BASE} answered HTTP 404"
    assert not_found.fix == "Tencent answered HTTP 404 — check TENCENT_API_URL"
    odd = _tencent(MalformedResponse("get_room_info: the answer is not a JSON object"))
    assert odd.is_problem
    assert "TENCENT_API_URL" in (odd.fix or "")


def test_long_error_info_is_shortened_to_one_line() -> None:
    result = _tencent(ApiError(70003, "line one\nline two " + "x" * 500))
    assert "\n" not in result.detail
    assert len(result.detail) < 260


# -- settings -----------------------------------------------------------------------------------


def test_lenient_settings_default_each_bad_variable_and_say_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TENCENT_REGION", "atlantis")
    monkeypatch.setenv("ROOMBOT_RATE_LIMIT", "9000")
    monkeypatch.setenv("TENCENT_ADMIN_ID", "ops-admin")
    loaded = load_settings_leniently()
    assert set(loaded.invalid) == {"TENCENT_REGION", "ROOMBOT_RATE_LIMIT"}
    assert loaded.invalid["TENCENT_REGION"].startswith("TENCENT_REGION: unknown region 'atlantis'")
    assert loaded.invalid["ROOMBOT_RATE_LIMIT"] == "ROOMBOT_RATE_LIMIT: must be between 1 and 200"
    assert isinstance(loaded.settings, Settings)
    assert loaded.settings.tencent_region is Region.SINGAPORE
    assert loaded.settings.tencent_admin_id == "ops-admin"  # the good ones are kept


def test_lenient_settings_when_all_is_well(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENCENT_REGION", "germany")
    loaded = load_settings_leniently()
    assert loaded.invalid == {}
    assert loaded.settings is not None
    assert loaded.settings.tencent_region is Region.GERMANY


def test_a_bad_secret_is_not_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN", "xoxb-this-is-a-bot-token-in-the-wrong-place")
    loaded = load_settings_leniently()
    assert "this-is-a-bot-token" not in loaded.invalid["SLACK_APP_TOKEN"]


# -- the report ---------------------------------------------------------------------------------


RESULTS = [
    CheckResult("settings", Status.OK, "every variable parses"),
    CheckResult("slack scopes", Status.FAIL, "missing scope usergroups:read", "add it"),
    CheckResult("policy", Status.WARN, "nobody may", "set ROOMBOT_ALLOWED_USERS"),
    CheckResult("tencent", Status.OK, "fine", notes=("note one", "note two")),
]


def test_render_one_line_per_check_with_fixes_and_notes_indented() -> None:
    assert render(RESULTS).splitlines() == [
        "✓ settings      every variable parses",
        "✗ slack scopes  missing scope usergroups:read",
        "    → add it",
        "! policy        nobody may",
        "    → set ROOMBOT_ALLOWED_USERS",
        "✓ tencent       fine",
        "    note one",
        "    note two",
        "1 problem (1 warning)",
    ]


@pytest.mark.parametrize(
    ("statuses", "text", "code"),
    [
        ([Status.OK, Status.OK], "all good", 0),
        ([Status.OK, Status.WARN], "all good (1 warning)", 0),
        ([Status.WARN, Status.WARN], "all good (2 warnings)", 0),
        ([Status.FAIL, Status.OK], "1 problem", 1),
        ([Status.FAIL, Status.FAIL, Status.WARN], "2 problems (1 warning)", 1),
    ],
)
def test_summary_and_exit_code(statuses: list[Status], text: str, code: int) -> None:
    results = [CheckResult("x", status, "d") for status in statuses]
    assert summary(results) == text
    assert exit_code(results) == code


def test_scrub_removes_secrets_and_usersigs_everywhere() -> None:
    leaky = CheckResult(
        "x",
        Status.FAIL,
        "https://h/v4?usersig=eJyrVkos&sdkappid=1 with xoxb-secret-1",
        "use xoxb-secret-1 elsewhere",
        notes=("key k3y-s3cr3t",),
    )
    clean = scrub(leaky, ["xoxb-secret-1", "k3y-s3cr3t"])
    text = render([clean])
    assert "eJyrVkos" not in text
    assert "xoxb-secret-1" not in text
    assert "k3y-s3cr3t" not in text
    assert "usersig=***" in text
