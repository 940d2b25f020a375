#!/usr/bin/env python3
"""Frame-level HTTP/2 conformance checks for a server, in the spirit of h2spec.

Every case carries the id h2spec gives it ("http2/5.1/1", "hpack/6.3/1",
"generic/3.2/1", ...) and its description. What a case sends and what it accepts as a
pass follow h2spec (summerwind/h2spec); the code is our own. See README.md beside this
file for the mapping and for where it differs.

    h2check.py --host 127.0.0.1 --port 8080 [--tls] [--timeout 2] [--exclude FILE]

Prints one line per case (PASS / FAIL / SKIP), then "N passed, N failed, N skipped",
and exits 1 when a case failed (2 on a usage error).
"""

from __future__ import annotations

import argparse
import errno
import socket
import ssl
import struct
import sys
import time

try:
    from hpack import Decoder, Encoder
    from hpack.exceptions import HPACKError
    from hyperframe.exceptions import HyperframeError
    from hyperframe.frame import (
        ContinuationFrame,
        DataFrame,
        Frame,
        GoAwayFrame,
        HeadersFrame,
        PingFrame,
        PriorityFrame,
        PushPromiseFrame,
        RstStreamFrame,
        WindowUpdateFrame,
    )
except ImportError as _e:  # pragma: no cover
    sys.exit(f"h2check: {_e}; install the packages: "
             "pip install -r tests/h2spec/requirements.txt")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
FRAME_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE",
               "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"]

# Error codes (RFC 9113 section 7).
ERROR_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
               "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
               "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
               "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
(NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT,
 STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR) = range(10)

# SETTINGS parameters.
SETTING_NAMES = {1: "HEADER_TABLE_SIZE", 2: "ENABLE_PUSH", 3: "MAX_CONCURRENT_STREAMS",
                 4: "INITIAL_WINDOW_SIZE", 5: "MAX_FRAME_SIZE", 6: "MAX_HEADER_LIST_SIZE"}
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, \
    MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = range(1, 7)

DEFAULT_WINDOW = 65535
DEFAULT_FRAME_SIZE = 16384
# h2spec's --max-header-length default: the length of each dummy header value.
DUMMY_LEN = 4000


def error_name(code: int) -> str:
    return ERROR_NAMES[code] if code < len(ERROR_NAMES) else f"0x{code:x}"


def dummy(n: int) -> bytes:
    return b"x" * n


