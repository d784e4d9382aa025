"""What a successful verification tells the receiver."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verified:
    """A request that passed verification.

    ``key_index`` is the position of the matching secret in the scheme's key list: ``0`` is
    the current secret, anything higher means the sender still signs with an old one, which
    is worth a log line during a rotation.
    """

    scheme: str
    key_index: int
    timestamp: int | None = None
    message_id: str | None = None
    #: The key under which the replay store remembered this message (``None`` without one).
    replay_key: str | None = None
