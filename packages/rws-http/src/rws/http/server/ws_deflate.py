"""permessage-deflate (RFC 7692) for the WebSocket server, with a cap on what it inflates.

wsproto's :class:`~wsproto.extensions.PerMessageDeflate` compresses what the server sends and
is used as it is for that. Its receiving side is replaced here, for three reasons:

- **Decompression bombs.** wsproto inflates whatever payload it is handed in one
  ``decompress()`` call, with no bound: deflate expands up to ~1032:1, so a few hundred KiB
  on the wire become hundreds of MiB in memory before any message size check can run. Here
  every call inflates at most what is left of ``ws_max_message_size`` for the message, plus
  one byte; a message that inflates past the limit fails the connection with **1009**
  (Message Too Big) after at most that many bytes were produced.
- **Control frames between fragments.** RFC 6455 5.4 lets a Ping, Pong or Close arrive
  between the frames of a fragmented message. wsproto takes the control frame for the end of
  the compressed message and reads the following fragments as uncompressed (failing with
  1007); here a control frame leaves the message's state alone.
- **Negotiation.** wsproto accepts unknown and repeated parameters, answers every offer
  (mixing parameters of several offers) and keeps settings of an offer it declined. Here
  the first acceptable offer is taken and the others declined, as RFC 7692 5 asks; an offer
  with an unknown, repeated or invalid parameter is declined (7.1), and a client then
  connects without compression (or with its next offer).

What is accepted: ``server_no_context_takeover`` (honoured: the compressor is reset after
each message), ``client_no_context_takeover`` (echoed; the inflater is reset after each
message, freeing its 32 KiB window between messages), ``server_max_window_bits`` 9-15
(honoured; 8 is declined, zlib cannot compress raw deflate with a 256-byte window) and
``client_max_window_bits`` with or without a value (not echoed: the server inflates with
a 32 KiB window, which decodes whatever window the client uses).
"""

from __future__ import annotations

import re
import zlib

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

__all__ = ["BoundedDeflate", "parse_offer"]

#: The DEFLATE window the server inflates with (RFC 7692 7.1.2.2: the client's default).
_INFLATE_WINDOW_BITS = 15
#: Appended to a message's payload before inflating its end (RFC 7692 7.2.2).
_TAIL = b"\x00\x00\xff\xff"
_WINDOW_BITS = re.compile(r"[89]|1[0-5]")
_FLAGS = frozenset({"server_no_context_takeover", "client_no_context_takeover"})

_Proto = FrameDecoder | FrameProtocol


def parse_offer(offer: str) -> dict[str, str | None] | None:
    """The parameters of one ``permessage-deflate`` offer, or ``None`` to decline it.

    RFC 7692 7.1: a parameter that is unknown, repeated or has an invalid value makes the
    offer unacceptable. Window bits are 8-15 here; the caller declines what it cannot do.
    """
    name, *parts = offer.split(";")
    if name.strip().lower() != "permessage-deflate":
        return None
    params: dict[str, str | None] = {}
    for part in parts:
        key, sep, raw = part.partition("=")
        key = key.strip().lower()
        value = raw.strip() if sep else None
        if value is not None and len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]  # a quoted-string value (RFC 7692 7.1.2.1)
        if key in params:
            return None
        if key in _FLAGS:
            if value is not None:
                return None
        elif key == "server_max_window_bits":
            if value is None or not _WINDOW_BITS.fullmatch(value):
                return None
        elif key == "client_max_window_bits":
            if value is not None and not _WINDOW_BITS.fullmatch(value):
                return None
        else:
            return None
        params[key] = value
    return params


class BoundedDeflate(PerMessageDeflate):
    """Server-side permessage-deflate that inflates at most ``max_message_size`` per message."""

    def __init__(self, max_message_size: int) -> None:
        super().__init__()
        self.max_message_size = max_message_size
        self._accepted = False
        self._inflater: zlib._Decompress | None = None
        #: Whether the message being received is compressed; ``None`` between messages.
        self._message_compressed: bool | None = None
        #: The frame being received is a control frame (never compressed).
        self._control = False
        #: Bytes the message being received has inflated to so far.
        self._inflated = 0

    def __repr__(self) -> str:
        return f"<BoundedDeflate {self.max_message_size} {super().__repr__()}>"

    # -- negotiation ---------------------------------------------------------------------------

    def enabled(self) -> bool:
        return self._accepted

    def accept(self, offer: str) -> bool | str | None:
        if self._accepted:
            return None  # one offer is taken: the first acceptable one (RFC 7692 5)
        params = parse_offer(offer)
        if params is None:
            return None
        server_bits = params.get("server_max_window_bits")
        if server_bits == "8":
            return None
        answer: list[str] = []
        if "server_no_context_takeover" in params:
            self.server_no_context_takeover = True
            answer.append("server_no_context_takeover")
        if "client_no_context_takeover" in params:
            self.client_no_context_takeover = True
            answer.append("client_no_context_takeover")
        if server_bits is not None:
            self.server_max_window_bits = int(server_bits)
            answer.append(f"server_max_window_bits={server_bits}")
        self._accepted = True
        return "; ".join(answer)

    # -- receiving -----------------------------------------------------------------------------

    def frame_inbound_header(
        self, proto: _Proto, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR
            self._control = True
            return RsvBits(False, False, False)
        self._control = False
        if opcode is Opcode.CONTINUATION:
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR  # RSV1 marks a message's first frame only
            if self._message_compressed is None:
                self._message_compressed = False  # wsproto refuses the stray continuation
        else:
            self._message_compressed = rsv.rsv1
            self._inflated = 0
            if rsv.rsv1 and self._inflater is None:
                self._inflater = zlib.decompressobj(-_INFLATE_WINDOW_BITS)
        return RsvBits(True, False, False)

    def frame_inbound_payload_data(self, proto: _Proto, data: bytes) -> bytes | CloseReason:
        if self._control or not self._message_compressed:
            return data
        return self._inflate(data, end=False)

    def frame_inbound_complete(self, proto: _Proto, fin: bool) -> bytes | CloseReason | None:
        if self._control or not fin:
            return None
        compressed = self._message_compressed
        self._message_compressed = None
        if not compressed:
            return None
        result = self._inflate(_TAIL, end=True)
        if self.client_no_context_takeover:
            self._inflater = None
        return result

    def _inflate(self, data: bytes, *, end: bool) -> bytes | CloseReason:
        inflater = self._inflater
        assert inflater is not None
        room = self.max_message_size - self._inflated
        try:
            # Never more than one byte past the limit: that byte is the proof of excess.
            out = inflater.decompress(data, room + 1)
            if end and len(out) <= room:
                out += inflater.flush()  # all input is consumed: only zlib's last bytes
        except zlib.error:
            self._inflater = None
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if self._inflated > self.max_message_size:
            self._inflater = None
            return CloseReason.MESSAGE_TOO_BIG
        return out
