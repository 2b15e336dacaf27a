"""The RabbitMQ publisher and consumer against real brokers: confirms, stops, faults, reconnects."""

from __future__ import annotations

__all__: list[str] = []

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

import pika
import pika.exceptions
import pytest
from support.servers.rabbitmq import RabbitMQServer

from factflow_replay_dagster.errors import (
    BrokerConnectionError,
    InvalidInputError,
    QueueError,
    QueueNotFoundError,
    UnroutableMessageError,
)
from factflow_replay_dagster.queues._confirm_window import ConfirmWindow
from factflow_replay_dagster.queues.base import Delivery, OutgoingMessage, RetryPolicy
from factflow_replay_dagster.queues.rabbitmq import RabbitMQConsumer, RabbitMQPublisher

pytestmark = pytest.mark.rabbitmq

#: Bounds for liveness only (a hang fails instead of blocking the suite), never timing claims.
JOIN_TIMEOUT = 60.0
#: Retries generous enough to ride out a broker restart (about 10 s here).
RIDE_OUT = RetryPolicy(max_retries=40, interval_start=0.2, interval_step=0.2, interval_max=1.0)


def new_queue() -> str:
    return f"test.{uuid.uuid4().hex[:10]}"


def messages(count: int, *, prefix: str = "m", start: int = 0) -> Iterator[OutgoingMessage]:
    for i in range(start, start + count):
        yield OutgoingMessage(
            message_id=f"{prefix}-{i:06d}",
            body=f"body {i}".encode() * 8,
            headers={"seq": i, "route": "news", "replay": True},
            content_type="application/json",
            type="factflow.test",
            position=f"key/{i:06d}",
        )


def ids(count: int, *, prefix: str = "m", start: int = 0) -> list[str]:
    return [f"{prefix}-{i:06d}" for i in range(start, start + count)]


class Confirms:
    """An ``on_confirmed`` callback that records every run it is given."""

    def __init__(self, then: Callable[[int], None] | None = None) -> None:
        self.ids: list[str] = []
        self.runs = 0
        self._then = then

    def __call__(self, run: Sequence[OutgoingMessage]) -> None:
        assert run, "on_confirmed is never called with an empty run"
        self.runs += 1
        self.ids.extend(message.message_id for message in run)
        if self._then is not None:
            self._then(len(self.ids))


# -- an independent consumer: plain pika, nothing of ours ---------------------------------------


def drain(url: str, queue: str, *, expected: int | None = None, idle: float = 1.0) -> list[tuple]:
    """Every message in ``queue`` as (method, properties, body), read with plain pika."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1000)
        got: list[tuple] = []
        for method, properties, body in channel.consume(
            queue, auto_ack=True, inactivity_timeout=idle
        ):
            if method is None:
                break
            got.append((method, properties, body))
            if expected is not None and len(got) == expected:
                break
        channel.cancel()
        return got
    finally:
        connection.close()


def queue_state(url: str, queue: str) -> int | None:
    """Ready messages in ``queue``, or None if it does not exist."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ok = connection.channel().queue_declare(queue, passive=True)
        return int(ok.method.message_count)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != 404:
            raise
        return None
    finally:
        if connection.is_open:
            connection.close()