def hpack_int(value: int, prefix_bits: int, first_byte_flags: int) -> bytes:
    """An HPACK integer (RFC 7541 section 5.1) with the given prefix and pattern bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = [first_byte_flags | limit]
    value -= limit
    while value >= 128:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


# ---------------------------------------------------------------------------------------
# Results


class Failed(Exception):
    """The case did not see what it expects: `expected` and what was `received`."""

    def __init__(self, expected: str, received: str):
        super().__init__(f"expected {expected}; received {received}")
        self.expected = expected
        self.received = received


class Skipped(Exception):
    pass


# ---------------------------------------------------------------------------------------
# Events: what reading the connection can give


class Event:
    """A frame, the connection closing, a timeout, or bytes that are not a frame."""

    FRAME, CLOSED, TIMEOUT, ERROR = "frame", "closed", "timeout", "error"

    def __init__(self, kind, frame=None, ftype=None, flags=0, stream_id=0, length=0,
                 detail=""):
        self.kind = kind
        self.frame = frame
        self.ftype = ftype
        self.flags = flags
        self.stream_id = stream_id
        self.length = length
        self.detail = detail

    def is_type(self, ftype: int) -> bool:
        return self.kind == Event.FRAME and self.ftype == ftype

    def has(self, flag: str) -> bool:
        return self.frame is not None and flag in self.frame.flags

    def __str__(self) -> str:
        if self.kind != Event.FRAME:
            return self.detail
        f = self.frame
        name = FRAME_NAMES[self.ftype] if self.ftype < len(FRAME_NAMES) \
            else f"UNKNOWN(type=0x{self.ftype:02x})"
        parts = [f"stream={self.stream_id}", f"length={self.length}"]
        if self.flags:
            parts.append(f"flags=0x{self.flags:02x}")
        if self.ftype == GOAWAY:
            parts.append(f"last_stream_id={f.last_stream_id}")
            parts.append(f"error={error_name(f.error_code)}")
            if f.additional_data:
                parts.append(f"debug={bytes(f.additional_data[:80])!r}")
        elif self.ftype == RST_STREAM:
            parts.append(f"error={error_name(f.error_code)}")
        elif self.ftype == SETTINGS:
            if "ACK" in f.flags:
                parts.append("ACK")
            for k, v in f.settings.items():
                parts.append(f"{SETTING_NAMES.get(k, hex(k))}={v}")
        elif self.ftype == PING:
            if "ACK" in f.flags:
                parts.append("ACK")
            parts.append(f"data={bytes(f.opaque_data)!r}")
        elif self.ftype == WINDOW_UPDATE:
            parts.append(f"increment={f.window_increment}")
        elif self.ftype in (DATA, HEADERS):
            if "END_STREAM" in f.flags:
                parts.append("END_STREAM")
        if self.detail:
            parts.append(self.detail)
        return f"{name}({', '.join(parts)})"


# ---------------------------------------------------------------------------------------
# Building frames. hyperframe serializes every frame it can express; a frame that is
# illegal on purpose (a stream id hyperframe refuses for its type, a body of a wrong
# length, duplicate settings) is written with raw_frame.


def raw_frame(ftype: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    n = len(payload)
    return struct.pack(">BHBBL", n >> 16, n & 0xFFFF, ftype, flags, stream_id) + payload


def serialize(frame: Frame, stream_id: int) -> bytes:
    """Serialize with hyperframe, then put `stream_id` in the header whatever it is."""
    out = bytearray(frame.serialize())
    out[5:9] = struct.pack(">L", stream_id & 0x7FFFFFFF)
    return bytes(out)


def headers_frame(stream_id, block, end_stream=True, end_headers=True, pad_length=0,
                  priority=None) -> bytes:
    flags = []
    if end_stream:
        flags.append("END_STREAM")
    if end_headers:
        flags.append("END_HEADERS")
    kw = {}
    if pad_length:
        flags.append("PADDED")
        kw["pad_length"] = pad_length
    if priority is not None:
        dep, weight, exclusive = priority
        flags.append("PRIORITY")
        kw.update(depends_on=dep, stream_weight=weight, exclusive=exclusive)
    return serialize(HeadersFrame(1, data=block, flags=flags, **kw), stream_id)


def data_frame(stream_id, data, end_stream=True, pad_length=0) -> bytes:
    flags = ["END_STREAM"] if end_stream else []
    kw = {}
    if pad_length:
        flags.append("PADDED")
        kw["pad_length"] = pad_length
    return serialize(DataFrame(1, data=data, flags=flags, **kw), stream_id)


def continuation_frame(stream_id, block, end_headers=True) -> bytes:
    flags = ["END_HEADERS"] if end_headers else []
    return serialize(ContinuationFrame(1, data=block, flags=flags), stream_id)


def priority_frame(stream_id, dep=0, weight=255, exclusive=False) -> bytes:
    return serialize(PriorityFrame(1, depends_on=dep, stream_weight=weight,
                                   exclusive=exclusive), stream_id)


def rst_stream_frame(stream_id, code) -> bytes:
    return serialize(RstStreamFrame(1, error_code=code), stream_id)


def settings_frame(*settings, ack=False) -> bytes:
    # Raw, so that one parameter can appear twice in one frame (h2spec 6.5.3/1).
    payload = b"".join(struct.pack(">HL", k, v) for k, v in settings)
    return raw_frame(SETTINGS, 0x1 if ack else 0x0, 0, payload)


def ping_frame(data: bytes, ack=False) -> bytes:
    return serialize(PingFrame(0, opaque_data=data, flags=["ACK"] if ack else []), 0)


def goaway_frame(last_stream_id, code, debug=b"") -> bytes:
    return serialize(GoAwayFrame(0, last_stream_id=last_stream_id, error_code=code,
                                 additional_data=debug), 0)


def window_update_frame(stream_id, increment) -> bytes:
    return serialize(WindowUpdateFrame(stream_id, window_increment=increment), stream_id)


def push_promise_frame(stream_id, promised, block, end_headers=True) -> bytes:
    return serialize(PushPromiseFrame(1, promised_stream_id=promised, data=block,
                                      flags=["END_HEADERS"] if end_headers else []),
                     stream_id)


# ---------------------------------------------------------------------------------------
# The connection


class Conn:
    def __init__(self, opts, deadline: float):
        self.opts = opts
        self.timeout = opts.timeout
        self.deadline = deadline
        self.buf = bytearray()
        self.closed = False
        self.server_settings: dict[int, int] = {}
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.decoder.max_header_list_size = 1 << 24
        self.pending_block: bytearray | None = None
        # Like h2spec: give back what the server's DATA uses, once a window runs out.
        self.recv_window = {0: DEFAULT_WINDOW}
        self.sock = self._dial()

    def _dial(self):
        o = self.opts
        try:
            sock = socket.create_connection((o.host, o.port), timeout=self.timeout)
        except OSError as e:
            raise Failed("a TCP connection", f"connect error: {e}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not o.tls:
            return sock
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        try:
            tls = ctx.wrap_socket(sock, server_hostname=o.sni or None)
        except (OSError, ssl.SSLError) as e:
            sock.close()
            raise Failed("a TLS handshake", f"TLS error: {e}") from None
        proto = tls.selected_alpn_protocol()
        if proto != "h2":
            tls.close()
            raise Failed("ALPN to select h2", f"ALPN selected {proto!r}")
        return tls

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- writing -----------------------------------------------------------------------

    def send(self, data: bytes):
        if self.opts.verbose:
            log(f"    send {data[:60]!r}{'...' if len(data) > 60 else ''} ({len(data)} bytes)")
        try:
            self.sock.sendall(data)
        except OSError as e:
            # The peer may have closed already; reading will tell.
            if self.opts.verbose:
                log(f"    send error: {e}")

    def encode(self, headers) -> bytes:
        return self.encoder.encode(headers)

    # -- reading -----------------------------------------------------------------------

    def _remaining(self, started: float) -> float:
        return min(started + self.timeout, self.deadline) - time.monotonic()

    def _recv(self, started: float):
        """Read more bytes into the buffer; an Event if that ended the wait."""
        left = self._remaining(started)
        if left <= 0:
            return Event(Event.TIMEOUT, detail=f"timeout ({self.timeout:g}s without a frame)")
        try:
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return Event(Event.TIMEOUT, detail=f"timeout ({self.timeout:g}s without a frame)")
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            chunk = b""
        except ssl.SSLError as e:
            self.closed = True
            return Event(Event.ERROR, detail=f"TLS error: {e}")
        except OSError as e:
            if e.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
                chunk = b""
            else:
                self.closed = True
                return Event(Event.ERROR, detail=f"read error: {e}")
        if not chunk:
            self.closed = True
            if self.buf:
                return Event(Event.ERROR, detail="connection closed inside a frame, after "
                             f"{bytes(self.buf[:200])!r}")
            return Event(Event.CLOSED, detail="connection closed")
        self.buf += chunk
        return None

    def next_event(self) -> Event:
        """The next frame, or the close, the timeout, or an error."""
        if self.closed and not self.buf:
            return Event(Event.CLOSED, detail="connection closed")
        started = time.monotonic()
        while len(self.buf) < 9:
            ev = self._recv(started)
            if ev:
                return self._log(ev)
        length = int.from_bytes(self.buf[0:3], "big")
        # We never raise SETTINGS_MAX_FRAME_SIZE, so a longer frame is an error (and
        # bytes that are not HTTP/2 at all, e.g. "HTTP/1.1 400", show up here).
        if length > DEFAULT_FRAME_SIZE:
            self.closed = True
            text = bytes(self.buf[:200])
            self.buf.clear()
            return self._log(Event(Event.ERROR, detail=f"not an HTTP/2 frame (length {length}"
                                   f" > {DEFAULT_FRAME_SIZE}): {text!r}"))
        while len(self.buf) < 9 + length:
            ev = self._recv(started)
            if ev:
                return self._log(ev)
        header = bytes(self.buf[:9])
        body = bytes(self.buf[9:9 + length])
        del self.buf[:9 + length]
        ftype, flags = header[3], header[4]
        try:
            frame, _ = Frame.parse_frame_header(memoryview(header))
            frame.parse_body(memoryview(body))
        except HyperframeError as e:
            return self._log(Event(Event.ERROR, detail=f"invalid frame {header!r}+{body[:40]!r}:"
                                   f" {e}"))
        ev = Event(Event.FRAME, frame, ftype, flags, frame.stream_id, length)
        if ftype == DATA:
            self._consume_window(frame.stream_id, length)
        elif ftype in (HEADERS, PUSH_PROMISE, CONTINUATION):
            ev.detail = self._decode(ftype, frame)
        return self._log(ev)

    def _decode(self, ftype, frame) -> str:
        """Decode server header blocks, so that a failure can show e.g. :status."""
        if ftype == CONTINUATION and self.pending_block is None:
            return ""
        if ftype != CONTINUATION:
            self.pending_block = bytearray()
        self.pending_block += frame.data
        if "END_HEADERS" not in frame.flags:
            return ""
        block, self.pending_block = bytes(self.pending_block), None
        try:
            fields = self.decoder.decode(block)
        except HPACKError as e:
            return f"undecodable header block: {e}"
        if ftype == PUSH_PROMISE:
            return "promised " + " ".join(f"{k}={v}" for k, v in fields if k.startswith(":"))
        shown = [f"{k}: {v}" for k, v in fields if k in (":status", "content-type")]
        return ", ".join(shown)

    def _consume_window(self, stream_id, length):
        for sid in (stream_id, 0):
            w = self.recv_window.get(sid, DEFAULT_WINDOW) - length
            if w <= 0:
                incr = DEFAULT_WINDOW - w
                self.send(window_update_frame(sid, incr))
                w += incr
            self.recv_window[sid] = w

    def _log(self, ev: Event) -> Event:
        if self.opts.verbose:
            log(f"    recv {ev}")
        return ev

    # -- the handshake -----------------------------------------------------------------

    def handshake(self):
        """Preface and SETTINGS both ways, as h2spec does: until the server's SETTINGS
        has arrived (and been acknowledged) and our SETTINGS has been acknowledged."""
        self.send(PREFACE)
        self.send(settings_frame((INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)))
        got_settings = got_ack = False
        seen = []
        while not (got_settings and got_ack):
            ev = self.next_event()
            if ev.kind != Event.FRAME:
                seen.append(str(ev))
                raise Failed("the server's SETTINGS and an ACK of ours (handshake)",
                             summarize(seen))
            if ev.ftype == SETTINGS:
                if ev.has("ACK"):
                    got_ack = True
                else:
                    got_settings = True
                    self.server_settings.update(ev.frame.settings)
                    self.send(settings_frame(ack=True))
            else:
                seen.append(str(ev))
        return self

    @property
    def max_frame_size(self) -> int:
        return self.server_settings.get(MAX_FRAME_SIZE, DEFAULT_FRAME_SIZE)


def summarize(seen: list[str], limit: int = 8) -> str:
    if not seen:
        return "nothing"
    if len(seen) > limit:
        seen = seen[:limit - 2] + [f"... ({len(seen) - limit + 1} more)", seen[-1]]
    return ", then ".join(seen)


# ---------------------------------------------------------------------------------------
# Verifications. Each follows the h2spec verifier of the same name: it reads events until
# one passes, and fails on a timeout or when the connection ends without a pass. Like
# h2spec, an error check passes when the connection closes, even after a GOAWAY or
# RST_STREAM with another code; with --exact-codes such a frame fails the case.


def expect_connection_error(c: Conn, *codes):
    """A GOAWAY with one of `codes`, or the connection closing."""
    want = " or ".join(f"GOAWAY({error_name(x)})" for x in codes) + " or connection close"
    seen = []
    while True:
        ev = c.next_event()
        seen.append(str(ev))
        if ev.kind == Event.CLOSED:
            return
        if ev.is_type(GOAWAY) and ev.frame.error_code in codes:
            return
        if ev.kind != Event.FRAME or (c.opts.exact_codes and ev.is_type(GOAWAY)):
            raise Failed(want, summarize(seen))


def expect_stream_error(c: Conn, *codes):
    """A RST_STREAM or a GOAWAY with one of `codes`, or the connection closing."""
    names = [error_name(x) for x in codes]
    want = " or ".join([f"RST_STREAM({n})" for n in names] + [f"GOAWAY({n})" for n in names]
                       + ["connection close"])
    seen = []
    while True:
        ev = c.next_event()
        seen.append(str(ev))
        if ev.kind == Event.CLOSED:
            return
        if (ev.is_type(GOAWAY) or ev.is_type(RST_STREAM)) and ev.frame.error_code in codes:
            return
        if ev.kind != Event.FRAME or (c.opts.exact_codes and
                                      (ev.is_type(GOAWAY) or ev.is_type(RST_STREAM))):
            raise Failed(want, summarize(seen))


def expect_close(c: Conn):
    seen = []
    while True:
        ev = c.next_event()
        seen.append(str(ev))
        if ev.kind == Event.CLOSED:
            return
        if ev.kind != Event.FRAME:
            raise Failed("connection close", summarize(seen))


def expect_stream_close(c: Conn):
    """The end of a response: END_STREAM on DATA or HEADERS, or RST_STREAM(NO_ERROR)."""
    seen = []
    while True:
        ev = c.next_event()
        seen.append(str(ev))
        if (ev.is_type(DATA) or ev.is_type(HEADERS)) and ev.has("END_STREAM"):
            return
        if ev.is_type(RST_STREAM) and ev.frame.error_code == NO_ERROR:
            return
        if ev.kind != Event.FRAME:
            raise Failed("the stream to end (END_STREAM)", summarize(seen))


def wait_for_type(c: Conn, ftype: int):
    """The first frame of `ftype` (h2spec's WaitEventByType), or fail."""
    seen = []
    while True:
        ev = c.next_event()
        seen.append(str(ev))
        if ev.is_type(ftype):
            return ev, seen
        if ev.kind != Event.FRAME:
            raise Failed(f"a {FRAME_NAMES[ftype]} frame", summarize(seen))


def expect_headers(c: Conn, stream_id: int):
    ev, seen = wait_for_type(c, HEADERS)
    if ev.stream_id != stream_id:
        raise Failed(f"HEADERS on stream {stream_id}", summarize(seen))


def expect_settings_ack(c: Conn):
    ev, seen = wait_for_type(c, SETTINGS)
    if not ev.has("ACK"):
        raise Failed("SETTINGS with ACK", summarize(seen))


def expect_ping_ack(c: Conn, data: bytes):
    ev, seen = wait_for_type(c, PING)
    if not (ev.has("ACK") and bytes(ev.frame.opaque_data) == data):
        raise Failed(f"PING with ACK and data {data!r}", summarize(seen))


def expect_ping_ack_or_close(c: Conn, data: bytes):
    want = f"PING with ACK and data {data!r}, or connection close"
    seen = []
    while True:
        ev = c.next_event()
        seen.append(str(ev))
        if ev.kind == Event.CLOSED:
            return
        if ev.is_type(PING) and ev.has("ACK") and bytes(ev.frame.opaque_data) == data:
            return
        if ev.kind != Event.FRAME:
            raise Failed(want, summarize(seen))


def expect_data_length(c: Conn, length: int, stream_id: int):
    """The next DATA frame carries exactly `length` bytes (a flow-control check)."""
    ev, seen = wait_for_type(c, DATA)
    if ev.length != length:
        raise Failed(f"DATA(stream={stream_id}, length={length})", summarize(seen))


# ---------------------------------------------------------------------------------------
# The cases


class Case:
    def __init__(self, cid, desc, fn, strict=False):
        self.id, self.desc, self.fn, self.strict = cid, desc, fn, strict


CASES: list[Case] = []


def case(cid: str, desc: str, strict: bool = False):
    def register(fn):
        CASES.append(Case(cid, desc, fn, strict))
        return fn
    return register


class T:
    """What a case works with: the options, connections, and the request headers."""

    def __init__(self, opts, deadline):
        self.opts = opts
        self.deadline = deadline
        self.conns: list[Conn] = []

    def dial(self) -> Conn:
        c = Conn(self.opts, self.deadline)
        self.conns.append(c)
        return c

    def connect(self) -> Conn:
        """A connection after the handshake."""
        return self.dial().handshake()

    def headers(self, method="GET"):
        o = self.opts
        scheme = "https" if o.tls else "http"
        default = 443 if o.tls else 80
        authority = o.host if o.port == default else f"{o.host}:{o.port}"
        return [(":method", method), (":scheme", scheme), (":path", o.path),
                (":authority", authority)]

    def dummy_headers(self, n):
        return [(f"x-dummy{i}", dummy(DUMMY_LEN)) for i in range(n)]

    def server_data_length(self) -> int:
        """The body length of GET path, over a connection of its own."""
        c = self.connect()
        c.send(headers_frame(1, c.encode(self.headers())))
        total = 0
        while True:
            ev = c.next_event()
            if ev.is_type(DATA) and ev.stream_id == 1:
                total += ev.length
            if (ev.is_type(DATA) or ev.is_type(HEADERS)) and ev.stream_id == 1 \
                    and ev.has("END_STREAM"):
                c.close()
                return total
            if ev.kind != Event.FRAME:
                raise Failed("a whole response to measure its body (server data length)",
                             str(ev))

    def close(self):
        for c in self.conns:
            c.close()


# -- generic: what a server must accept -------------------------------------------------

@case("generic/1/1", "Sends a client connection preface")
def _(t):
    c = t.dial()
    c.send(PREFACE)
    c.send(settings_frame((INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)))
    ev = c.next_event()
    if not (ev.is_type(SETTINGS) and not ev.has("ACK")):
        raise Failed("SETTINGS without ACK as the first frame", str(ev))


@case("generic/2/1", "Sends a PRIORITY frame on idle stream")
def _(t):
    c = t.connect()
    c.send(priority_frame(1, 0, 255))
    c.send(ping_frame(bytes(8)))
    expect_ping_ack(c, bytes(8))


@case("generic/2/2", "Sends a WINDOW_UPDATE frame on half-closed (remote) stream")
def _(t):
    c = t.connect()
    c.send(settings_frame((INITIAL_WINDOW_SIZE, 0)))
    c.send(headers_frame(1, c.encode(t.headers())))
    c.send(window_update_frame(1, 1))
    wait_for_type(c, DATA)


@case("generic/2/3", "Sends a PRIORITY frame on half-closed (remote) stream")
def _(t):
    c = t.connect()
    c.send(settings_frame((INITIAL_WINDOW_SIZE, 0)))
    c.send(headers_frame(1, c.encode(t.headers())))
    c.send(priority_frame(1, 0, 255))
    c.send(window_update_frame(1, 1))
    wait_for_type(c, DATA)


@case("generic/2/4", "Sends a RST_STREAM frame on half-closed (remote) stream")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers())))
    c.send(rst_stream_frame(1, CANCEL))
    c.send(ping_frame(bytes(8)))
    expect_ping_ack_or_close(c, bytes(8))


