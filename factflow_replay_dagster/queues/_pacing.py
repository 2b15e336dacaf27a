"""The one rate limiter of ``publish(rate=...)``, shared by every publisher."""

from __future__ import annotations

__all__ = ["CATCH_UP_SECONDS", "Pacer", "check_rate"]

import time

from ..errors import InvalidInputError

#: After a pause (a slow read, a reconnect), a publisher may catch up at most this many
#: seconds' worth of messages at full speed; beyond that, lost time stays lost, so a pause is
#: never followed by a burst.
CATCH_UP_SECONDS = 0.25


def check_rate(rate: float | None) -> None:
    """Every publisher's check of ``publish(rate=...)``: None (no limit) or positive."""
    if rate is not None and not rate > 0:
        raise InvalidInputError(f"rate must be positive messages per second, not {rate}")


class Pacer:
    """Spaces messages ``1 / rate`` seconds apart (``rate`` None: no limit).

    Ask :meth:`delay` before each message; once it is 0 send, then call :meth:`sent`.
    """

    __slots__ = ("_due", "interval")

    def __init__(self, rate: float | None) -> None:
        check_rate(rate)
        self.interval = 1.0 / rate if rate else 0.0
        self._due = time.monotonic()

    @property
    def limited(self) -> bool:
        return self.interval > 0

    def delay(self) -> float:
        """Seconds until the next message may go (0.0: now)."""
        if not self.interval:
            return 0.0
        return max(self._due - time.monotonic(), 0.0)

    def sent(self) -> None:
        """One message went: the next is due one interval later."""
        if self.interval:
            self._due = max(self._due, time.monotonic() - CATCH_UP_SECONDS) + self.interval
