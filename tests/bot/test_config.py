"""Settings: every variable parsed, every validation message, .env loading, secrets hidden."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings
from bot.regions import Region

SECRET_VALUES = {
    "SLACK_BOT_TOKEN": "xoxb-111-222-supersecretbot",
    "SLACK_SIGNING_SECRET": "signing-supersecret-0123",
    "SLACK_APP_TOKEN": "xapp-1-A111-supersecretapp",
    "TENCENT_SECRET_KEY": "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e",
    "ROOMBOT_CALLBACK_TOKEN": "cb-token.Supersecret_0123~",
}

FULL_ENV = {
    **SECRET_VALUES,
    "SLACK_API_URL": "http://127.0.0.1:8080/api/",
    "TENCENT_SDKAPPID": "1400000000",
    "TENCENT_ADMIN_ID": "ops_admin",
    "TENCENT_REGION": "Germany",
    "TENCENT_API_URL": "http://127.0.0.1:9000/",
    "ROOMBOT_ALLOWED_USERS": "U012ABCDEF, W0AB12CD34 ,U012ABCDEF",
    "ROOMBOT_POLICY_FILE": "policy.toml",
    "ROOMBOT_AUDIT_DB": "/var/lib/roombot/audit.sqlite3",
    "ROOMBOT_RATE_LIMIT": "120",
    "ROOMBOT_CONFIRM_ABOVE": "0",
    "ROOMBOT_MAX_ROOMS": "800",
    "ROOMBOT_ALERT_CHANNEL": " C0ALERTS1 ",
}


def test_defaults_with_nothing_set() -> None:
    s = load_settings(env_file=None)
    assert s.slack_bot_token is None
    assert s.slack_api_url == "https://slack.com/api/"
    assert s.tencent_sdkappid is None
    assert s.tencent_admin_id == "administrator"
    assert s.tencent_region is Region.SINGAPORE
    assert s.tencent_base_url == "https://adminapisgp.im.qcloud.com"
    assert s.tencent_configured is False
    assert s.roombot_allowed_users == ()
    assert s.roombot_policy_file is None
    assert s.roombot_audit_db == Path("roombot-audit.sqlite3")
    assert s.roombot_rate_limit == 50
    assert s.roombot_confirm_above == 5
    assert s.roombot_max_rooms == 500
    assert s.roombot_callback_token is None
    assert s.roombot_alert_channel is None


def test_every_variable_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FULL_ENV.items():
        monkeypatch.setenv(name, value)
    s = load_settings(env_file=None)
    assert s.slack_bot_token is not None
    assert s.slack_bot_token.get_secret_value() == SECRET_VALUES["SLACK_BOT_TOKEN"]
    assert s.slack_signing_secret is not None
    assert s.slack_signing_secret.get_secret_value() == SECRET_VALUES["SLACK_SIGNING_SECRET"]
    assert s.slack_app_token is not None
    assert s.slack_app_token.get_secret_value() == SECRET_VALUES["SLACK_APP_TOKEN"]
    assert s.slack_api_url == "http://127.0.0.1:8080/api/"
    assert s.tencent_sdkappid == 1400000000
    assert s.tencent_secret_key is not None
    assert s.tencent_secret_key.get_secret_value() == SECRET_VALUES["TENCENT_SECRET_KEY"]
    assert s.tencent_admin_id == "ops_admin"
    assert s.tencent_region is Region.GERMANY
    assert s.tencent_api_url == "http://127.0.0.1:9000/"
    assert s.tencent_base_url == "http://127.0.0.1:9000"  # the override wins over the region
    assert s.tencent_configured is True
    assert s.roombot_allowed_users == ("U012ABCDEF", "W0AB12CD34")  # trimmed, de-duplicated
    assert s.roombot_policy_file == Path("policy.toml")
    assert s.roombot_audit_db == Path("/var/lib/roombot/audit.sqlite3")
    assert s.roombot_rate_limit == 120
    assert s.roombot_confirm_above == 0
    assert s.roombot_max_rooms == 800
    assert s.roombot_callback_token is not None
    assert s.roombot_callback_token.get_secret_value() == SECRET_VALUES["ROOMBOT_CALLBACK_TOKEN"]
    assert s.roombot_alert_channel == "C0ALERTS1"


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("singapore", "adminapisgp.im.qcloud.com"),
        ("china", "console.tim.qq.com"),
        ("korea", "adminapikr.im.qcloud.com"),
        ("germany", "adminapiger.im.qcloud.com"),
        ("india", "adminapiind.im.qcloud.com"),
        ("usa", "adminapiusa.im.qcloud.com"),
        ("indonesia", "adminapiidn.im.qcloud.com"),
    ],
)
def test_region_selects_host(monkeypatch: pytest.MonkeyPatch, region: str, host: str) -> None:
    monkeypatch.setenv("TENCENT_REGION", region.upper())
    assert load_settings(env_file=None).tencent_base_url == f"https://{host}"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("TENCENT_SDKAPPID", "abc", "TENCENT_SDKAPPID: must be a positive integer, got 'abc'"),
        ("TENCENT_SDKAPPID", "-5", "TENCENT_SDKAPPID: must be a positive integer, got '-5'"),
        ("TENCENT_SDKAPPID", "0", "TENCENT_SDKAPPID: must be greater than 0"),
        (
            "TENCENT_REGION",
            "mars",
            "TENCENT_REGION: unknown region 'mars' (valid: singapore, china, korea, germany, "
            "india, usa, indonesia)",
        ),
        ("ROOMBOT_RATE_LIMIT", "0", "ROOMBOT_RATE_LIMIT: must be between 1 and 200"),
        ("ROOMBOT_RATE_LIMIT", "201", "ROOMBOT_RATE_LIMIT: must be between 1 and 200"),
        ("ROOMBOT_RATE_LIMIT", "fast", "ROOMBOT_RATE_LIMIT: must be an integer"),
        ("ROOMBOT_CONFIRM_ABOVE", "-1", "ROOMBOT_CONFIRM_ABOVE: must be at least 0"),
        ("ROOMBOT_MAX_ROOMS", "0", "ROOMBOT_MAX_ROOMS: must be between 1 and 10000"),
        (
            "ROOMBOT_ALLOWED_USERS",
            "U012ABCDEF,alice",
            "ROOMBOT_ALLOWED_USERS: malformed Slack user ID 'alice' (expected IDs like "
            "U012ABCDEF, comma-separated; display names are not accepted)",
        ),
        (
            "ROOMBOT_ALLOWED_USERS",
            "u012abcdef",
            "ROOMBOT_ALLOWED_USERS: malformed Slack user ID 'u012abcdef' (expected IDs like "
            "U012ABCDEF, comma-separated; display names are not accepted)",
        ),
        ("TENCENT_API_URL", "ftp://x", "TENCENT_API_URL: must be an http(s) URL, got 'ftp://x'"),
        ("SLACK_API_URL", "not a url", "SLACK_API_URL: must be an http(s) URL, got 'not a url'"),
        (
            "TENCENT_ADMIN_ID",
            "two words",
            "TENCENT_ADMIN_ID: must be an account ID of 1-32 bytes without spaces",
        ),
        (
            "SLACK_BOT_TOKEN",
            "xoxp-user",
            "SLACK_BOT_TOKEN: must be a bot token starting with 'xoxb-'",
        ),
        (
            "SLACK_APP_TOKEN",
            "xoxb-nope",
            "SLACK_APP_TOKEN: must be an app-level token starting with 'xapp-'",
        ),
        (
            "ROOMBOT_ALERT_CHANNEL",
            "#incidents",
            "ROOMBOT_ALERT_CHANNEL: malformed channel ID '#incidents' (expected an ID like "
            "C012ABCDEF: channel details → About; a #name is not accepted)",
        ),
        (
            "ROOMBOT_CALLBACK_TOKEN",
            "short",
            "ROOMBOT_CALLBACK_TOKEN: must be 16-200 characters of letters, digits and . _ ~ - "
            "(it is put in the callback URL); e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'",
        ),
    ],
)
def test_validation_messages(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    message = str(info.value)
    assert message == expected
    assert "\n" not in message


def test_several_problems_reported_as_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENCENT_REGION", "mars")
    monkeypatch.setenv("ROOMBOT_RATE_LIMIT", "999")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert "\n" not in str(info.value)
    assert str(info.value).endswith("(and 1 more problem)")


def test_bad_secret_value_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxp-leaky-secret-value")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert "leaky" not in str(info.value)
    assert "leaky" not in repr(info.value)


def test_bad_callback_token_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMBOT_CALLBACK_TOKEN", "leaky secret with spaces &=")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert str(info.value).startswith("ROOMBOT_CALLBACK_TOKEN: must be 16-200 characters")
    assert "leaky" not in str(info.value)


def test_blank_callback_settings_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMBOT_CALLBACK_TOKEN", "  ")
    monkeypatch.setenv("ROOMBOT_ALERT_CHANNEL", "")
    s = load_settings(env_file=None)
    assert s.roombot_callback_token is None
    assert s.roombot_alert_channel is None


def test_dotenv_file_loaded(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# a comment\nTENCENT_SDKAPPID=1400000001\nTENCENT_REGION=korea\n"
        "ROOMBOT_ALLOWED_USERS=U0AAAAAAA\nSOMETHING_ELSE=ignored\nTENCENT_API_URL=\n",
        encoding="utf-8",
    )
    s = load_settings()  # default env_file=".env", in the test's working directory
    assert s.tencent_sdkappid == 1400000001
    assert s.tencent_region is Region.KOREA
    assert s.roombot_allowed_users == ("U0AAAAAAA",)
    assert s.tencent_api_url is None  # blank means unset


def test_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("ROOMBOT_RATE_LIMIT=10\n", encoding="utf-8")
    monkeypatch.setenv("ROOMBOT_RATE_LIMIT", "20")
    assert load_settings().roombot_rate_limit == 20


def test_bad_value_in_dotenv_reported(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TENCENT_REGION=atlantis\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^TENCENT_REGION: unknown region 'atlantis'"):
        load_settings()


def test_secrets_absent_from_repr_and_str(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FULL_ENV.items():
        monkeypatch.setenv(name, value)
    s = load_settings(env_file=None)
    for text in (repr(s), str(s), s.model_dump_json(), str(s.model_dump())):
        for secret in SECRET_VALUES.values():
            assert secret not in text


def test_require_names_missing_variable() -> None:
    s = load_settings(env_file=None)
    with pytest.raises(ConfigError) as info:
        s.require("SLACK_BOT_TOKEN", purpose="`roombot serve`")
    assert str(info.value) == "SLACK_BOT_TOKEN is required for `roombot serve` (see .env.example)"


def test_env_example_lists_every_variable() -> None:
    example = Path(__file__).resolve().parents[2] / ".env.example"
    names = {
        line.split("=", 1)[0]
        for line in example.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    }
    assert names == {name.upper() for name in Settings.model_fields}


# -- secrets in the wrong variable (#12.14) and the log settings ---------------------------------


def test_secret_pasted_into_another_variable_is_never_echoed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = SECRET_VALUES["TENCENT_SECRET_KEY"]
    monkeypatch.setenv("TENCENT_SDKAPPID", key)  # the secret key in the SDKAppID's place
    monkeypatch.setenv("ROOMBOT_ALLOWED_USERS", "U012ABCDEF," + SECRET_VALUES["SLACK_BOT_TOKEN"])
    monkeypatch.setenv("SLACK_API_URL", SECRET_VALUES["SLACK_SIGNING_SECRET"])
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    message = str(info.value)
    assert message.startswith(("TENCENT_SDKAPPID:", "ROOMBOT_ALLOWED_USERS:", "SLACK_API_URL:"))
    for secret in (key, SECRET_VALUES["SLACK_BOT_TOKEN"], SECRET_VALUES["SLACK_SIGNING_SECRET"]):
        assert secret not in message
        assert secret[:12] not in message


def test_describe_errors_words_every_variable_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from bot.config import describe_errors

    monkeypatch.setenv("TENCENT_SDKAPPID", SECRET_VALUES["TENCENT_SECRET_KEY"])
    monkeypatch.setenv("TENCENT_REGION", "mars")
    monkeypatch.setenv("ROOMBOT_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    lines = describe_errors(info.value)
    assert [line.split(":", 1)[0] for line in lines] == [
        "TENCENT_SDKAPPID",
        "TENCENT_REGION",
        "ROOMBOT_LOG_LEVEL",
    ]
    assert "looks like a secret" in lines[0]
    assert SECRET_VALUES["TENCENT_SECRET_KEY"] not in "\n".join(lines)


@pytest.mark.parametrize(
    ("fmt", "level", "expected"),
    [("JSON", "debug", ("json", "DEBUG")), ("text", "warn", ("text", "WARNING"))],
)
def test_log_settings(
    monkeypatch: pytest.MonkeyPatch, fmt: str, level: str, expected: tuple[str, str]
) -> None:
    monkeypatch.setenv("ROOMBOT_LOG_FORMAT", fmt)
    monkeypatch.setenv("ROOMBOT_LOG_LEVEL", level)
    s = load_settings(env_file=None)
    assert (s.roombot_log_format, s.roombot_log_level) == expected
    assert s.log_level == logging.getLevelName(expected[1])


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ROOMBOT_LOG_FORMAT", "xml", "ROOMBOT_LOG_FORMAT: must be text or json, got 'xml'"),
        (
            "ROOMBOT_LOG_LEVEL",
            "loud",
            "ROOMBOT_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'loud'",
        ),
    ],
)
def test_log_settings_validation(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert str(info.value) == expected


def test_missing_lists_every_unset_variable() -> None:
    s = load_settings(env_file=None, tencent_sdkappid=1400000000)
    assert s.missing("SLACK_BOT_TOKEN", "TENCENT_SDKAPPID", "TENCENT_SECRET_KEY", purpose="x") == [
        "SLACK_BOT_TOKEN is required for x (see .env.example)",
        "TENCENT_SECRET_KEY is required for x (see .env.example)",
    ]