@case("generic/2/5", "Sends a PRIORITY frame on closed stream")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers())))
    expect_stream_close(c)
    c.send(priority_frame(1, 0, 255))
    c.send(ping_frame(bytes(8)))
    expect_ping_ack(c, bytes(8))


@case("generic/3.1/1", "Sends a DATA frame")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST")), end_stream=False))
    c.send(data_frame(1, b"test"))
    expect_headers(c, 1)


@case("generic/3.1/2", "Sends multiple DATA frames")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST")), end_stream=False))
    c.send(data_frame(1, b"test", end_stream=False))
    c.send(data_frame(1, b"test"))
    expect_headers(c, 1)


@case("generic/3.1/3", "Sends a DATA frame with padding")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST")), end_stream=False))
    c.send(data_frame(1, b"test", pad_length=5))
    expect_headers(c, 1)


@case("generic/3.2/1", "Sends a HEADERS frame")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers())))
    expect_headers(c, 1)


@case("generic/3.2/2", "Sends a HEADERS frame with padding")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), pad_length=8))
    expect_headers(c, 1)


@case("generic/3.2/3", "Sends a HEADERS frame with priority")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), priority=(0, 255, False)))
    expect_headers(c, 1)


@case("generic/3.3/1", "Sends a PRIORITY frame with priority 1")
def _(t):
    c = t.connect()
    c.send(priority_frame(1, 0, 0))
    c.send(headers_frame(1, c.encode(t.headers())))
    expect_headers(c, 1)


