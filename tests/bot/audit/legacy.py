"""A database as the version before request records (schema version 3) left it, for the
migration tests of both backends."""

from __future__ import annotations

V3_CONTEXT = (
    '{"v": 1, "adapter": "slack", "kind": "undo", "channel": "C1", "user": "U1", '
    '"parent_ts": "1.2", "thread_ts": "1.2", "response_url": null, "fallback": false, '
    '"head": "<@U1> ran `/room mute-all`"}'
)
V3_ROWS = f"""
INSERT INTO audit_entries (request_key, created_at, user_id, source, verb, raw_text, room_id,
    channel_id, patch, outcome) VALUES
    ('leased', 1000.0, 'U1', 'button', 'mute-all', 'undo leased', 'r1', 'C1',
     '{{"IsAudioDisabled":false}}', 'pending'),
    ('orphan', 1001.0, 'U2', 'slash', 'mute-all', 'mute-all r2', 'r2', 'C2',
     '{{"IsAudioDisabled":true}}', 'pending'),
    ('finished', 1002.0, 'U3', 'slash', 'mute-all', 'mute-all r3', 'r3', 'C3',
     '{{"IsAudioDisabled":true}}', 'ok');
INSERT INTO leases (request_key, owner, context, taken_at, expires_at, takeovers) VALUES
    ('leased', 'host-a:12:deadbeef', '{V3_CONTEXT}', 1000.0, 2000.0, 1);
"""  # noqa: S608 (fixed test data)
