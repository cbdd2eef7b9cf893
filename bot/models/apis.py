"""The Room Engine REST services roombot uses, and the commands each serves: one list that the
client calls, the emulator serves and the metrics label, so they cannot drift apart."""

from __future__ import annotations

from typing import Final

#: The path prefix of every Room Engine room API.
SERVICE_PATH: Final = "/v4/room_engine_http_srv"
#: The path prefix of the callback-configuration APIs (a different service).
CONFIG_PATH: Final = "/v4/room_config"
#: The path prefix of the seat ("mic") APIs (a third service).
MIC_PATH: Final = "/v4/room_engine_http_mic"

#: The room service's commands roombot calls.
ROOM_COMMANDS: Final = frozenset(
    {
        "update_room_info",
        "get_room_info",
        "create_room",
        "destroy_room",
        "get_room_member_list",
        "kick_user_out",
        "ban_room_member",
        "unban_room_member",
        "get_banned_member_list",
    }
)
#: The callback-configuration service's commands.
CONFIG_COMMANDS: Final = frozenset(
    {"set_callback", "update_callback", "get_callback", "delete_callback"}
)
#: The seat service's commands (the reference's six; roombot's client calls the first four).
SEAT_COMMANDS: Final = frozenset(
    {
        "get_seat_list",
        "lock_seat",
        "kick_user_off_seat",
        "pick_user_on_seat",
        "switch_seat",
        "move_user_to_seat",
    }
)
#: Every command (names are unique across the three services).
COMMANDS: Final = ROOM_COMMANDS | CONFIG_COMMANDS | SEAT_COMMANDS
#: Each service's path and its commands.
SERVICES: Final = {
    SERVICE_PATH: ROOM_COMMANDS,
    CONFIG_PATH: CONFIG_COMMANDS,
    MIC_PATH: SEAT_COMMANDS,
}