@case("generic/3.3/2", "Sends a PRIORITY frame with priority 256")
def _(t):
    c = t.connect()
    c.send(priority_frame(1, 0, 255))
    c.send(headers_frame(1, c.encode(t.headers())))
    expect_headers(c, 1)


@case("generic/3.3/3", "Sends a PRIORITY frame with stream dependency")
def _(t):
    c = t.connect()
    c.send(priority_frame(3, 1, 0))
    c.send(headers_frame(1, c.encode(t.headers())))
    expect_headers(c, 1)


@case("generic/3.3/4", "Sends a PRIORITY frame with exclusive")
def _(t):
    c = t.connect()
    c.send(priority_frame(1, 0, 0, exclusive=True))
    c.send(headers_frame(1, c.encode(t.headers())))
    expect_headers(c, 1)


@case("generic/3.3/5",
      "Sends a PRIORITY frame for an idle stream, then send a HEADER frame for a lower stream ID")
def _(t):
    c = t.connect()
    c.send(priority_frame(3, 0, 255))
    c.send(headers_frame(1, c.encode(t.headers())))
    expect_headers(c, 1)


@case("generic/3.4/1", "Sends a RST_STREAM frame")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), end_stream=False))
    c.send(rst_stream_frame(1, CANCEL))
    c.send(ping_frame(bytes(8)))
    expect_ping_ack_or_close(c, bytes(8))


@case("generic/3.5/1", "Sends a SETTINGS frame")
def _(t):
    c = t.connect()
    c.send(settings_frame((HEADER_TABLE_SIZE, 4096), (ENABLE_PUSH, 1),
                          (MAX_CONCURRENT_STREAMS, 100), (INITIAL_WINDOW_SIZE, 65535),
                          (MAX_FRAME_SIZE, 16384), (MAX_HEADER_LIST_SIZE, 100)))
    expect_settings_ack(c)


@case("generic/3.7/1", "Sends a PING frame")
def _(t):
    c = t.connect()
    c.send(ping_frame(b"h2spec\0\0"))
    expect_ping_ack(c, b"h2spec\0\0")


@case("generic/3.8/1", "Sends a GOAWAY frame")
def _(t):
    c = t.connect()
    c.send(goaway_frame(0, NO_ERROR, b"h2spec"))
    c.send(ping_frame(b"h2spec\0\0"))
    expect_ping_ack_or_close(c, b"h2spec\0\0")


@case("generic/3.9/1", "Sends a WINDOW_UPDATE frame with stream ID 0")
def _(t):
    c = t.connect()
    c.send(window_update_frame(0, 1))
    c.send(ping_frame(bytes(8)))
    expect_ping_ack(c, bytes(8))


@case("generic/3.9/2", "Sends a WINDOW_UPDATE frame with stream ID 1")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers())))
    c.send(window_update_frame(1, 1))
    expect_headers(c, 1)


@case("generic/3.10/1", "Sends a CONTINUATION frame")
def _(t):
    c = t.connect()
    block = c.encode(t.headers())
    c.send(headers_frame(1, block[:5], end_headers=False))
    c.send(continuation_frame(1, block[5:]))
    expect_headers(c, 1)


@case("generic/3.10/2", "Sends multiple CONTINUATION frames")
def _(t):
    c = t.connect()
    block = c.encode(t.headers())
    c.send(headers_frame(1, block[:5], end_headers=False))
    c.send(continuation_frame(1, block[5:10], end_headers=False))
    c.send(continuation_frame(1, block[10:]))
    expect_headers(c, 1)


@case("generic/4/1", "Sends a GET request")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers())))
    expect_headers(c, 1)


@case("generic/4/2", "Sends a HEAD request")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("HEAD"))))
    expect_headers(c, 1)


@case("generic/4/3", "Sends a POST request")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST")), end_stream=False))
    c.send(data_frame(1, b"test"))
    expect_headers(c, 1)


@case("generic/4/4", "Sends a POST request with trailers")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST") + [("trailer", "x-test")]),
                         end_stream=False))
    c.send(data_frame(1, b"test", end_stream=False))
    c.send(headers_frame(1, c.encode([("x-test", "ok")])))
    expect_headers(c, 1)


def hpack_accepts(rep: bytes):
    """A request whose header block ends with the representation `rep`; it must be
    answered."""
    def run(t):
        c = t.connect()
        c.send(headers_frame(1, c.encode(t.headers()) + rep))
        expect_headers(c, 1)
    return run


# "user-agent: h2spec" (user-agent is static entry 58) and "x-test: h2spec", each in the
# representation the description names (RFC 7541 section 6.2), the strings plain or
# Huffman-coded. h2spec's own bytes for these cases do not always match their
# descriptions (see README.md); these do.
H2SPEC_PLAIN = b"\x06h2spec"
H2SPEC_HUFFMAN = b"\x84\x9c\x48\xac\xa4"
XTEST_PLAIN = b"\x06x-test"
XTEST_HUFFMAN = b"\x85\xf2\xb2\x4a\x84\xff"
UA_INDEX = 58
INCREMENTAL = hpack_int(UA_INDEX, 6, 0x40)     # 0x40 pattern, 6-bit index
WITHOUT = hpack_int(UA_INDEX, 4, 0x00)         # 0x00 pattern, 4-bit index
NEVER = hpack_int(UA_INDEX, 4, 0x10)           # 0x10 pattern, 4-bit index

for _cid, _desc, _rep in [
    ("1", "Sends a indexed header field representation", b"\xba"),  # index 58
    ("2", "Sends a literal header field with incremental indexing - indexed name",
     INCREMENTAL + H2SPEC_PLAIN),
    ("3", "Sends a literal header field with incremental indexing - indexed name "
          "(with Huffman coding)", INCREMENTAL + H2SPEC_HUFFMAN),
    ("4", "Sends a literal header field with incremental indexing - new name",
     b"\x40" + XTEST_PLAIN + H2SPEC_PLAIN),
    ("5", "Sends a literal header field with incremental indexing - new name "
          "(with Huffman coding)", b"\x40" + XTEST_HUFFMAN + H2SPEC_HUFFMAN),
    ("6", "Sends a literal header field without indexing - indexed name",
     WITHOUT + H2SPEC_PLAIN),
    ("7", "Sends a literal header field without indexing - indexed name "
          "(with Huffman coding)", WITHOUT + H2SPEC_HUFFMAN),
    ("8", "Sends a literal header field without indexing - new name",
     b"\x00" + XTEST_PLAIN + H2SPEC_PLAIN),
    ("9", "Sends a literal header field without indexing - new name (huffman encoded)",
     b"\x00" + XTEST_HUFFMAN + H2SPEC_HUFFMAN),
    ("10", "Sends a literal header field never indexed - indexed name",
     NEVER + H2SPEC_PLAIN),
    ("11", "Sends a literal header field never indexed - indexed name (huffman encoded)",
     NEVER + H2SPEC_HUFFMAN),
    ("12", "Sends a literal header field never indexed - new name",
     b"\x10" + XTEST_PLAIN + H2SPEC_PLAIN),
    ("13", "Sends a literal header field never indexed - new name (huffman encoded)",
     b"\x10" + XTEST_HUFFMAN + H2SPEC_HUFFMAN),
]:
    case(f"generic/5/{_cid}", _desc)(hpack_accepts(_rep))


@case("generic/5/14", "Sends a dynamic table size update")
def _(t):
    c = t.connect()
    c.encoder.header_table_size = 128  # the next block starts with the size update
    block = c.encode(t.headers())
    c.send(headers_frame(1, block))
    expect_headers(c, 1)


@case("generic/5/15", "Sends multiple dynamic table size update")
def _(t):
    c = t.connect()
    # Two updates at the start of a block: to 128, then back to 4096.
    update = hpack_int(128, 5, 0x20) + hpack_int(4096, 5, 0x20)
    c.send(headers_frame(1, update + c.encode(t.headers())))
    expect_headers(c, 1)


# -- http2 ------------------------------------------------------------------------------

