"""A publishing process says it is alive: the heartbeat that tells a killed replay from a slow one.

Who publishes is recorded with the replay (host and pid); while a step publishes, a thread
beats the replay's record every tenth of the stale time, also while the broker blocks or a
rate holds it back. A RUNNING replay whose record stops beating was killed
(``ExecutionStore.fail_stale_replays``).
"""

from __future__ import annotations

__all__ = ["OWNER", "Heartbeat"]

import logging
import os
import socket
import threading

from ..errors import FactflowReplayError
from ..executions import ExecutionStore

log = logging.getLogger(__name__)

#: Who publishes, as the replay record shows it: this host and process.
OWNER = f"{socket.gethostname()} pid {os.getpid()}"


class Heartbeat:
    """``with Heartbeat(...):`` beats ``replay_id`` every ``every`` seconds from a thread."""

    def __init__(self, executions: ExecutionStore, replay_id: str, *, every: float) -> None:
        self._executions = executions
        self._replay_id = replay_id
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat-{replay_id}", daemon=True
        )

    def __enter__(self) -> None:
        self._thread.start()

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._every + 5)

    def _beat(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._executions.beat_replay(self._replay_id)
            except FactflowReplayError as exc:  # the publish path fails on its next save
                log.warning("replay %s: heartbeat not saved: %s", self._replay_id, exc)
