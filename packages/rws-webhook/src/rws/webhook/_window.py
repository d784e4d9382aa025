"""The two-sided freshness window shared by every timestamped scheme."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import TimestampOutOfRangeError, WebhookConfigError


@dataclass(frozen=True, slots=True)
class TimestampWindow:
    """Accept a signed timestamp from ``past`` seconds ago to ``future`` seconds ahead.

    Senders' clocks drift, so the future side is not zero; a timestamp far in the future is
    as suspicious as an old one (it would let a captured request be replayed later), so it is
    bounded too, unlike Stripe's own library, which checks only the past.
    """

    past: float
    future: float

    def __post_init__(self) -> None:
        for side in ("past", "future"):
            value = getattr(self, side)
            if not isinstance(value, int | float) or value < 0 or value != value:
                raise WebhookConfigError(f"tolerance ({side}) must be a number >= 0, got {value!r}")

    @property
    def span(self) -> float:
        """How long a message id must be remembered to cover the whole window."""
        return self.past + self.future

    def check(self, timestamp: int, now: float | None = None) -> None:
        current = time.time() if now is None else now
        if timestamp < current - self.past:
            raise TimestampOutOfRangeError(
                f"timestamp is {current - timestamp:.0f}s old; at most {self.past:g}s allowed",
                timestamp=timestamp,
                now=current,
            )
        if timestamp > current + self.future:
            raise TimestampOutOfRangeError(
                f"timestamp is {timestamp - current:.0f}s in the future; "
                f"at most {self.future:g}s allowed",
                timestamp=timestamp,
                now=current,
            )


def window(tolerance: float, future_tolerance: float | None) -> TimestampWindow:
    return TimestampWindow(tolerance, tolerance if future_tolerance is None else future_tolerance)