@case("http2/3.5/1", "Sends client connection preface")
def _(t):
    c = t.dial()
    c.send(PREFACE)
    c.send(settings_frame((INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)))
    ev = c.next_event()
    if not (ev.is_type(SETTINGS) and not ev.has("ACK")):
        raise Failed("SETTINGS without ACK as the first frame", str(ev))


@case("http2/3.5/2", "Sends invalid connection preface")
def _(t):
    c = t.dial()
    c.send(b"INVALID CONNECTION PREFACE\r\n\r\n")
    expect_connection_error(c, PROTOCOL_ERROR)


UNKNOWN_FRAME = raw_frame(0x16, 0x00, 0, bytes(8))


@case("http2/4.1/1", "Sends a frame with unknown type")
def _(t):
    c = t.connect()
    c.send(UNKNOWN_FRAME)
    c.send(ping_frame(bytes(8)))
    expect_ping_ack(c, bytes(8))


@case("http2/4.1/2", "Sends a frame with undefined flag")
def _(t):
    c = t.connect()
    c.send(raw_frame(PING, 0x16, 0, bytes(8)))  # 0x16: no ACK bit, only undefined bits
    wait_for_type(c, PING)


@case("http2/4.1/3", "Sends a frame with reserved field bit")
def _(t):
    c = t.connect()
    c.send(raw_frame(PING, 0x16, 0x80000000, bytes(8)))  # R bit set, stream 0
    wait_for_type(c, PING)


@case("http2/4.2/1", "Sends a DATA frame with 2^14 octets in length")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST")), end_stream=False))
    c.send(data_frame(1, dummy(c.max_frame_size)))
    expect_headers(c, 1)


@case("http2/4.2/2", "Sends a large size DATA frame that exceeds the SETTINGS_MAX_FRAME_SIZE")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST")), end_stream=False))
    c.send(data_frame(1, dummy(c.max_frame_size + 1)))
    expect_stream_error(c, FRAME_SIZE_ERROR)


@case("http2/4.2/3",
      "Sends a large size HEADERS frame that exceeds the SETTINGS_MAX_FRAME_SIZE")
def _(t):
    c = t.connect()
    fields = t.headers()
    n = 5  # h2spec's count; more if the server allows larger frames
    while True:
        block = Encoder().encode(fields + t.dummy_headers(n))
        if len(block) > c.max_frame_size:
            break
        n += 1
    c.send(headers_frame(1, c.encode(fields + t.dummy_headers(n))))
    expect_connection_error(c, FRAME_SIZE_ERROR)


@case("http2/4.3/1", "Sends invalid header block fragment")
def _(t):
    c = t.connect()
    # A literal with incremental indexing (0x40) and nothing after it.
    c.send(raw_frame(HEADERS, 0x05, 1, b"\x40"))
    expect_connection_error(c, COMPRESSION_ERROR)


@case("http2/4.3/2", "Sends a PRIORITY frame while sending the header blocks")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), end_stream=False, end_headers=False))
    c.send(priority_frame(1, 0, 255))
    c.send(continuation_frame(1, c.encode(t.dummy_headers(1))))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/4.3/3",
      "Sends a HEADERS frame to another stream while sending the header blocks")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), end_stream=False, end_headers=False))
    c.send(headers_frame(3, c.encode(t.headers())))
    c.send(continuation_frame(1, c.encode(t.dummy_headers(1))))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/5.1/1", "idle: Sends a DATA frame")
def _(t):
    c = t.connect()
    c.send(data_frame(1, b"test"))
    expect_stream_error(c, PROTOCOL_ERROR, STREAM_CLOSED)


@case("http2/5.1/2", "idle: Sends a RST_STREAM frame")
def _(t):
    c = t.connect()
    c.send(rst_stream_frame(1, CANCEL))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/5.1/3", "idle: Sends a WINDOW_UPDATE frame")
def _(t):
    c = t.connect()
    c.send(window_update_frame(1, 100))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/5.1/4", "idle: Sends a CONTINUATION frame")
def _(t):
    c = t.connect()
    c.send(continuation_frame(1, c.encode(t.headers())))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/5.1/5", "half closed (remote): Sends a DATA frame")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers())))
    c.send(data_frame(1, b"test"))
    expect_stream_error(c, STREAM_CLOSED)


@case("http2/5.1/6", "half closed (remote): Sends a HEADERS frame")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers())))
    c.send(headers_frame(1, c.encode(t.headers())))
    expect_stream_error(c, STREAM_CLOSED)


@case("http2/5.1/7", "half closed (remote): Sends a CONTINUATION frame")
def _(t):
    c = t.connect()
    block = c.encode(t.headers())
    c.send(headers_frame(1, block))
    c.send(continuation_frame(1, block))
    expect_stream_error(c, STREAM_CLOSED, PROTOCOL_ERROR)


@case("http2/5.1/8", "closed: Sends a DATA frame after sending RST_STREAM frame")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), end_stream=False))
    c.send(rst_stream_frame(1, CANCEL))
    c.send(data_frame(1, b"test"))
    expect_stream_error(c, STREAM_CLOSED)


@case("http2/5.1/9", "closed: Sends a HEADERS frame after sending RST_STREAM frame")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), end_stream=False))
    c.send(rst_stream_frame(1, CANCEL))
    c.send(headers_frame(1, c.encode(t.headers())))
    expect_stream_error(c, STREAM_CLOSED)


@case("http2/5.1/10", "closed: Sends a CONTINUATION frame after sending RST_STREAM frame")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), end_stream=False))
    c.send(rst_stream_frame(1, CANCEL))
    c.send(continuation_frame(1, c.encode(t.dummy_headers(1))))
    expect_stream_error(c, STREAM_CLOSED, PROTOCOL_ERROR)


@case("http2/5.1/11", "closed: Sends a DATA frame")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers())))
    expect_stream_close(c)
    c.send(data_frame(1, b"test"))
    expect_stream_error(c, STREAM_CLOSED)


@case("http2/5.1/12", "closed: Sends a HEADERS frame")
def _(t):
    c = t.connect()
    frame = headers_frame(1, c.encode(t.headers()))
    c.send(frame)
    expect_stream_close(c)
    c.send(frame)  # the same frame again, as h2spec does
    expect_connection_error(c, STREAM_CLOSED)


@case("http2/5.1/13", "closed: Sends a CONTINUATION frame")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers())))
    expect_stream_close(c)
    c.send(continuation_frame(1, c.encode(t.dummy_headers(1))))
    expect_connection_error(c, STREAM_CLOSED, PROTOCOL_ERROR)


@case("http2/5.1.1/1", "Sends even-numbered stream identifier")
def _(t):
    c = t.connect()
    c.send(headers_frame(2, c.encode(t.headers())))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/5.1.1/2", "Sends stream identifier that is numerically smaller than previous")
def _(t):
    c = t.connect()
    c.send(headers_frame(5, c.encode(t.headers())))
    c.send(headers_frame(3, c.encode(t.headers())))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/5.1.2/1",
      "Sends HEADERS frames that causes their advertised concurrent stream limit to be exceeded")
def _(t):
    c = t.connect()
    limit = c.server_settings.get(MAX_CONCURRENT_STREAMS)
    if limit is None:
        raise Skipped("the server sets no SETTINGS_MAX_CONCURRENT_STREAMS")
    # A zero window keeps every answered stream open (its DATA cannot be sent).
    c.send(settings_frame((INITIAL_WINDOW_SIZE, 0)))
    block = c.encode(t.headers())
    c.send(b"".join(headers_frame(1 + 2 * i, block) for i in range(limit + 1)))
    expect_stream_error(c, PROTOCOL_ERROR, REFUSED_STREAM)


@case("http2/5.3.1/1", "Sends HEADERS frame that depends on itself")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), priority=(1, 255, False)))
    expect_stream_error(c, PROTOCOL_ERROR)


@case("http2/5.3.1/2", "Sends PRIORITY frame that depend on itself")
def _(t):
    c = t.connect()
    c.send(priority_frame(1, 1, 255))
    expect_stream_error(c, PROTOCOL_ERROR)


INVALID_PING = raw_frame(PING, 0x00, 3, bytes(8))  # PING on stream 3


@case("http2/5.4.1/1", "Sends an invalid PING frame for connection close")
def _(t):
    c = t.connect()
    c.send(INVALID_PING)
    expect_close(c)


