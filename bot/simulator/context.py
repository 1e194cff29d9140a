"""What handlers see of the server: the key record, callback answers and a view of the simulator.

`server.py` imports `handlers.py` to dispatch requests; handlers depend only on this module
(never on `server.py`), so the two do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from telethon.crypto import AuthKey

from .world import SimUser, World


@dataclass
class AuthKeyRecord:
    """What the server knows about one authorization key."""

    key: AuthKey
    user_id: int | None = None
    layer: int | None = None
    login: dict[str, Any] | None = None  # pending phone login
    srp: dict[str, Any] | None = None  # pending 2FA check


@dataclass
class CallbackAnswer:
    """A bot's answer to an inline-button press."""

    message: str | None
    alert: bool = False
    url: str | None = None


class SimulatorView(Protocol):
    """The parts of ``Simulator`` a request handler may use."""

    host: str
    port: int
    dc_id: int
    world: World
    login_code: str
    channel_difference_too_long: int | None

    def bind(self, record: AuthKeyRecord, user: SimUser) -> None: ...

    def unbind(self, record: AuthKeyRecord) -> None: ...

    async def press(
        self,
        user: SimUser,
        bot: SimUser,
        msg_id: int,
        data: bytes | None,
        *,
        timeout: float,  # noqa: ASYNC109 - mirrors Simulator.press
    ) -> CallbackAnswer: ...

    def answer_callback(
        self, bot: SimUser, query_id: int, message: str | None, alert: bool, url: str | None
    ) -> None: ...
