"""Loading ROOMBOT_POLICY_FILE: what a valid file becomes, and one exact line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError
from bot.policy import WILDCARD, Policy, PolicyError, Role, load_policy
from tests.bot.policy.fakes import KNOWN_VERBS, POLICY_VERBS

MEMBER = 'users = ["U012ABCDEF"]'


def _load(text: str | None, *, allowed: tuple[str, ...] = ()) -> Policy:
    """Load `text` as ./policy.toml (tests run in tmp_path), or no policy file for None."""
    path = None
    if text is not None:
        path = Path("policy.toml")
        path.write_text(text, encoding="utf-8")
    return load_policy(allowed_users=allowed, policy_file=path, known_verbs=KNOWN_VERBS)


def _role(body: str, name: str = "mods") -> str:
    return f"[roles.{name}]\n{body}\n"


def test_the_documented_example_loads_with_canonical_verbs() -> None:
    policy = _load(
        """
        [roles.moderators]
        verbs = ["mute-all", "unmute-all", "disable-chat", "enable-chat", "show", "history"]
        users = ["U012ABCDEF"]
        usergroups = ["S0123ABCD"]
        channels = ["C0INCIDENT"]
        """
    )
    assert policy.roles == (
        Role(
            name="moderators",
            verbs=frozenset(
                {"mute-all", "unmute-all", "disable-chat", "enable-chat", "show", "history"}
            ),
            users=frozenset({"U012ABCDEF"}),
            usergroups=frozenset({"S0123ABCD"}),
            channels=frozenset({"C0INCIDENT"}),
        ),
    )
    assert not policy.is_empty


def test_aliases_and_any_case_become_canonical_names() -> None:
    policy = _load(
        _role(f'verbs = ["mute-audio", "MUTE-CHAT", "max-members", "custom-info"]\n{MEMBER}')
    )
    assert policy.roles[0].verbs == {"mute-all", "disable-chat", "set-capacity", "set-custom"}


def test_wildcard_optional_keys_and_file_order() -> None:
    policy = _load(
        _role(f'verbs = ["*"]\n{MEMBER}', "admins")
        + _role('verbs = ["show"]\nusergroups = ["S0VIEWERS"]', "viewers")
    )
    admins, viewers = policy.roles
    assert (admins.name, viewers.name) == ("admins", "viewers")
    assert admins.verbs == {WILDCARD}
    assert admins.usergroups == frozenset()
    assert admins.channels is None  # no guardrail: every channel
    assert viewers.users == frozenset()


def test_no_policy_file_means_only_the_allow_list() -> None:
    policy = _load(None, allowed=("U012ABCDEF", "W0AB12CD34"))
    assert policy.roles == ()
    assert policy.allowed_users == {"U012ABCDEF", "W0AB12CD34"}
    assert set(policy.verbs) == POLICY_VERBS
    assert "help" not in policy.verbs


def test_nothing_configured_is_empty() -> None:
    assert _load(None).is_empty


def test_policy_error_is_a_config_error() -> None:
    # The CLI prints any ConfigError as one line and exits 2.
    assert issubclass(PolicyError, ConfigError)


def test_a_malformed_allow_list_entry_is_refused() -> None:
    with pytest.raises(PolicyError) as caught:
        _load(None, allowed=("U012ABCDEF", "alice"))
    assert str(caught.value) == (
        "ROOMBOT_ALLOWED_USERS: malformed Slack user ID 'alice' "
        "(use IDs like U012ABCDEF, not names)"
    )


INVALID: list[tuple[str, str, str]] = [
    # (case, policy.toml text, the exact one-line error)
    (
        "empty file",
        "",
        "policy.toml: no roles defined; add a [roles.NAME] table with verbs and users or "
        "usergroups",
    ),
    (
        "empty roles table",
        "[roles]\n",
        "policy.toml: no roles defined; add a [roles.NAME] table with verbs and users or "
        "usergroups",
    ),
    (
        "misspelt top-level table",
        "[role.mods]\nverbs = ['show']\n",
        "policy.toml: role: unknown top-level key; did you mean 'roles'?",
    ),
    (
        "role outside [roles]",
        f"[moderators]\nverbs = ['show']\n{MEMBER}\n",
        "policy.toml: moderators: unknown top-level key; roles are defined as [roles.NAME] tables",
    ),
    (
        "roles is not a table",
        'roles = ["mods"]\n',
        "policy.toml: roles: must be tables like [roles.moderators], not an array",
    ),
    (
        "role is not a table",
        '[roles]\nmods = "everything"\n',
        "policy.toml: roles.mods: must be a table of role settings, not a string",
    ),
    (
        "role name with a space",
        f'[roles."on call"]\nverbs = ["show"]\n{MEMBER}\n',
        "policy.toml: roles.\"on call\": a role name may use only letters, digits, '-' and '_'",
    ),
    (
        "misspelt role key",
        _role('verbs = ["show"]\nuser = ["U012ABCDEF"]'),
        "policy.toml: roles.mods.user: unknown key; did you mean 'users'?",
    ),
    (
        "unknown role key",
        _role(f'verbs = ["show"]\n{MEMBER}\nadmin = true'),
        "policy.toml: roles.mods.admin: unknown key; a role has only verbs, users, usergroups, "
        "channels",
    ),
    (
        "missing verbs",
        _role(MEMBER),
        "policy.toml: roles.mods: missing 'verbs' (the verbs this role may run, or [\"*\"])",
    ),
    (
        "verbs is a string",
        _role(f'verbs = "show"\n{MEMBER}'),
        'policy.toml: roles.mods.verbs: must be an array of strings like ["…"], not a string',
    ),
    (
        "a verb is not a string",
        _role(f'verbs = ["show", 3]\n{MEMBER}'),
        "policy.toml: roles.mods.verbs[1]: must be a string, not an integer",
    ),
    (
        "a verb is a boolean",
        _role(f"verbs = [true]\n{MEMBER}"),
        "policy.toml: roles.mods.verbs[0]: must be a string, not a boolean",
    ),
    (
        "empty verbs",
        _role(f"verbs = []\n{MEMBER}"),
        'policy.toml: roles.mods.verbs: empty; list the verbs this role may run, or "*" for all',
    ),
    (
        "misspelt verb",
        _role(f'verbs = ["show", "mute-al"]\n{MEMBER}'),
        "policy.toml: roles.mods.verbs[1]: unknown verb 'mute-al' (did you mean 'mute-all'?)",
    ),
    (
        "wildcard mixed with verbs",
        _role(f'verbs = ["*", "show"]\n{MEMBER}'),
        'policy.toml: roles.mods.verbs: "*" already means every verb; list it alone',
    ),
    (
        "help listed",
        _role(f'verbs = ["show", "help"]\n{MEMBER}'),
        "policy.toml: roles.mods.verbs[1]: help is always allowed to everyone; remove it",
    ),
    (
        "display name as a user",
        '[roles.moderators]\nverbs = ["show"]\nusers = ["U012ABCDEF", "alice"]\n',
        "policy.toml: roles.moderators.users[1]: malformed Slack user ID 'alice' "
        "(use IDs like U012ABCDEF, not names)",
    ),
    (
        "@handle as a user",
        _role('verbs = ["show"]\nusers = ["@alice"]'),
        "policy.toml: roles.mods.users[0]: malformed Slack user ID '@alice' "
        "(use IDs like U012ABCDEF, not names)",
    ),
    (
        "a name that upper-cases into ID shape is still a name",
        _role('verbs = ["show"]\nusers = ["wendy"]'),
        "policy.toml: roles.mods.users[0]: malformed Slack user ID 'wendy' "
        "(use IDs like U012ABCDEF, not names)",
    ),
    (
        "mention markup as a user",
        _role('verbs = ["show"]\nusers = ["<@U012ABCDEF|alice>"]'),
        "policy.toml: roles.mods.users[0]: malformed Slack user ID '<@U012ABCDEF|alice>' "
        "(write the bare ID 'U012ABCDEF', not mention markup)",
    ),
    (
        "lower-case user ID",
        _role('verbs = ["show"]\nusers = ["u012abcdef"]'),
        "policy.toml: roles.mods.users[0]: malformed Slack user ID 'u012abcdef' "
        "(Slack IDs are upper-case: 'U012ABCDEF')",
    ),
    (
        "user ID with spaces",
        _role('verbs = ["show"]\nusers = [" U012ABCDEF"]'),
        "policy.toml: roles.mods.users[0]: malformed Slack user ID ' U012ABCDEF' "
        "(remove the spaces: 'U012ABCDEF')",
    ),
    (
        "group ID among users",
        _role('verbs = ["show"]\nusers = ["S0123ABCD"]'),
        "policy.toml: roles.mods.users[0]: 'S0123ABCD' is a Slack user group ID, not a user ID "
        "(put it in 'usergroups')",
    ),
    (
        "users is a string",
        _role('verbs = ["show"]\nusers = "U012ABCDEF"'),
        'policy.toml: roles.mods.users: must be an array of strings like ["…"], not a string',
    ),
    (
        "group handle",
        _role('verbs = ["show"]\nusergroups = ["@oncall"]'),
        "policy.toml: roles.mods.usergroups[0]: malformed Slack user group ID '@oncall' "
        "(use IDs like S0123ABCD, not handles or names)",
    ),
    (
        "group mention markup",
        _role('verbs = ["show"]\nusergroups = ["<!subteam^S0123ABCD|@oncall>"]'),
        "policy.toml: roles.mods.usergroups[0]: malformed Slack user group ID "
        "'<!subteam^S0123ABCD|@oncall>' (write the bare ID 'S0123ABCD', not mention markup)",
    ),
    (
        "user ID among groups",
        _role('verbs = ["show"]\nusergroups = ["W0AB12CD34"]'),
        "policy.toml: roles.mods.usergroups[0]: 'W0AB12CD34' is a Slack user ID, "
        "not a user group ID (put it in 'users')",
    ),
    (
        "channel name",
        _role(f'verbs = ["show"]\n{MEMBER}\nchannels = ["C0INCIDENT", "#incident"]'),
        "policy.toml: roles.mods.channels[1]: malformed Slack channel ID '#incident' "
        "(use IDs like C0123ABCD, not names)",
    ),
    (
        "channel mention markup",
        _role(f'verbs = ["show"]\n{MEMBER}\nchannels = ["<#C0INCIDENT|incident>"]'),
        "policy.toml: roles.mods.channels[0]: malformed Slack channel ID "
        "'<#C0INCIDENT|incident>' (write the bare ID 'C0INCIDENT', not mention markup)",
    ),
    (
        "channels is a string",
        _role(f'verbs = ["show"]\n{MEMBER}\nchannels = "C0INCIDENT"'),
        'policy.toml: roles.mods.channels: must be an array of strings like ["…"], not a string',
    ),
    (
        "empty channels",
        _role(f'verbs = ["show"]\n{MEMBER}\nchannels = []'),
        "policy.toml: roles.mods.channels: empty, so the role would apply nowhere; "
        "remove 'channels' to apply everywhere",
    ),
    (
        "no members at all",
        _role('verbs = ["show"]'),
        "policy.toml: roles.mods: role has no members; list user IDs in 'users' or "
        "user group IDs in 'usergroups'",
    ),
    (
        "empty member lists",
        _role('verbs = ["show"]\nusers = []\nusergroups = []'),
        "policy.toml: roles.mods: role has no members; list user IDs in 'users' or "
        "user group IDs in 'usergroups'",
    ),
    (
        "the second role is the bad one",
        _role(f'verbs = ["show"]\n{MEMBER}', "viewers")
        + _role('verbs = ["show"]\nusers = ["bob"]'),
        "policy.toml: roles.mods.users[0]: malformed Slack user ID 'bob' "
        "(use IDs like U012ABCDEF, not names)",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"),
    [pytest.param(text, message, id=case) for case, text, message in INVALID],
)
def test_invalid_policy_files_fail_with_one_exact_line(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        _load(text)
    assert str(caught.value) == message


def test_an_unknown_verb_without_a_close_match_lists_the_known_verbs() -> None:
    with pytest.raises(PolicyError) as caught:
        _load(_role(f'verbs = ["frobnicate"]\n{MEMBER}'))
    message = str(caught.value)
    assert message.startswith(
        "policy.toml: roles.mods.verbs[0]: unknown verb 'frobnicate' (known verbs: mute-all, "
        "unmute-all, disable-video,"
    )
    assert "history)" in message
    assert "help" not in message
    assert "mute-audio" not in message  # canonical names only, not every alias


def test_invalid_toml_names_the_file_and_the_line() -> None:
    with pytest.raises(PolicyError) as caught:
        _load('[roles.mods]\nverbs = ["show"\nusers = ["U012ABCDEF"]\n')
    message = str(caught.value)
    assert message.startswith("policy.toml: invalid TOML: ")
    assert "line 3" in message
    assert "\n" not in message


def test_a_missing_file_is_refused() -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(allowed_users=(), policy_file=Path("nope.toml"), known_verbs=KNOWN_VERBS)
    assert str(caught.value) == "nope.toml: policy file not found (check ROOMBOT_POLICY_FILE)"


def test_an_unreadable_path_is_refused() -> None:
    Path("policy.d").mkdir()
    with pytest.raises(PolicyError) as caught:
        load_policy(allowed_users=(), policy_file=Path("policy.d"), known_verbs=KNOWN_VERBS)
    assert str(caught.value).startswith("policy.d: cannot read the policy file: ")


def test_a_binary_file_is_refused() -> None:
    Path("policy.toml").write_bytes(b"\xff\xfe[roles]\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(allowed_users=(), policy_file=Path("policy.toml"), known_verbs=KNOWN_VERBS)
    assert str(caught.value) == "policy.toml: not UTF-8 text, so not a TOML policy file"


def test_the_file_is_named_as_configured() -> None:
    Path("conf").mkdir()
    path = Path("conf/roles.toml")
    path.write_text(_role('verbs = ["show"]\nusers = ["alice"]'), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"^conf/roles\.toml: roles\.mods\.users\[0\]: "):
        load_policy(allowed_users=(), policy_file=path, known_verbs=KNOWN_VERBS)


def test_odd_key_names_stay_on_one_line() -> None:
    with pytest.raises(PolicyError) as caught:
        _load(f'[roles.mods]\nverbs = ["show"]\n{MEMBER}\n"bad\\nkey" = 1\n')
    assert str(caught.value) == 'policy.toml: roles.mods."bad\\nkey": unknown key; a role has ' + (
        "only verbs, users, usergroups, channels"
    )


# -- every mistake in one run (issue 27, item 11) -------------------------------------------------

SEVERAL_MISTAKES = """
[roles.moderators]
verbs = ["mute-al", "show", "help"]
users = ["alice", "U012ABCDEF"]
colour = "blue"