@case("http2/5.4.1/2", "Sends an invalid PING frame to receive GOAWAY frame", strict=True)
def _(t):
    c = t.connect()
    c.send(INVALID_PING)
    wait_for_type(c, GOAWAY)


@case("http2/5.5/1", "Sends an unknown extension frame")
def _(t):
    c = t.connect()
    c.send(UNKNOWN_FRAME)
    c.send(ping_frame(bytes(8)))
    expect_ping_ack(c, bytes(8))


@case("http2/5.5/2", "Sends an unknown extension frame in the middle of a header block")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), end_headers=False))
    c.send(UNKNOWN_FRAME)
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.1/1", "Sends a DATA frame with 0x0 stream identifier")
def _(t):
    c = t.connect()
    c.send(data_frame(0, b"test"))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.1/2",
      "Sends a DATA frame on the stream that is not in \"open\" or \"half-closed (local)\" state")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST"))))
    c.send(data_frame(1, b"test"))
    expect_stream_error(c, STREAM_CLOSED)


@case("http2/6.1/3", "Sends a DATA frame with invalid pad length")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST") + [("content-length", "4")]),
                         end_stream=False))
    # PADDED, END_STREAM; pad length 6 but only 4 bytes follow it.
    c.send(raw_frame(DATA, 0x09, 1, b"\x06Test"))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.2/1", "Sends a HEADERS frame without the END_HEADERS flag, and a PRIORITY frame")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), end_stream=False, end_headers=False))
    c.send(priority_frame(1, 0, 255))
    c.send(continuation_frame(1, c.encode(t.dummy_headers(1))))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.2/2", "Sends a HEADERS frame to another stream while sending a HEADERS frame")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), end_stream=False, end_headers=False))
    c.send(headers_frame(3, c.encode(t.headers())))
    c.send(continuation_frame(1, c.encode(t.dummy_headers(1))))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.2/3", "Sends a HEADERS frame with 0x0 stream identifier")
def _(t):
    c = t.connect()
    c.send(headers_frame(0, c.encode(t.headers())))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.2/4", "Sends a HEADERS frame with invalid pad length")
def _(t):
    c = t.connect()
    block = c.encode(t.headers())
    # PADDED, END_STREAM, END_HEADERS; the pad length is longer than what follows it.
    c.send(raw_frame(HEADERS, 0x0D, 1, bytes([len(block) + 2]) + block))
    expect_stream_error(c, PROTOCOL_ERROR)


@case("http2/6.3/1", "Sends a PRIORITY frame with 0x0 stream identifier")
def _(t):
    c = t.connect()
    c.send(priority_frame(0, 0, 255))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.3/2", "Sends a PRIORITY frame with a length other than 5 octets")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers())))
    c.send(raw_frame(PRIORITY, 0, 1, b"\x80\x00\x00\x01"))
    expect_stream_error(c, FRAME_SIZE_ERROR)


@case("http2/6.4/1", "Sends a RST_STREAM frame with 0x0 stream identifier")
def _(t):
    c = t.connect()
    c.send(rst_stream_frame(0, CANCEL))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.4/2", "Sends a RST_STREAM frame on a idle stream")
def _(t):
    c = t.connect()
    c.send(rst_stream_frame(1, CANCEL))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.4/3", "Sends a RST_STREAM frame with a length other than 4 octets")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers())))
    c.send(raw_frame(RST_STREAM, 0, 1, b"\x00\x00\x00"))
    expect_stream_error(c, FRAME_SIZE_ERROR)


@case("http2/6.5/1", "Sends a SETTINGS frame with ACK flag and payload")
def _(t):
    c = t.connect()
    c.send(raw_frame(SETTINGS, 0x1, 0, b"\x00"))
    expect_connection_error(c, FRAME_SIZE_ERROR)


@case("http2/6.5/2", "Sends a SETTINGS frame with a stream identifier other than 0x0")
def _(t):
    c = t.connect()
    c.send(raw_frame(SETTINGS, 0, 1, struct.pack(">HL", MAX_CONCURRENT_STREAMS, 100)))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.5/3", "Sends a SETTINGS frame with a length other than a multiple of 6 octets")
def _(t):
    c = t.connect()
    c.send(raw_frame(SETTINGS, 0, 0, b"\x00\x03\x00"))
    expect_stream_error(c, PROTOCOL_ERROR, FRAME_SIZE_ERROR)


@case("http2/6.5.2/1", "SETTINGS_ENABLE_PUSH (0x2): Sends the value other than 0 or 1")
def _(t):
    c = t.connect()
    c.send(settings_frame((ENABLE_PUSH, 2)))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.5.2/2", "SETTINGS_INITIAL_WINDOW_SIZE (0x4): Sends the value above the "
      "maximum flow control window size")
def _(t):
    c = t.connect()
    c.send(settings_frame((INITIAL_WINDOW_SIZE, 2**31)))
    expect_connection_error(c, FLOW_CONTROL_ERROR)


@case("http2/6.5.2/3", "SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value below the initial value")
def _(t):
    c = t.connect()
    c.send(settings_frame((MAX_FRAME_SIZE, 16383)))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.5.2/4", "SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value above the maximum "
      "allowed frame size")
def _(t):
    c = t.connect()
    c.send(settings_frame((MAX_FRAME_SIZE, 2**24)))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.5.2/5", "Sends a SETTINGS frame with unknown identifier")
def _(t):
    c = t.connect()
    c.send(settings_frame((0xFF, 1)))
    c.send(ping_frame(bytes(8)))
    expect_ping_ack(c, bytes(8))


@case("http2/6.5.3/1", "Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE")
def _(t):
    if t.server_data_length() < 1:
        raise Skipped("the response to GET has no body")
    c = t.connect()
    c.send(settings_frame((INITIAL_WINDOW_SIZE, 100), (INITIAL_WINDOW_SIZE, 1)))
    expect_settings_ack(c)
    c.send(headers_frame(1, c.encode(t.headers())))
    expect_data_length(c, 1, 1)


@case("http2/6.5.3/2", "Sends a SETTINGS frame without ACK flag")
def _(t):
    c = t.connect()
    c.send(settings_frame((ENABLE_PUSH, 0)))
    expect_settings_ack(c)


@case("http2/6.7/1", "Sends a PING frame")
def _(t):
    c = t.connect()
    c.send(ping_frame(b"h2spec\0\0"))
    expect_ping_ack(c, b"h2spec\0\0")


@case("http2/6.7/2", "Sends a PING frame with ACK")
def _(t):
    c = t.connect()
    c.send(ping_frame(b"invalid\0", ack=True))
    c.send(ping_frame(b"h2spec\0\0"))
    expect_ping_ack(c, b"h2spec\0\0")


@case("http2/6.7/3", "Sends a PING frame with a stream identifier field value other than 0x0")
def _(t):
    c = t.connect()
    c.send(raw_frame(PING, 0, 1, bytes(8)))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.7/4", "Sends a PING frame with a length field value other than 8")
def _(t):
    c = t.connect()
    c.send(raw_frame(PING, 0, 0, bytes(6)))
    expect_connection_error(c, FRAME_SIZE_ERROR)


@case("http2/6.8/1", "Sends a GOAWAY frame with a stream identifier other than 0x0")
def _(t):
    c = t.connect()
    c.send(raw_frame(GOAWAY, 0, 1, bytes(8)))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.9/1", "Sends a WINDOW_UPDATE frame with a flow control window increment of 0")
def _(t):
    c = t.connect()
    c.send(window_update_frame(0, 0))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.9/2",
      "Sends a WINDOW_UPDATE frame with a flow control window increment of 0 on a stream")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), end_stream=False))
    c.send(window_update_frame(1, 0))
    expect_stream_error(c, PROTOCOL_ERROR)


