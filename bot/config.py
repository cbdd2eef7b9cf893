"""Settings: every knob roombot reads from the environment or a `.env` file.

`load_settings()` is the one way in. It never raises a pydantic error at the caller: any problem
becomes a `ConfigError` whose message is one line naming the variable (and never a secret's value).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.defaults import CONFIRM_ABOVE, MAX_ROOMS, MAX_TIMEBOX_S, MIN_TIMEBOX_S, RATE_LIMIT
from bot.dsn import DatabaseUrl, audit_target
from bot.errors import RoombotError
from bot.redact import remember, scrub, shown
from bot.regions import Region

#: Slack user IDs: `U…` (or `W…` on Enterprise Grid), upper-case letters and digits.
USER_ID_RE = re.compile(r"^[UW][A-Z0-9]{2,20}$")

#: Slack conversation IDs roombot may be told to post in: public (C…) or private (G…) channels.
CHANNEL_ID_RE = re.compile(r"^[CG][A-Z0-9]{2,20}$")
#: The callback token rides in a URL query: long enough to guess at nobody's leisure, and made
#: only of characters that need no escaping there.
CALLBACK_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~-]{16,200}$")

#: Variables whose values must never be echoed back, even inside an error message.
SECRET_VARIABLES = frozenset(
    {
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "TENCENT_SECRET_KEY",
        "ROOMBOT_CALLBACK_TOKEN",
    }
)

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
#: ROOMBOT_LOG_LEVEL's accepted values (the standard `logging` level names).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_URL = TypeAdapter(AnyHttpUrl)
_DURATION_PART = re.compile(r"([0-9]{1,9})([dhms])")
_DURATION = re.compile(r"(?:[0-9]{1,9}[dhms])+")
_UNIT_S = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


_AGE = re.compile(r"(?:\s*[0-9]{1,9}\s*[smhdw])+\s*", re.IGNORECASE)
_AGE_PART = re.compile(r"([0-9]+)\s*([smhdw])", re.IGNORECASE)
_AGE_UNIT_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def age_seconds(text: str) -> float:
    """`90m`, `36h`, `7d`, `400d`, `1d12h` as seconds; ValueError saying what is expected."""
    if not _AGE.fullmatch(text):
        raise ValueError(f"must be a duration like 36h, 7d or 400d, got {shown(text)}")
    seconds = sum(int(n) * _AGE_UNIT_S[u.lower()] for n, u in _AGE_PART.findall(text))
    if seconds <= 0:
        raise ValueError(f"must be longer than 0s, got {shown(text)}")
    return float(seconds)


class ConfigError(RoombotError):
    """A configuration problem, phrased as one line a person can act on."""


class Settings(BaseSettings):
    """roombot's configuration. Field names are the environment variable names, lower-cased."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL

    tencent_sdkappid: int | None = Field(default=None, gt=0)
    tencent_secret_key: SecretStr | None = None
    tencent_admin_id: str = "administrator"
    tencent_region: Region = Region.SINGAPORE
    tencent_api_url: str | None = None

    roombot_allowed_users: Annotated[tuple[str, ...], NoDecode] = ()
    roombot_policy_file: Path | None = None
    # A SQLite path, or a `postgresql://` URL for several replicas (its text form hides the
    # password: see `bot.dsn`).
    roombot_audit_db: Path | DatabaseUrl = Path("roombot-audit.sqlite3")
    roombot_lease_s: float = Field(default=30.0, ge=5, le=600)
    roombot_rate_limit: int = Field(default=RATE_LIMIT, ge=1, le=200)
    roombot_confirm_above: int = Field(default=CONFIRM_ABOVE, ge=0)
    roombot_max_rooms: int = Field(default=MAX_ROOMS, ge=1, le=10_000)
    #: The longest `--for` of a time-boxed change (DESIGN §2.11), in seconds; the environment
    #: may say `7d`, `12h`, `90m` or a number of seconds.
    roombot_max_timebox: int = Field(default=MAX_TIMEBOX_S, ge=MIN_TIMEBOX_S, le=365 * 86_400)
    #: Go ahead with a change whose audit rows cannot be written (each outcome is logged
    #: instead). Off: such a change is refused, so the audit trail cannot be skipped.
    roombot_allow_unaudited: bool = False
    #: `text` (one human-readable line per event) or `json` (one JSON object a line).
    roombot_log_format: Literal["text", "json"] = "text"
    roombot_log_level: str = "INFO"
    #: The secret every Room Engine callback must carry (`?token=`); unset: no callback endpoint.
    roombot_callback_token: SecretStr | None = None
    #: Where changes made outside roombot are posted (a channel ID); unset: recorded only.
    roombot_alert_channel: str | None = None
    #: The widest `timeline` window, in seconds (`7d`, `36h`, ... in the environment).
    roombot_timeline_max: float = Field(default=7 * 86_400.0, gt=0)
    #: Audit rows older than this many seconds are pruned (`400d` in the environment); unset:
    #: every row is kept.
    roombot_audit_retention: float | None = Field(default=None, gt=0)

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "tencent_secret_key",
        "tencent_api_url",
        "roombot_policy_file",
        "roombot_callback_token",
        "roombot_alert_channel",
        "roombot_audit_retention",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # `FOO=` in a .env file means "not set", not "set to the empty string".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("roombot_timeline_max", "roombot_audit_retention", mode="before")
    @classmethod
    def _age(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            if value.strip():
                return age_seconds(value.strip())
            # Blank means unset: keep every row; the default widest timeline.
            return None if info.field_name == "roombot_audit_retention" else 7 * 86_400.0
        return value

    @field_validator("roombot_log_format", mode="before")
    @classmethod
    def _log_format(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().lower()
            if text not in {"text", "json"}:
                raise ValueError(f"must be text or json, got {shown(value)}")
            return text
        return value

    @field_validator("roombot_log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().upper()
            if text == "WARN":
                text = "WARNING"
            if text not in LOG_LEVELS:
                raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, got {shown(value)}")
            return text
        return value

    @field_validator("roombot_audit_db", mode="before")
    @classmethod
    def _audit_db(cls, value: Any) -> Any:
        # Decided here, not by the union: any string would also pass as a Path (a libpq
        # key=value string or a misspelt URL would quietly become a SQLite file of its own).
        if isinstance(value, str):
            return audit_target(value)
        return value

    @field_validator("roombot_max_timebox", mode="before")
    @classmethod
    def _max_timebox(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().lower()
            if text.isdigit():
                return int(text)
            if not _DURATION.fullmatch(text):
                raise ValueError(
                    f"must be a duration like `7d`, `12h` or `90m` (or seconds), got {shown(text)}"
                )
            return sum(int(n) * _UNIT_S[unit] for n, unit in _DURATION_PART.findall(text))
        return value

    @field_validator("tencent_sdkappid", mode="before")
    @classmethod
    def _sdkappid(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            if not text.isdigit():
                raise ValueError(f"must be a positive integer, got {shown(text)}")
            return int(text)
        return value

    @field_validator("tencent_region", mode="before")
    @classmethod
    def _region(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().lower()
            if text not in {r.value for r in Region}:
                valid = ", ".join(r.value for r in Region)
                raise ValueError(f"unknown region {shown(value)} (valid: {valid})")
            return text
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with 'xoxb-'")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with 'xapp-'")
        return value

    @field_validator("roombot_callback_token")
    @classmethod
    def _callback_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not CALLBACK_TOKEN_RE.match(value.get_secret_value()):
            raise ValueError(
                "must be 16-200 characters of letters, digits and . _ ~ - (it is put in the "
                "callback URL); e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("roombot_alert_channel")
    @classmethod
    def _alert_channel(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        if not CHANNEL_ID_RE.match(text):
            raise ValueError(
                f"malformed channel ID {text[:40]!r} (expected an ID like C012ABCDEF: channel "
                "details → About; a #name is not accepted)"
            )
        return text

    @field_validator("slack_api_url", "tencent_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        try:
            _URL.validate_python(text)
        except ValidationError:
            raise ValueError(f"must be an http(s) URL, got {shown(text)}") from None
        return text

    @field_validator("tencent_admin_id")
    @classmethod
    def _admin_id(cls, value: str) -> str:
        text = value.strip()
        if not text or len(text.encode()) > 32 or any(c.isspace() for c in text):
            raise ValueError("must be an account ID of 1-32 bytes without spaces")
        return text

    @field_validator("roombot_allowed_users", mode="before")
    @classmethod
    def _user_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            bad = [v for v in value if not isinstance(v, str) or not USER_ID_RE.match(v)]
            if bad:
                raise ValueError(
                    f"malformed Slack user ID {shown(bad[0])} (expected IDs like U012ABCDEF, "
                    "comma-separated; display names are not accepted)"
                )
            return tuple(dict.fromkeys(value))
        return value

    # -- derived values -------------------------------------------------------------------------

    @property
    def tencent_base_url(self) -> str:
        """The Room Engine base URL: `TENCENT_API_URL` if set, else the region's host."""
        return (self.tencent_api_url or self.tencent_region.base_url).rstrip("/")

    @property
    def tencent_configured(self) -> bool:
        """True when both the SDKAppID and the secret key are present."""
        return self.tencent_sdkappid is not None and self.tencent_secret_key is not None

    def tencent_partial(self) -> str | None:
        """One line naming what is missing when the Tencent configuration is partial: some
        TENCENT_* given (other than the defaults), but not both the SDKAppID and the secret
        key. None when it is complete, or when nothing was given (the console's emulator)."""
        given = [
            name
            for name, is_given in (
                ("TENCENT_SDKAPPID", self.tencent_sdkappid is not None),
                ("TENCENT_SECRET_KEY", self.tencent_secret_key is not None),
                ("TENCENT_API_URL", self.tencent_api_url is not None),
                ("TENCENT_ADMIN_ID", self.tencent_admin_id != "administrator"),
                ("TENCENT_REGION", self.tencent_region is not Region.SINGAPORE),
            )
            if is_given
        ]
        missing = [
            name
            for name in ("TENCENT_SDKAPPID", "TENCENT_SECRET_KEY")
            if getattr(self, name.lower()) is None
        ]
        if not given or not missing:
            return None
        verb = "is" if len(missing) == 1 else "are"
        return (
            f"{' and '.join(missing)} {verb} not set, but {', '.join(given)} "
            f"{'is' if len(given) == 1 else 'are'}: set {' and '.join(missing)} to use that Room "
            "Engine, or unset every TENCENT_* variable to use the embedded emulator"
        )

    def require(self, *variables: str, purpose: str) -> None:
        """Raise `ConfigError` naming the first unset one of `variables` and what needs it."""
        missing = self.missing(*variables, purpose=purpose)
        if missing:
            raise ConfigError(missing[0])

    def missing(self, *variables: str, purpose: str) -> list[str]:
        """One line for each unset one of `variables`, saying what needs it."""
        return [
            f"{name} is required for {purpose} (see .env.example)"
            for name in variables
            if getattr(self, name.lower()) in (None, "")
        ]

    @property
    def log_level(self) -> int:
        """`ROOMBOT_LOG_LEVEL` as a `logging` level number."""
        return logging.getLevelNamesMapping()[self.roombot_log_level]


def variable_source(name: str, env_file: Path | str | None = ".env") -> str | None:
    """Where `name` is set: "the environment" (which wins), `env_file`'s name, or None."""
    if os.environ.get(name, "").strip():
        return "the environment"
    if env_file is not None and Path(env_file).is_file():
        from dotenv import dotenv_values

        values = {key.upper(): value for key, value in dotenv_values(env_file).items()}
        if (values.get(name.upper()) or "").strip():
            return str(env_file)
    return None


def load_settings(env_file: Path | str | None = ".env", **overrides: Any) -> Settings:
    """Read the environment (and `env_file`, if it exists) into `Settings`.

    Raises `ConfigError` with one line naming the offending variable (and how many more there
    are; `describe_errors` words every one). Every secret it may have read is remembered for
    redaction (`bot.redact`), whichever variable it sits in and whether or not it is valid.
    """
    secrets = _raw_secret_values(env_file, overrides)
    remember(*secrets)
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        problems = describe_errors(exc, secrets)
        count = len(problems)
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        raise ConfigError(f"{problems[0]}{more}") from None


def describe_errors(exc: ValidationError, secrets: tuple[str, ...] = ()) -> list[str]:
    """One line per invalid variable (its first problem), naming it, never quoting a secret."""
    lines: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]).upper() if error["loc"] else "configuration"
        lines.setdefault(name, f"{name}: {_describe(error, secrets)}")
    return list(lines.values())


def _raw_secret_values(env_file: Path | str | None, overrides: dict[str, Any]) -> tuple[str, ...]:
    """The secret variables' values as given: environment, `env_file`, and `overrides`."""
    values = [os.environ.get(name, "") for name in SECRET_VARIABLES]
    if env_file is not None and Path(env_file).is_file():
        from dotenv import dotenv_values

        values += [
            value or ""
            for key, value in dotenv_values(env_file).items()
            if key.upper() in SECRET_VARIABLES
        ]
    for key, value in overrides.items():
        if key.upper() in SECRET_VARIABLES and value is not None:
            values.append(value.get_secret_value() if isinstance(value, SecretStr) else str(value))
    return tuple(v.strip() for v in values if v and v.strip())


def _describe(error: Any, secrets: tuple[str, ...]) -> str:
    name = str(error["loc"][0]).upper() if error["loc"] else "configuration"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] in {"int_parsing", "int_type"}:
        message = "must be an integer"
    elif error["type"] in {"float_parsing", "float_type", "finite_number"}:
        message = "must be a number"
    elif error["type"] in {"greater_than_equal", "less_than_equal", "greater_than"}:
        message = _range_message(name.lower()) or message.lower().replace(
            "input should be", "must be"
        )
    raw = error.get("input")
    if name in SECRET_VARIABLES and isinstance(raw, str) and raw:
        # Belt and braces: no validator message may ever carry a secret's value.
        message = message.replace(raw, "…")
    # Nor any other variable's message a secret that was pasted into it.
    return scrub(message, *secrets)


def _range_message(field_name: str) -> str | None:
    field = Settings.model_fields.get(field_name)
    if field is None:
        return None
    low = next((m.ge for m in field.metadata if getattr(m, "ge", None) is not None), None)
    high = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
    if low is not None and high is not None:
        return f"must be between {low} and {high}"
    if low is not None:
        return f"must be at least {low}"
    return None