[roles.viewers]
verbs = ["show"]
usergroups = ["@support"]
channels = ["#general"]
"""


def test_every_mistake_is_reported_at_once_one_line_each() -> None:
    with pytest.raises(PolicyError) as caught:
        _load(SEVERAL_MISTAKES, allowed=("bob",))
    assert caught.value.problems == (
        "ROOMBOT_ALLOWED_USERS: malformed Slack user ID 'bob' (use IDs like U012ABCDEF, not names)",
        "policy.toml: roles.moderators.colour: unknown key; a role has only verbs, users, "
        "usergroups, channels",
        "policy.toml: roles.moderators.verbs[0]: unknown verb 'mute-al' (did you mean 'mute-all'?)",
        "policy.toml: roles.moderators.verbs[2]: help is always allowed to everyone; remove it",
        "policy.toml: roles.moderators.users[0]: malformed Slack user ID 'alice' (use IDs like "
        "U012ABCDEF, not names)",
        "policy.toml: roles.viewers.usergroups[0]: malformed Slack user group ID '@support' (use "
        "IDs like S0123ABCD, not handles or names)",
        "policy.toml: roles.viewers.channels[0]: malformed Slack channel ID '#general' (use IDs "
        "like C0123ABCD, not names)",
    )
    assert str(caught.value).splitlines() == list(caught.value.problems)


def test_serve_reports_each_policy_mistake_on_its_own_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.startup import StartupProblems, prepare_serve

    Path("policy.toml").write_text(SEVERAL_MISTAKES, encoding="utf-8")
    monkeypatch.setenv("ROOMBOT_POLICY_FILE", "policy.toml")
    problems = prepare_serve(http=True, port_arg="0", env_file=None)
    assert isinstance(problems, StartupProblems)
    mistakes = [line for line in problems.lines if line.startswith("policy.toml: ")]
    assert len(mistakes) == 6
    assert all("\n" not in line for line in problems.lines)


def test_check_lists_each_policy_mistake(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.check import check_policy, load_settings_leniently

    Path("policy.toml").write_text(SEVERAL_MISTAKES, encoding="utf-8")
    monkeypatch.setenv("ROOMBOT_POLICY_FILE", "policy.toml")
    result, policy = check_policy(load_settings_leniently(None))
    assert policy is None
    assert result.is_problem
    assert result.detail == "6 problems in the policy, one a line below"
    assert len(result.notes) == 6
    assert result.notes[0].startswith("policy.toml: roles.moderators.colour: unknown key")