@case("http2/6.9/3", "Sends a WINDOW_UPDATE frame with a length other than 4 octets")
def _(t):
    c = t.connect()
    c.send(raw_frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"))
    expect_connection_error(c, FRAME_SIZE_ERROR)


@case("http2/6.9.1/1",
      "Sends SETTINGS frame to set the initial window size to 1 and sends HEADERS frame")
def _(t):
    if t.server_data_length() < 1:
        raise Skipped("the response to GET has no body")
    c = t.connect()
    c.send(settings_frame((INITIAL_WINDOW_SIZE, 1)))
    expect_settings_ack(c)
    c.send(headers_frame(1, c.encode(t.headers())))
    expect_data_length(c, 1, 1)


@case("http2/6.9.1/2", "Sends multiple WINDOW_UPDATE frames increasing the flow control "
      "window to above 2^31-1")
def _(t):
    c = t.connect()
    c.send(window_update_frame(0, 2**31 - 1))
    c.send(window_update_frame(0, 2**31 - 1))
    ev, seen = wait_for_type(c, GOAWAY)
    if ev.frame.error_code != FLOW_CONTROL_ERROR:
        raise Failed("GOAWAY(FLOW_CONTROL_ERROR)", summarize(seen))


@case("http2/6.9.1/3", "Sends multiple WINDOW_UPDATE frames increasing the flow control "
      "window to above 2^31-1 on a stream")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), end_stream=False))
    c.send(window_update_frame(1, 2**31 - 1))
    c.send(window_update_frame(1, 2**31 - 1))
    ev, seen = wait_for_type(c, RST_STREAM)
    if not (ev.stream_id == 1 and ev.frame.error_code == FLOW_CONTROL_ERROR):
        raise Failed("RST_STREAM(stream=1, FLOW_CONTROL_ERROR)", summarize(seen))


@case("http2/6.9.2/1", "Changes SETTINGS_INITIAL_WINDOW_SIZE after sending HEADERS frame")
def _(t):
    if t.server_data_length() < 1:
        raise Skipped("the response to GET has no body")
    c = t.connect()
    c.send(settings_frame((INITIAL_WINDOW_SIZE, 0)))
    expect_settings_ack(c)
    c.send(headers_frame(1, c.encode(t.headers())))
    c.send(settings_frame((INITIAL_WINDOW_SIZE, 1)))
    expect_data_length(c, 1, 1)


@case("http2/6.9.2/2", "Sends a SETTINGS frame for window size to be negative")
def _(t):
    if t.server_data_length() < 5:
        raise Skipped("the response to GET has a body shorter than 5 bytes")
    c = t.connect()
    c.send(settings_frame((INITIAL_WINDOW_SIZE, 3)))
    expect_settings_ack(c)
    c.send(headers_frame(1, c.encode(t.headers())))
    wait_for_type(c, DATA)
    # The stream's window goes from 0 to -1, then a WINDOW_UPDATE of 2 leaves 1.
    c.send(settings_frame((INITIAL_WINDOW_SIZE, 2)))
    expect_settings_ack(c)
    c.send(window_update_frame(1, 2))
    expect_data_length(c, 1, 1)


@case("http2/6.9.2/3", "Sends a SETTINGS_INITIAL_WINDOW_SIZE settings with an exceeded "
      "maximum window size value")
def _(t):
    c = t.connect()
    c.send(raw_frame(SETTINGS, 0, 0, b"\x00\x04\x80\x00\x00\x00"))
    expect_connection_error(c, FLOW_CONTROL_ERROR)


@case("http2/6.10/1", "Sends multiple CONTINUATION frames preceded by a HEADERS frame")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), end_headers=False))
    c.send(continuation_frame(1, c.encode(t.dummy_headers(1)), end_headers=False))
    c.send(continuation_frame(1, c.encode(t.dummy_headers(1))))
    expect_headers(c, 1)


@case("http2/6.10/2", "Sends a CONTINUATION frame followed by any frame other than CONTINUATION")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST")), end_stream=False, end_headers=False))
    c.send(continuation_frame(1, c.encode(t.dummy_headers(1)), end_headers=False))
    c.send(data_frame(1, b"test"))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.10/3", "Sends a CONTINUATION frame with 0x0 stream identifier")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), end_headers=False))
    c.send(continuation_frame(0, c.encode(t.dummy_headers(1))))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.10/4",
      "Sends a CONTINUATION frame preceded by a HEADERS frame with END_HEADERS flag")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers())))
    c.send(continuation_frame(1, c.encode(t.dummy_headers(1))))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.10/5",
      "Sends a CONTINUATION frame preceded by a CONTINUATION frame with END_HEADERS flag")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers()), end_headers=False))
    c.send(continuation_frame(1, c.encode(t.dummy_headers(1))))
    c.send(continuation_frame(1, c.encode(t.dummy_headers(1))))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/6.10/6", "Sends a CONTINUATION frame preceded by a DATA frame")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST")), end_stream=False, end_headers=False))
    c.send(data_frame(1, b"test"))
    c.send(continuation_frame(1, c.encode(t.dummy_headers(1)), end_headers=False))
    c.send(continuation_frame(0, c.encode(t.dummy_headers(1))))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("http2/7/1", "Sends a GOAWAY frame with unknown error code")
def _(t):
    c = t.connect()
    c.send(goaway_frame(0, 0xFF))
    c.send(ping_frame(b"h2spec\0\0"))
    expect_ping_ack_or_close(c, b"h2spec\0\0")


@case("http2/7/2", "Sends a RST_STREAM frame with unknown error code")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST")), end_stream=False))
    c.send(rst_stream_frame(1, 0xFF))
    c.send(ping_frame(bytes(8)))
    expect_ping_ack_or_close(c, bytes(8))


@case("http2/8.1/1", "Sends a second HEADERS frame without the END_STREAM flag")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST")), end_stream=False))
    c.send(data_frame(1, b"test", end_stream=False))
    c.send(headers_frame(1, c.encode([("x-test", "ok")]), end_stream=False))
    expect_stream_error(c, PROTOCOL_ERROR)


def malformed_request(extra_before=(), extra_after=(), drop=(), method="GET"):
    """A request whose header list is malformed; a stream error PROTOCOL_ERROR."""
    def run(t):
        c = t.connect()
        fields = [f for f in t.headers(method) if f[0] not in drop]
        c.send(headers_frame(1, c.encode(list(extra_before) + fields + list(extra_after))))
        expect_stream_error(c, PROTOCOL_ERROR)
    return run


case("http2/8.1.2/1", "Sends a HEADERS frame that contains the header field name in "
     "uppercase letters")(malformed_request(extra_after=[("X-TEST", "ok")]))

case("http2/8.1.2.1/1", "Sends a HEADERS frame that contains a unknown pseudo-header field")(
    malformed_request(extra_after=[(":test", "ok")]))

case("http2/8.1.2.1/2", "Sends a HEADERS frame that contains the pseudo-header field defined "
     "for response")(malformed_request(extra_after=[(":status", "200")]))


@case("http2/8.1.2.1/3", "Sends a HEADERS frame that contains a pseudo-header field as trailers")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST")), end_stream=False))
    c.send(data_frame(1, b"test", end_stream=False))
    c.send(headers_frame(1, c.encode([(":method", "POST")]), end_stream=False))
    expect_stream_error(c, PROTOCOL_ERROR)


case("http2/8.1.2.1/4", "Sends a HEADERS frame that contains a pseudo-header field that appears "
     "in a header block after a regular header field")(
    malformed_request(extra_before=[("x-test", "ok")]))

case("http2/8.1.2.2/1", "Sends a HEADERS frame that contains the connection-specific header "
     "field")(malformed_request(extra_after=[("connection", "keep-alive")]))

case("http2/8.1.2.2/2", "Sends a HEADERS frame that contains the TE header field with any value "
     "other than \"trailers\"")(
    malformed_request(extra_after=[("trailers", "test"), ("te", "trailers, deflate")]))


@case("http2/8.1.2.3/1", "Sends a HEADERS frame with empty \":path\" pseudo-header field")
def _(t):
    c = t.connect()
    fields = [(k, "" if k == ":path" else v) for k, v in t.headers()]
    c.send(headers_frame(1, c.encode(fields)))
    expect_stream_error(c, PROTOCOL_ERROR)


case("http2/8.1.2.3/2", "Sends a HEADERS frame that omits \":method\" pseudo-header field")(
    malformed_request(drop=[":method"]))
case("http2/8.1.2.3/3", "Sends a HEADERS frame that omits \":scheme\" pseudo-header field")(
    malformed_request(drop=[":scheme"]))
case("http2/8.1.2.3/4", "Sends a HEADERS frame that omits \":path\" pseudo-header field")(
    malformed_request(drop=[":path"]))


def duplicated(name):
    def run(t):
        c = t.connect()
        fields = t.headers()
        fields.append((name, dict(fields)[name]))
        c.send(headers_frame(1, c.encode(fields)))
        expect_stream_error(c, PROTOCOL_ERROR)
    return run


