"""What the RabbitMQ publisher and consumer share: the redactor, parameters, errors, logger."""

from __future__ import annotations

__all__ = [
    "LOGGER",
    "REFUSED",
    "BrokerRedactor",
    "ConnectionLost",
    "broker_error",
    "connection_parameters",
    "root_cause",
]

import logging

import pika
import pika.exceptions

from ..errors import BrokerConnectionError
from ..redaction import Redactor, server_url

#: One logger for the whole RabbitMQ adapter, whichever module logs.
LOGGER = logging.getLogger("factflow_replay_dagster.queues.rabbitmq")

#: Errors that retrying cannot fix: the broker refused the login.
REFUSED = (
    pika.exceptions.AuthenticationError,
    pika.exceptions.ProbableAuthenticationError,
    pika.exceptions.ProbableAccessDeniedError,
)


class BrokerRedactor(Redactor):
    """The redactor of one broker URL, with ``broker``: the URL safe to show."""

    def __init__(self, url: str) -> None:
        super().__init__(urls=[url])
        #: The URL without password and query, e.g. ``amqp://guest@127.0.0.1:5672/%2F``.
        self.broker = server_url(url)

    def describe(self, exc: BaseException) -> str:
        """A password-free one-line description of (the root cause of) a pika exception."""
        cause = root_cause(exc)
        detail = str(cause) or repr(cause)
        return self.scrub(f"{type(cause).__name__}: {detail}")


def root_cause(exc: BaseException) -> BaseException:
    """The innermost error of pika's wrappers (connection workflow, connector phases)."""
    for _ in range(10):
        # AMQPConnectionWorkflowFailed has .exceptions, the connector's phase errors .exception
        inner: object = getattr(exc, "exceptions", None)
        inner = inner[-1] if isinstance(inner, tuple) and inner else getattr(exc, "exception", None)
        if (
            not isinstance(inner, BaseException)
            and type(exc) is pika.exceptions.AMQPConnectionError
        ):
            inner = exc.args[0] if len(exc.args) == 1 else None
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def connection_parameters(
    url: str, *, heartbeat: int, connect_timeout: float, name: str
) -> pika.URLParameters:
    """pika parameters for ``url``: one attempt per connect (retries are ours), our timeouts."""
    params = pika.URLParameters(url)
    params.heartbeat = heartbeat
    params.socket_timeout = connect_timeout
    params.stack_timeout = connect_timeout
    params.connection_attempts = 1
    params.client_properties = {"connection_name": name}
    return params


def broker_error(
    broker: str, what: str, lost: ConnectionLost, failures: int, *, confirmed: int | None = None
) -> BrokerConnectionError:
    """The error for giving up on ``broker``; ``confirmed`` is given for publish calls."""
    tries = f"after {failures} retries" if lost.retryable else "(not retried)"
    tail = "" if confirmed is None else f"; {confirmed} message(s) of this call were confirmed"
    return BrokerConnectionError(
        f"cannot {what} on {broker} {tries}: {lost.reason}{tail}", confirmed=confirmed or 0
    )


class ConnectionLost(Exception):  # noqa: N818 - an internal signal, never raised to callers
    """The connection (or the confirm channel) went away; the text holds no password.

    ``retryable`` is False when retrying cannot help (the broker refused the credentials).
    """

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        self.reason = reason
        self.retryable = retryable
        super().__init__(reason)
