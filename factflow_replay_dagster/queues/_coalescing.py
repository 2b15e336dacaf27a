"""Send pika's buffered frames in one ``send()`` instead of one per frame.

pika's asynchronous transport writes every frame with its own ``send()``: a message is three
frames (method, header, body), so publishing thousands of small messages a second spends
most of its client time in system calls. Between two turns of the ioloop the publisher has
buffered a whole window of frames; joined, they go out in a few large writes. The bytes on
the wire are the same, in the same order.

This replaces the ``_produce`` method of one connection's transport (pika 1.3's plaintext
transport; its private names are checked, and any other transport, such as TLS, is left as
pika made it). Only the replay publisher's connection is changed.
"""

from __future__ import annotations

__all__ = ["coalesce_writes"]

import types
from collections import deque
from typing import Any

#: Frames are joined into writes of at most this many bytes.
_WRITE_BYTES = 256 * 1024
_NEEDED = ("_tx_buffers", "_tx_buffered_byte_count", "_sigint_safe_send", "_sock", "_produce")


def coalesce_writes(connection: Any) -> bool:
    """Make ``connection``'s transport join buffered frames; False if it cannot (left as is)."""
    transport = getattr(connection, "_transport", None)
    if transport is None or type(transport).__name__ != "_AsyncPlaintextTransport":
        return False
    if not all(hasattr(transport, name) for name in _NEEDED):
        return False
    transport._produce = types.MethodType(_produce_joined, transport)
    return True


def _produce_joined(transport: Any) -> None:
    """pika's ``_produce``, sending up to ``_WRITE_BYTES`` of buffered frames per call."""
    buffers: deque[bytes] = transport._tx_buffers
    while buffers:
        taken = [buffers.popleft()]
        size = len(taken[0])
        while buffers and size < _WRITE_BYTES:
            size += len(buffers[0])
            taken.append(buffers.popleft())
        data = taken[0] if len(taken) == 1 else b"".join(taken)
        try:
            sent: int = transport._sigint_safe_send(transport._sock, data)
        except BaseException:
            buffers.appendleft(data)  # nothing was sent: pika's caller decides (retry, abort)
            raise
        if sent < len(data):
            buffers.appendleft(data[sent:])
        transport._tx_buffered_byte_count -= sent