case("http2/8.1.2.3/5", "Sends a HEADERS frame with duplicated \":method\" pseudo-header "
     "field")(duplicated(":method"))
case("http2/8.1.2.3/6", "Sends a HEADERS frame with duplicated \":scheme\" pseudo-header "
     "field")(duplicated(":scheme"))
case("http2/8.1.2.3/7", "Sends a HEADERS frame with duplicated \":path\" pseudo-header "
     "field")(duplicated(":path"))


@case("http2/8.1.2.6/1", "Sends a HEADERS frame with the \"content-length\" header field which "
      "does not equal the DATA frame payload length")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST") + [("content-length", "1")]),
                         end_stream=False))
    c.send(data_frame(1, b"test"))
    expect_stream_error(c, PROTOCOL_ERROR)


@case("http2/8.1.2.6/2", "Sends a HEADERS frame with the \"content-length\" header field which "
      "does not equal the sum of the multiple DATA frames payload length")
def _(t):
    c = t.connect()
    c.send(headers_frame(1, c.encode(t.headers("POST") + [("content-length", "1")]),
                         end_stream=False))
    c.send(data_frame(1, b"test", end_stream=False))
    c.send(data_frame(1, b"test"))
    expect_stream_error(c, PROTOCOL_ERROR)


@case("http2/8.2/1", "Sends a PUSH_PROMISE frame")
def _(t):
    c = t.connect()
    c.send(push_promise_frame(1, 3, c.encode(t.headers())))
    expect_connection_error(c, PROTOCOL_ERROR)


# -- hpack ------------------------------------------------------------------------------

def hpack_rejects(rep: bytes):
    """A request whose header block ends with the invalid representation `rep`; a
    connection error COMPRESSION_ERROR."""
    def run(t):
        c = t.connect()
        c.send(headers_frame(1, c.encode(t.headers()) + rep))
        expect_connection_error(c, COMPRESSION_ERROR)
    return run


# Index 70: past the 61 static entries and the few dynamic ones the request added.
case("hpack/2.3.3/1", "Sends a indexed header field representation with invalid index")(
    hpack_rejects(b"\xc6"))
# A literal whose name is index 70 (0x3f + 7).
case("hpack/2.3.3/2", "Sends a literal header field representation with invalid index")(
    hpack_rejects(b"\x7f\x07\x00"))
# A table size update (to 1) after a field: allowed only at the start of a block.
case("hpack/4.2/1", "Sends a dynamic table size update at the end of header block")(
    hpack_rejects(b"\x21"))
# x-test: a Huffman-coded value whose padding is longer than 7 bits.
case("hpack/5.2/1", "Sends a Huffman-encoded string literal representation with padding "
     "longer than 7 bits")(hpack_rejects(b"\x00\x85\xf2\xb2\x4a\x84\xff\x84\x49\x50\x9f\xff"))
# ... padded with zero bits instead of the EOS prefix.
case("hpack/5.2/2", "Sends a Huffman-encoded string literal representation padded by zero")(
    hpack_rejects(b"\x00\x85\xf2\xb2\x4a\x84\xff\x83\x49\x50\x90"))
# ... containing the EOS symbol.
case("hpack/5.2/3", "Sends a Huffman-encoded string literal representation containing the EOS "
     "symbol")(hpack_rejects(b"\x00\x85\xf2\xb2\x4a\x84\xff\x87\x49\x51\xff\xff\xff\xfa\x7f"))
case("hpack/6.1/1", "Sends a indexed header field representation with index 0")(
    hpack_rejects(b"\x80"))


@case("hpack/6.3/1", "Sends a dynamic table size update larger than the value of "
      "SETTINGS_HEADER_TABLE_SIZE")
def _(t):
    c = t.connect()
    limit = c.server_settings.get(HEADER_TABLE_SIZE, 4096)
    block = hpack_int(limit + 1, 5, 0x20) + c.encode(t.headers())
    c.send(headers_frame(1, block))
    expect_connection_error(c, COMPRESSION_ERROR)


# ---------------------------------------------------------------------------------------
# The runner


def log(msg: str):
    print(msg, flush=True)


def read_excludes(path: str, target: str) -> dict[str, str]:
    """Case ids to skip, from lines `[h2c:|tls:]ID  # reason`. A prefix limits the line to
    that target; every line must give a reason."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            entry, sep, reason = text.partition("#")
            entry, reason = entry.strip(), reason.strip()
            if not sep or not reason:
                raise SystemExit(f"{path}:{n}: give a reason after '#': {text}")
            scope = None
            if ":" in entry.split("/")[0]:
                scope, entry = entry.split(":", 1)
                if scope not in ("h2c", "tls"):
                    raise SystemExit(f"{path}:{n}: unknown prefix {scope!r} (h2c: or tls:)")
            if not any(c.id == entry for c in CASES):
                raise SystemExit(f"{path}:{n}: no case {entry!r}")
            if scope in (None, target):
                out[entry] = reason
    return out


def selected(case_: Case, patterns: list[str]) -> bool:
    if not patterns:
        return True
    for p in patterns:
        p = p.rstrip("/")
        # "http2/6.5" selects 6.5/N and the subsections 6.5.2/N, 6.5.3/N (not 6.50).
        if case_.id == p or case_.id.startswith(p + "/") or case_.id.startswith(p + "."):
            return True
    return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int)
    ap.add_argument("--tls", action="store_true", help="TLS with ALPN h2, no verification")
    ap.add_argument("--sni", default=None, help="server name for TLS (default: none)")
    ap.add_argument("--path", default="/")
    ap.add_argument("--timeout", type=float, default=2.0,
                    help="seconds to wait for each expected frame (default 2, as h2spec)")
    ap.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                    help="stop starting cases after this long; the cases not run fail")
    ap.add_argument("--exclude", metavar="FILE",
                    help="ids to skip, one a line: [h2c:|tls:]ID  # reason")
    ap.add_argument("--strict", action="store_true",
                    help="also run h2spec's strict cases (http2/5.4.1/2)")
    ap.add_argument("--exact-codes", action="store_true",
                    help="fail an error case on a GOAWAY or RST_STREAM with another error "
                         "code than the RFC names (h2spec passes it if the connection then "
                         "closes)")
    ap.add_argument("--verbose", "-v", action="store_true", help="log every frame")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("ids", nargs="*",
                    help="run only these ids or id prefixes (e.g. http2/6.5 hpack)")
    opts = ap.parse_args(argv)

    if opts.list:
        for c in CASES:
            print(f"{c.id} {c.desc}{' (strict)' if c.strict else ''}")
        return 0
    if opts.port is None:
        ap.error("--port is required")

    target = "tls" if opts.tls else "h2c"
    excludes = read_excludes(opts.exclude, target) if opts.exclude else {}
    passed = failed = skipped = 0
    failures = []
    run_until = time.monotonic() + opts.budget if opts.budget else None
    for c in CASES:
        if not selected(c, opts.ids):
            continue
        if c.strict and not opts.strict:
            continue
        if c.id in excludes:
            skipped += 1
            log(f"SKIP {c.id}: excluded: {excludes[c.id]}")
            continue
        if run_until is not None and time.monotonic() > run_until:
            failed += 1
            failures.append(c.id)
            log(f"FAIL {c.id} {c.desc}: not run, the budget of {opts.budget:g}s ran out")
            continue
        if opts.verbose:
            log(f"---- {c.id} {c.desc}")
        # However chatty the server, a case ends within a bounded time.
        t = T(opts, time.monotonic() + 8 * opts.timeout + 5)
        try:
            c.fn(t)
        except Skipped as e:
            skipped += 1
            log(f"SKIP {c.id}: {e}")
        except Failed as e:
            failed += 1
            failures.append(c.id)
            log(f"FAIL {c.id} {c.desc}: {e}")
        except Exception as e:  # noqa: BLE001 - a bug in a case must show, not abort the run
            failed += 1
            failures.append(c.id)
            log(f"FAIL {c.id} {c.desc}: internal error in the check: {type(e).__name__}: {e}")
        else:
            passed += 1
            log(f"PASS {c.id} {c.desc}")
        finally:
            t.close()
    if failures:
        log(f"failed: {' '.join(failures)}")
    log(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