def delete_queue(url: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().queue_delete(queue)
    finally:
        connection.close()


@pytest.fixture
def publisher(rabbitmq_server: RabbitMQServer) -> Iterator[RabbitMQPublisher]:
    with RabbitMQPublisher(rabbitmq_server.url, window=128) as pub:
        yield pub


# -- the confirm window alone ------------------------------------------------------------------


def test_window_reports_contiguous_runs_for_any_ack_order() -> None:
    window = ConfirmWindow()
    sent = list(messages(6))
    for tag, message in enumerate(sent, start=1):
        window.sent(message, tag)
    window.confirm(3, multiple=False, ack=True)  # out of order: held back
    assert window.take_confirmed() == []
    window.confirm(2, multiple=True, ack=True)  # 1 and 2, then 3 is contiguous
    assert [m.message_id for m in window.take_confirmed()] == ids(3)
    window.returned(sent[4].message_id)
    window.confirm(6, multiple=True, ack=True)  # the ack of the returned 5th must not count
    assert [m.message_id for m in window.take_confirmed()] == ids(1, start=3)
    failure = window.front_failure()
    assert failure is not None
    assert failure.returned
    assert failure.message is sent[4]
    assert window.confirmed == 4
    assert window.last_position == "key/000003"


def test_window_resends_only_unanswered_messages_after_reconnect() -> None:
    window = ConfirmWindow()
    sent = list(messages(4))
    for tag, message in enumerate(sent, start=1):
        window.sent(message, tag)
    window.confirm(2, multiple=False, ack=True)
    again = window.for_resend()
    assert [entry.message.message_id for entry in again] == ["m-000000", "m-000002", "m-000003"]
    for tag, entry in enumerate(again, start=1):  # a new channel counts from 1 again
        window.resent(entry, tag)
    window.confirm(3, multiple=True, ack=True)
    assert [m.message_id for m in window.take_confirmed()] == ids(4)


# -- publishing on the shared broker -----------------------------------------------------------


def test_ten_thousand_messages_confirmed_in_order_and_received(
    rabbitmq_server: RabbitMQServer, publisher: RabbitMQPublisher
) -> None:
    queue = new_queue()
    publisher.declare_queue(queue)
    publisher.declare_queue(queue)  # idempotent
    confirms = Confirms()

    outcome = publisher.publish(queue, messages(10_000), on_confirmed=confirms)

    assert outcome.confirmed == 10_000
    assert not outcome.stopped
    assert outcome.resent == 0
    assert outcome.last_position == "key/009999"
    assert confirms.ids == ids(10_000)  # every message once, in publish order
    got = drain(rabbitmq_server.url, queue, expected=10_000)
    assert [props.message_id for _, props, _ in got] == ids(10_000)
    for i, (_, props, body) in enumerate(got):
        assert props.delivery_mode == 2
        assert props.content_type == "application/json"
        assert props.type == "factflow.test"
        assert props.headers == {"seq": i, "route": "news", "replay": True}
        assert body == f"body {i}".encode() * 8
    assert queue_state(rabbitmq_server.url, queue) == 0


def test_missing_queue_fails_before_anything_is_sent(
    rabbitmq_server: RabbitMQServer, publisher: RabbitMQPublisher
) -> None:
    queue = new_queue()
    pulled: list[OutgoingMessage] = []

    def source() -> Iterator[OutgoingMessage]:
        for message in messages(10):
            pulled.append(message)
            yield message

    with pytest.raises(QueueNotFoundError) as caught:
        publisher.publish(queue, source())
    assert caught.value.queue == queue
    assert caught.value.confirmed == 0
    assert caught.value.broker == publisher.broker
    assert pulled == []
    with pytest.raises(QueueNotFoundError):
        publisher.check_queue(queue)
    assert queue_state(rabbitmq_server.url, queue) is None  # nothing created either

    # The closed channel is reopened: the same publisher still works.
    publisher.declare_queue(queue)
    publisher.check_queue(queue)
    assert publisher.publish(queue, messages(3)).confirmed == 3


def test_queue_deleted_mid_publish_fails_with_what_was_confirmed(
    rabbitmq_server: RabbitMQServer, publisher: RabbitMQPublisher
) -> None:
    """RabbitMQ returns the first message published after the deletion (mandatory).

    Observed: messages routed before the deletion are acked (and vanish with the queue);
    the broker returns the next one, so the error names the first unconfirmed message.
    """
    queue = new_queue()
    publisher.declare_queue(queue)
    confirms = Confirms()

    def source() -> Iterator[OutgoingMessage]:
        for i, message in enumerate(messages(5_000)):
            if i == 2_000:
                delete_queue(rabbitmq_server.url, queue)
            yield message

    with pytest.raises(QueueError) as caught:
        publisher.publish(queue, source(), on_confirmed=confirms)

    error = caught.value
    assert isinstance(error, UnroutableMessageError)
    assert error.queue == queue
    assert error.confirmed == len(confirms.ids) <= 2_000
    assert confirms.ids == ids(error.confirmed)
    assert error.message_id == ids(1, start=error.confirmed)[0]
    assert queue_state(rabbitmq_server.url, queue) is None
    # The publisher is still usable after the failure.
    publisher.declare_queue(queue)
    assert publisher.publish(queue, messages(5)).confirmed == 5


def test_should_stop_at_a_boundary_then_resume_exactly_once(
    rabbitmq_server: RabbitMQServer, publisher: RabbitMQPublisher
) -> None:
    queue = new_queue()
    publisher.declare_queue(queue)
    everything = list(messages(10_000))
    confirms = Confirms()

    first = publisher.publish(
        queue, everything, on_confirmed=confirms, should_stop=lambda: len(confirms.ids) >= 3_000
    )

    assert first.stopped
    assert 3_000 <= first.confirmed < 10_000
    assert confirms.ids == ids(first.confirmed)
    assert first.last_position == everything[first.confirmed - 1].position
    assert queue_state(rabbitmq_server.url, queue) == first.confirmed  # all sent were confirmed

    second = publisher.publish(queue, everything[first.confirmed :], on_confirmed=confirms)

    assert not second.stopped
    assert first.confirmed + second.confirmed == 10_000
    got = drain(rabbitmq_server.url, queue, expected=10_000)
    assert [props.message_id for _, props, _ in got] == ids(10_000)
    assert confirms.ids == ids(10_000)


def test_rate_limited_publish_completes(
    rabbitmq_server: RabbitMQServer, publisher: RabbitMQPublisher
) -> None:
    queue = new_queue()
    publisher.declare_queue(queue)
    confirms = Confirms()

    outcome = publisher.publish(queue, messages(50), on_confirmed=confirms, rate=100)

    assert outcome.confirmed == 50
    assert confirms.ids == ids(50)
    assert queue_state(rabbitmq_server.url, queue) == 50
    with pytest.raises(InvalidInputError, match="rate must be positive"):
        publisher.publish(queue, messages(1), rate=0)
    assert queue_state(rabbitmq_server.url, queue) == 50


class Interrupted(BaseException):
    """Like Dagster's interrupt: a BaseException raised in the publishing thread."""


def test_interrupt_from_a_callback_leaves_the_publisher_usable(
    rabbitmq_server: RabbitMQServer, publisher: RabbitMQPublisher
) -> None:
    queue = new_queue()
    publisher.declare_queue(queue)
    confirms = Confirms()

    def interrupt() -> bool:
        if len(confirms.ids) >= 500:
            raise Interrupted
        return False

    with pytest.raises(Interrupted):
        publisher.publish(queue, messages(5_000), on_confirmed=confirms, should_stop=interrupt)
    assert confirms.ids == ids(len(confirms.ids))

    again = publisher.publish(queue, messages(10, prefix="again"))
    assert again.confirmed == 10


def test_failing_source_is_raised_after_sent_messages_are_confirmed(
    rabbitmq_server: RabbitMQServer, publisher: RabbitMQPublisher
) -> None:
    queue = new_queue()
    publisher.declare_queue(queue)
    confirms = Confirms()

    def source() -> Iterator[OutgoingMessage]:
        yield from messages(700)
        raise OSError("artefact store went away")

    with pytest.raises(OSError, match="artefact store"):
        publisher.publish(queue, source(), on_confirmed=confirms)
    assert confirms.ids == ids(700)  # everything sent was confirmed and reported first
    assert queue_state(rabbitmq_server.url, queue) == 700


def test_broker_url_and_repr_hide_the_password(rabbitmq_server: RabbitMQServer) -> None:
    url = rabbitmq_server.url.replace("guest:guest@", "guest:s3cr3t-p4ss@")
    publisher = RabbitMQPublisher(url, retry=RetryPolicy(max_retries=0))
    assert publisher.broker == f"amqp://guest@127.0.0.1:{rabbitmq_server.port}/%2F"
    assert "s3cr3t" not in repr(publisher)
    with pytest.raises(BrokerConnectionError) as caught:  # wrong password: refused, not retried
        publisher.check_queue("anything")
    assert "s3cr3t" not in str(caught.value)
    assert publisher.broker in str(caught.value)
    assert "s3cr3t" not in repr(RabbitMQConsumer(url))


# -- consuming ---------------------------------------------------------------------------------


def consume_some(
    url: str, queue: str, count: int, *, settle: Callable[[Delivery], None] | None
) -> list[Delivery]:
    got: list[Delivery] = []
    stop = threading.Event()
    with RabbitMQConsumer(url) as consumer:
        for delivery in consumer.consume([queue], stop=stop, prefetch=8):
            got.append(delivery)
            if settle is not None:
                settle(delivery)
            if len(got) == count:
                stop.set()
    return got


def test_consumer_receives_decoded_messages_and_acks(
    rabbitmq_server: RabbitMQServer, publisher: RabbitMQPublisher
) -> None:
    queue = new_queue()
    RabbitMQConsumer(rabbitmq_server.url).declare_queue(queue)
    publisher.publish(queue, messages(20))

    got = consume_some(rabbitmq_server.url, queue, 20, settle=lambda d: d.ack())

    assert [d.message_id for d in got] == ids(20)
    first = got[0]
    assert first.queue == queue
    assert first.headers == {"seq": 0, "route": "news", "replay": True}
    assert first.content_type == "application/json"
    assert first.type == "factflow.test"
    assert first.body == b"body 0" * 8
    assert not first.redelivered
    with pytest.raises(QueueError):
        first.ack()  # settled twice is a mistake, not a second ack on the wire
    assert queue_state(rabbitmq_server.url, queue) == 0


def test_unacked_message_is_redelivered_after_the_consumer_goes(
    rabbitmq_server: RabbitMQServer, publisher: RabbitMQPublisher
) -> None:
    queue = new_queue()
    publisher.declare_queue(queue)
    publisher.publish(queue, messages(2))

    first = consume_some(rabbitmq_server.url, queue, 1, settle=None)
    nacked = consume_some(rabbitmq_server.url, queue, 1, settle=lambda d: d.nack(requeue=True))
    again = consume_some(rabbitmq_server.url, queue, 2, settle=lambda d: d.ack())

    assert first[0].message_id == "m-000000"
    assert not first[0].redelivered
    assert nacked[0].message_id == "m-000000"
    assert nacked[0].redelivered
    assert sorted(d.message_id for d in again) == ids(2)
    assert next(d for d in again if d.message_id == "m-000000").redelivered
    assert queue_state(rabbitmq_server.url, queue) == 0


def test_stop_event_ends_an_idle_consume(rabbitmq_server: RabbitMQServer) -> None:
    queue = new_queue()
    consumer = RabbitMQConsumer(rabbitmq_server.url)
    consumer.declare_queue(queue)
    stop = threading.Event()
    got: list[Delivery] = []
    worker = threading.Thread(target=lambda: got.extend(consumer.consume([queue], stop=stop)))
    worker.start()
    time.sleep(0.3)
    stop.set()
    worker.join(JOIN_TIMEOUT)
    assert not worker.is_alive()
    assert got == []
    consumer.close()


def test_consume_from_missing_queue_raises(rabbitmq_server: RabbitMQServer) -> None:
    with (
        RabbitMQConsumer(rabbitmq_server.url) as consumer,
        pytest.raises(QueueNotFoundError, match="does not exist"),
    ):
        next(iter(consumer.consume([new_queue()], stop=threading.Event())))


# -- faults: a broker of this module's own, stopped and restarted ------------------------------


@pytest.fixture(scope="module", autouse=True)
def fault_server_boot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Future[RabbitMQServer]]:
    """Boots the fault tests' own broker in the background while the other tests run.

    A boot takes 6-12 s here; overlapping it keeps this file within its time budget.
    """
    server = RabbitMQServer(tmp_path_factory.mktemp("rabbitmq-faults"))

    def boot() -> RabbitMQServer:
        server.start()
        return server

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fault-broker") as pool:
        booting = pool.submit(boot)
        try:
            yield booting
        finally:
            wait([booting])
            server.stop()


