"""What the RabbitMQ publisher and consumer share: the redactor, parameters, errors, logger."""

from __future__ import annotations

__all__ = [
    "LOGGER",
    "REFUSED",
    "BrokerRedactor",
    "ConnectionLost",
    "broker_error",
    "channel_refusal",
    "connect_failure",
    "connection_parameters",
    "root_cause",
]

import logging
import ssl

import pika
import pika.exceptions

from ..errors import BrokerAccessError, BrokerConnectionError, BrokerTLSError, SettingsError
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
    url: str, *, heartbeat: int, connect_timeout: float, name: str, ca_file: str | None = None
) -> pika.URLParameters:
    """pika parameters for ``url``: one attempt per connect (retries are ours), our timeouts.

    For ``amqps://`` the certificates of ``ca_file`` (PEM, ``FACTFLOW_BROKER_CA_FILE``) are
    trusted besides the system's, and the broker's certificate must name the URL's host.
    """
    params = pika.URLParameters(url)
    params.heartbeat = heartbeat
    params.socket_timeout = connect_timeout
    params.stack_timeout = connect_timeout
    params.connection_attempts = 1
    params.client_properties = {"connection_name": name}
    if ca_file is not None:
        if params.ssl_options is None:
            raise SettingsError(
                "FACTFLOW_BROKER_CA_FILE is set but FACTFLOW_BROKER_URL is not amqps://: "
                "the CA would not be used and the connection would not be encrypted"
            )
        _trust(params.ssl_options.context, ca_file)
    return params


def _trust(context: ssl.SSLContext, ca_file: str) -> None:
    """Add the CA certificates of ``ca_file`` to ``context``, or raise SettingsError."""
    try:
        context.load_verify_locations(cafile=ca_file)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SettingsError(
            f"FACTFLOW_BROKER_CA_FILE: cannot read the CA file {ca_file!r}: {reason}"
        ) from None
    except ssl.SSLError:
        raise SettingsError(
            f"FACTFLOW_BROKER_CA_FILE: {ca_file!r} holds no PEM CA certificate"
        ) from None


def broker_error(
    broker: str, what: str, lost: ConnectionLost, failures: int, *, confirmed: int | None = None
) -> BrokerConnectionError:
    """The error for giving up on ``broker``; ``confirmed`` is given for publish calls."""
    tries = f"after {failures} retries" if lost.retryable else "(not retried)"
    tail = "" if confirmed is None else f"; {confirmed} message(s) of this call were confirmed"
    return lost.error(
        f"cannot {what} on {broker} {tries}: {lost.reason}{tail}", confirmed=confirmed or 0
    )


#: What an administrator can do about a refusal, by kind.
_ACCESS_HINT = (
    " (a replay needs write permission on exchange 'amq.default' of the vhost; the "
    "reference runtime also configure and read on its queues)"
)
_TLS_HINT = " (is the CA that signed it in FACTFLOW_BROKER_CA_FILE?)"


def connect_failure(exc: BaseException, redactor: BrokerRedactor) -> ConnectionLost:
    """What a failed connection attempt means: refused (login, vhost, an untrusted TLS
    certificate: not worth retrying) or lost (worth retrying)."""
    cause = root_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        detail = cause.verify_message or cause.reason or str(cause)
        return ConnectionLost(
            f"the broker's TLS certificate is not trusted: {detail}{_TLS_HINT}",
            retryable=False,
            error=BrokerTLSError,
        )
    if isinstance(cause, REFUSED):
        return ConnectionLost(
            f"the broker refused the connection: {redactor.describe(exc)}",
            retryable=False,
            error=BrokerAccessError,
        )
    return ConnectionLost(f"cannot connect: {redactor.describe(exc)}")


def channel_refusal(error: BaseException | None, redactor: BrokerRedactor) -> ConnectionLost | None:
    """The broker closed a channel with ACCESS_REFUSED (403): the user lacks a permission.
    None for any other channel error."""
    if isinstance(error, pika.exceptions.ChannelClosedByBroker) and error.reply_code == 403:
        text = redactor.scrub(f"({error.reply_code}) {error.reply_text}")
        return ConnectionLost(
            f"the broker refused a permission: {text}{_ACCESS_HINT}",
            retryable=False,
            error=BrokerAccessError,
        )
    return None


class ConnectionLost(Exception):  # noqa: N818 - an internal signal, never raised to callers
    """The connection (or the confirm channel) went away; the text holds no password.

    ``retryable`` is False when retrying cannot help (the broker refused the credentials or
    a permission, or its certificate is not trusted); ``error`` is the class of the error
    raised when giving up.
    """

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool = True,
        error: type[BrokerConnectionError] = BrokerConnectionError,
    ) -> None:
        self.reason = reason
        self.retryable = retryable
        self.error = error
        super().__init__(reason)
