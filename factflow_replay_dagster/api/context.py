"""What the API's requests share: the settings, the core components and the Dagster seam.

Everything is opened on first use and kept (the execution store's engine and the artefact
store are thread-safe); a publisher, used only to check queues, is opened per request. A
component whose server is down is tried again by the next request, so the API starts, and
says what is down (``/readyz``), whatever is unreachable.
"""

from __future__ import annotations

__all__ = ["ApiContext"]

import contextlib
import threading
from collections.abc import Iterator

from ..connect import open_artefact_store, open_execution_store, open_publisher
from ..executions import ExecutionStore
from ..queues.base import QueuePublisher
from ..settings import Settings
from ..storage.base import ArtefactStore
from .launch import RunLauncher, open_launcher


class ApiContext:
    """The API's components, built from one :class:`Settings` through ``connect.py``."""

    def __init__(self, settings: Settings, *, launcher: RunLauncher | None = None) -> None:
        self.settings = settings
        # The API only checks the broker (queues exist, it answers); the runs publish, with
        # the configured retries. A broker that is down answers 503 at once, not after them.
        self._checking = settings.model_copy(update={"broker_max_retries": 0})
        self._lock = threading.Lock()
        self._artefacts: ArtefactStore | None = None
        self._executions: ExecutionStore | None = None
        self._launcher = launcher

    def artefacts(self) -> ArtefactStore:
        """The artefact store (no I/O until used)."""
        with self._lock:
            if self._artefacts is None:
                self._artefacts = open_artefact_store(self._checking)
            return self._artefacts

    def executions(self) -> ExecutionStore:
        """The execution store (opened, and migrated, on first use; again after a failure)."""
        with self._lock:
            if self._executions is None:
                self._executions = open_execution_store(self._checking)
            return self._executions

    @contextlib.contextmanager
    def publisher(self) -> Iterator[QueuePublisher]:
        """A publisher for this request's checks (no message is ever sent), then closed."""
        publisher = open_publisher(self._checking)
        try:
            yield publisher
        finally:
            publisher.close()

    @property
    def launcher(self) -> RunLauncher:
        """Where runs go (:func:`~.launch.open_launcher`)."""
        with self._lock:
            if self._launcher is None:
                self._launcher = open_launcher(self.settings)
            return self._launcher

    def close(self) -> None:
        with self._lock:
            for store in (self._artefacts, self._executions):
                if store is not None:
                    store.close()
            self._artefacts = self._executions = None
            if self._launcher is not None:
                self._launcher.close()
                self._launcher = None