@pytest.fixture
def fault_server(fault_server_boot: Future[RabbitMQServer]) -> RabbitMQServer:
    """A broker of this module only, so stopping it leaves the shared one alone."""
    return fault_server_boot.result(timeout=JOIN_TIMEOUT)


def in_background(action: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def consume_across_restart(
    url: str, queue: str, count: int, restarted: threading.Event
) -> list[tuple[str, bool]]:
    """Our consumer: acks 50, holds the 50th unacked until the broker restarted, takes all."""
    seen: list[tuple[str, bool]] = []
    stop = threading.Event()
    with RabbitMQConsumer(url, retry=RIDE_OUT) as consumer:
        for delivery in consumer.consume([queue], stop=stop, prefetch=8):
            seen.append((delivery.message_id, delivery.redelivered))
            if len(seen) == 50:
                restarted.wait(JOIN_TIMEOUT)
            delivery.ack()  # the 50th's ack finds its channel gone: it comes again
            if len({message_id for message_id, _ in seen}) == count:
                stop.set()
    return seen


@pytest.mark.slow
def test_broker_restart_mid_publish_loses_nothing(fault_server: RabbitMQServer) -> None:
    queue, consumed_queue = new_queue(), new_queue()
    window = 64
    restarted = threading.Event()
    with RabbitMQPublisher(fault_server.url, window=window, retry=RIDE_OUT) as publisher:
        publisher.declare_queue(queue)
        publisher.declare_queue(consumed_queue)
        # Seen here: a durable queue declared a second before a fault can be gone after it.
        settled_at = time.monotonic() + 3
        publisher.publish(consumed_queue, messages(100, prefix="c"))
        consumed: list[list[tuple[str, bool]]] = []
        consumer = in_background(
            lambda: consumed.append(
                consume_across_restart(fault_server.url, consumed_queue, 100, restarted)
            )
        )
        restarts: list[threading.Thread] = []
        down = threading.Event()

        def restart() -> None:
            fault_server.stop()
            down.set()
            fault_server.start()
            restarted.set()

        def source() -> Iterator[OutgoingMessage]:
            # The broker goes down mid-publish, whatever the speed: the 3,001st message waits
            # until it is down (and the queues had time to settle), then publishing goes on.
            for number, message in enumerate(messages(20_000)):
                if number == 3_000:
                    time.sleep(max(0.0, settled_at - time.monotonic()))
                    restarts.append(in_background(restart))
                    assert down.wait(JOIN_TIMEOUT)
                yield message

        confirms = Confirms()
        outcome = publisher.publish(queue, source(), on_confirmed=confirms)
        restarts[0].join(JOIN_TIMEOUT)
        consumer.join(JOIN_TIMEOUT)

    assert outcome.confirmed == 20_000
    assert confirms.ids == ids(20_000)  # each message confirmed exactly once, in order
    got = Counter(props.message_id for _, props, _ in drain(fault_server.url, queue))
    assert set(got) == set(ids(20_000))
    # Only messages in flight at the restart can come twice: at most one window of them.
    # Seen here: all 64 of a window were stored by the stopping broker, none acked in time.
    duplicates = sum(got.values()) - len(got)
    assert duplicates <= outcome.resent
    assert duplicates <= window
    # Our consumer reconnected by itself; the message it held unacked came back, redelivered.
    (seen,) = consumed
    assert {message_id for message_id, _ in seen} == set(ids(100, prefix="c"))
    assert seen[49][0] == "c-000049"
    assert ("c-000049", True) in seen[50:]
    assert queue_state(fault_server.url, consumed_queue) == 0


@pytest.mark.slow
def test_retries_exhausted_raise_broker_connection_error(
    fault_server: RabbitMQServer, caplog: pytest.LogCaptureFixture
) -> None:
    password = "Zq8-distinctive-" + uuid.uuid4().hex[:8]
    fault_server.ctl("add_user", "replayer", password)
    fault_server.ctl("set_permissions", "-p", "/", "replayer", ".*", ".*", ".*")
    url = f"amqp://replayer:{password}@127.0.0.1:{fault_server.port}/%2F"
    queue = new_queue()
    tiny = RetryPolicy(max_retries=2, interval_start=0.1, interval_step=0.1, interval_max=0.2)
    caplog.set_level(logging.DEBUG)
    stops: list[threading.Thread] = []

    def stop_once(confirmed: int) -> None:
        if confirmed >= 1_000 and not stops:
            stops.append(in_background(fault_server.stop))

    confirms = Confirms(then=stop_once)
    publisher = RabbitMQPublisher(url, window=64, retry=tiny)
    publisher.declare_queue(queue)
    # A connection the broker closed while the publisher was idle is replaced quietly.
    fault_server.ctl("close_all_connections", "idle connections go")
    assert publisher.publish(queue, messages(10, prefix="warm")).confirmed == 10
    confirms.ids.clear()
    with pytest.raises(BrokerConnectionError) as caught:
        publisher.publish(queue, messages(1_000_000), on_confirmed=confirms)
    stops[0].join(JOIN_TIMEOUT)
    publisher.close()

    assert caught.value.confirmed == len(confirms.ids) >= 1_000
    assert confirms.ids == ids(caught.value.confirmed)
    assert publisher.broker == f"amqp://replayer@127.0.0.1:{fault_server.port}/%2F"
    for text in (str(caught.value), repr(publisher), publisher.broker, caplog.text):
        assert password not in text
    assert publisher.broker in str(caught.value)
    assert not fault_server.running()
