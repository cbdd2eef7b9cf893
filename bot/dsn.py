"""PostgreSQL URLs (`postgresql://user:password@host/db`) that cannot leak their password.

`DatabaseUrl` holds the URL as given; `str()`, `repr()` and `.redacted` show it with the password
replaced by `***`, so any f-string, log line or exception that mentions it is safe. Only
`.secret()` returns the real URL, for the one place that connects. `redact(text, *urls)` scrubs
text that came from elsewhere (a driver's error message) of those URLs' passwords, raw or
percent-encoded.

`audit_target(text)` decides what `ROOMBOT_AUDIT_DB` names: a SQLite path or such a URL, and
refuses anything else (another scheme, a libpq key=value string, a password whose `@` or `/` is
not percent-encoded) without quoting the password.

A leaf module (standard library only): `bot.config` reads `ROOMBOT_AUDIT_DB` with it, and the
other subcommands must not pay for loading the database code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

from bot.redact import protect_loggers, remember, scrub

#: The schemes that select the PostgreSQL store.
SCHEMES: Final = ("postgresql", "postgres")
MASK: Final = "***"
# A password can also travel as a query parameter (`?password=...`) or in a key=value string.
_QUERY_PASSWORD = re.compile(r"(?i)(password=)([^&\s]*)")
# A URL's scheme, as RFC 3986 spells it (short enough to be a scheme, not a password).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,30}")
# `scheme:/...`: a URL with a slash missing, never a file name anyone means.
_SCHEME_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{1,30}:/")


def is_database_url(value: object) -> bool:
    """True when `value` is a `DatabaseUrl` or a string starting with `postgresql://` or
    `postgres://` (case-insensitive), i.e. when it selects the PostgreSQL store."""
    if isinstance(value, DatabaseUrl):
        return True
    if not isinstance(value, str):
        return False
    head = value.strip().split("://", 1)[0].lower()
    return "://" in value and head in SCHEMES


class DatabaseUrl:
    """A `postgresql://` URL whose text form never carries its password.

    Raises `ValueError` (whose message never contains the password) for something that is not a
    usable PostgreSQL URL: another scheme, no host and no database, or a malformed port.
    """

    __slots__ = ("_url",)

    def __init__(self, url: str) -> None:
        text = url.strip()
        if not is_database_url(text):
            raise ValueError("a database URL must start with postgresql:// or postgres://")
        _refuse_ambiguous(text)
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError:
            raise ValueError(f"malformed database URL {_mask(text)}") from None
        if not parts.hostname and not parts.path.strip("/") and not parts.query:
            raise ValueError(f"the database URL {_mask(text)} names no host and no database")
        self._url = text

    def secret(self) -> str:
        """The URL as configured, password included: only for connecting."""
        return self._url

    def session_options(self, settings: Mapping[str, str | int]) -> str:
        """libpq's `options` for a connection to this URL with `settings` (PostgreSQL parameters)
        set at connection start: the URL's own `options`, then `-c name=value` for each.

        Set this way, a parameter costs no statement and no transaction of its own (a `SET` on a
        new pooled connection is one committed transaction each, which the database counts
        against the writes of the moment).
        """
        from psycopg.conninfo import conninfo_to_dict  # only where PostgreSQL is used

        own = str(conninfo_to_dict(self._url).get("options") or "")
        added = " ".join(f"-c {name}={value}" for name, value in settings.items())
        return f"{own} {added}".strip()

    @property
    def redacted(self) -> str:
        """The URL with its password (in the user part or the query) shown as `***`."""
        return _mask(self._url)

    @property
    def password(self) -> str | None:
        """The password, or None when the URL carries none."""
        parts = urlsplit(self._url)
        if parts.password is not None:
            return unquote(parts.password)
        found = _QUERY_PASSWORD.search(parts.query)
        return unquote(found.group(2)) if found and found.group(2) else None

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"DatabaseUrl({self.redacted!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatabaseUrl) and other._url == self._url

    def __hash__(self) -> int:
        return hash(("DatabaseUrl", self._url))

    # pydantic: a field annotated `DatabaseUrl` accepts a string and keeps the object.
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            cls._coerce,
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def _coerce(cls, value: Any) -> DatabaseUrl:
        if isinstance(value, DatabaseUrl):
            return value
        if isinstance(value, str):
            return cls(value)
        raise ValueError("a database URL must be a string")


def _mask(url: str) -> str:
    """`url` with the password of its user part and any `password=` parameter as `***`; the
    rest exactly as written (no normalising, so people recognise their URL)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, url)
    # Up to the last "@" of all is the user part, even if an unencoded "/", "?", "#" or "@" in
    # the password would make a parser end it earlier: mask too much rather than too little.
    userinfo, at, after = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.split(':', 1)[0]}:{MASK}@{after}"
    elif at and "@" in userinfo:
        rest = f"{MASK}@{after}"
    rest = _QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, rest)
    return f"{scheme}://{rest}"


def _refuse_ambiguous(url: str) -> None:
    """Raise `ValueError` when an "@" lies outside the URL's user part: an unencoded "@", "/",
    "?" or "#" in the password, which Python and libpq split differently (one would take a
    piece of the password for the host)."""
    rest = url.partition("://")[2]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    if rest.count("@") > 1 or "@" in rest[end:]:
        raise ValueError(
            f"the database URL {_mask(url)} is ambiguous: percent-encode an '@', '/', '?' or "
            "'#' in the user name or password (%40, %2F, %3F, %23)"
        )


def audit_target(value: str) -> Path | DatabaseUrl:
    """`ROOMBOT_AUDIT_DB` as a SQLite path or a PostgreSQL URL.

    Raises `ValueError` (whose message never contains a password) for anything else: a
    `://` URL of another scheme, a libpq `key=value` string, or a path that looks like either
    (a path with `=` or `://` in it is taken for a mistake, not for a file to create).
    """
    text = value.strip()
    if not text:
        raise ValueError("must be a SQLite file path or a postgresql:// URL, got nothing")
    if "://" in text or _SCHEME_LIKE.match(text):
        scheme = text.split(":", 1)[0]
        if "://" in text and scheme.lower() in SCHEMES:
            return DatabaseUrl(text)
        named = f"'{scheme}'" if _SCHEME.fullmatch(scheme) else "its scheme"
        raise ValueError(
            f"not a PostgreSQL URL ({named} is not postgresql:// or postgres://) nor a SQLite "
            "file path; write postgresql://USER:PASSWORD@HOST:5432/DBNAME"
        )
    if "=" in text:
        raise ValueError(
            "looks like a key=value connection string, which roombot does not take (nor is it "
            "a SQLite file path); write it as postgresql://USER:PASSWORD@HOST:5432/DBNAME"
        )
    return Path(text)


def redact(text: str, *urls: DatabaseUrl) -> str:
    """`text` with every password of `urls` (as given, percent-decoded or -encoded) and every
    secret `bot.redact` knows replaced by `***`, and any `password=...` parameter masked."""
    forms = [
        form
        for url in urls
        if (password := url.password)
        for form in (password, quote(password, safe=""), quote(password))
    ]
    return _QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, scrub(text, *forms))


def scrub_logs_of(url: DatabaseUrl, *loggers: str) -> None:
    """Make the named loggers (e.g. a driver's) mask `url`'s password in every record: its
    forms join the one registry of secrets (`bot.redact`), which those loggers scrub by."""
    password = url.password
    if password:
        remember(password, quote(password, safe=""), quote(password))
    protect_loggers(*loggers)
