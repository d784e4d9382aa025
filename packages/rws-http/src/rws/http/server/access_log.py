"""The access log: one line per request, formatted on the event loop, written off it.

Formats are the two every log tool reads, NCSA Common and Apache Combined, plus one JSON object
per line for log shippers. Fields a client controls (request line, user, Referer, User-Agent,
and the client address, which may come from a proxy header) are escaped the way Apache's
``ap_escape_logitem`` does: ``"`` and ``\\`` get a backslash, ``\\b \\n \\r \\t \\v`` are
written as those two-character escapes, every other byte outside printable ASCII as ``\\xhh``.
So a CR/LF in a header cannot start a forged line, and a ``"`` cannot end a quoted field early.
In the two unquoted client fields (address, user) a space is written ``\\x20`` as well, so they
cannot shift the fields after them; that is the one departure from Apache.
Characters above U+00FF (text that was not decoded as Latin-1) are escaped byte by byte in
UTF-8; lone surrogates from ``surrogateescape`` decoding come back as the bytes they stand for.

Why a writer thread rather than writes scheduled on the loop (``loop.call_soon`` batching):
the write itself still blocks whichever thread makes it, and a file on a slow or stalled disk,
NFS, or a stdout pipe nobody reads would then stall every connection. A dedicated thread owns
the file descriptor; :meth:`AccessLog.log` only formats the line and puts it on a
``queue.SimpleQueue`` (a C-level deque append, no lock held across I/O, safe from any thread
and from no event loop at all). The writer drains whatever has accumulated and writes it with
one ``os.write`` per batch, so the cost per line on a busy server is a fraction of a syscall.
Rotation and :meth:`AccessLog.reopen` run on the same thread, in queue order, so they never
race a write: lines logged before ``reopen()`` go to the old file, lines after it to the new.

Limits: at most ``max_pending`` lines wait in memory (default 100 000, a few tens of MB at
worst). If the disk stalls for longer than that, further lines are dropped and counted rather
than growing memory until the process dies; the drop and the recovery are each reported once.
A write error (disk full, permission, closed stdout) is reported once through the
``rws.http.server.access_log`` logger (stderr when logging is not configured); the lines of
that batch are lost, the server carries on, and recovery is reported with the count lost.

With ``--workers``, build the :class:`AccessLog` in each worker after the fork: the writer
thread does not survive ``fork()``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "AccessLog",
    "AccessRecord",
    "format_combined",
    "format_common",
    "format_json",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """What the server knows about one finished request: everything the formats can print.

    Strings are the request's bytes decoded as Latin-1 (so escaping gives the original bytes
    back); the formatters escape them, the server does not have to. Not validated on
    construction: one is built per request and the server is the only producer.
    """

    client_addr: str | None
    """Peer address (or the one a trusted proxy header named); None for a Unix socket."""
    client_port: int | None
    method: str
    target: str
    """Path and query exactly as sent in the request line (or ``:path``), not normalised."""
    http_version: str
    """``"1.0"``, ``"1.1"``, ``"2"`` or ``"3"``, as in the ASGI scope; logged as ``HTTP/x``."""
    status: int
    response_bytes: int
    """Body bytes sent, excluding headers (Apache ``%b``/``%B``)."""
    request_start: float
    """Epoch seconds when the request arrived; the time printed in every format."""
    duration: float
    """Seconds from arrival to the last byte sent."""
    referer: str | None = None
    user_agent: str | None = None
    scheme: str = "http"
    host: str | None = None
    """``Host`` header or ``:authority``; JSON only (Common/Combined have no host field)."""
    user: str | None = None
    """The authenticated user (CLF ``authuser``), when an auth middleware reported one."""
    request_id: str | None = None


# -- escaping ----------------------------------------------------------------------------------

# Everything except printable ASCII minus '"' and '\\' needs escaping (Apache T_ESCAPE_LOGITEM).
_NEEDS_ESCAPE: Final = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_SHORT_ESCAPES: Final = {
    "\b": "\\b",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    if ord(char) < 0x100:
        return f"\\x{ord(char):02x}"
    try:
        raw = char.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that surrogateescape did not produce
        raw = char.encode("utf-8", "surrogatepass")
    return "".join(f"\\x{byte:02x}" for byte in raw)


def _escape(value: str) -> str:
    # The check is the whole cost for the usual clean value and only dirty values pay for
    # sub(). Four C-level scans beat one regex search by about 2x on a 100-character UA.
    # (isprintable() on ASCII is exactly 0x20-0x7e, the same set as _NEEDS_ESCAPE's complement
    # before '"' and '\\' are taken out.)
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return _NEEDS_ESCAPE.sub(_escape_char, value)


def _quoted(value: str | None) -> str:
    return "-" if value is None else _escape(value)


def _bare(value: str) -> str:
    # Unquoted fields (host, authuser) also escape spaces, which Apache leaves alone: a Basic
    # auth user name "a b" or a forwarded address must not shift every later field.
    value = _escape(value)
    return value.replace(" ", "\\x20") if " " in value else value


def _host(addr: str | None) -> str:
    return _bare(addr) if addr else "-"


def _user(user: str | None) -> str:
    if user is None:
        return "-"
    return _bare(user) if user else '""'  # Apache prints an empty user as ""


# -- times -------------------------------------------------------------------------------------

# Month names are fixed English: strftime("%b") follows the locale and log parsers would break.
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip

# One-entry caches (second, text): a busy server logs many lines per second, and a tuple is
# replaced atomically, so threads sharing the cache can only see a matching pair.
_clf_cache: tuple[int, str] = (-1, "")
_iso_cache: tuple[int, str] = (-1, "")


def _clf_time(timestamp: float) -> str:
    global _clf_cache
    second = int(timestamp)
    cached_second, text = _clf_cache
    if cached_second == second:
        return text
    t = time.gmtime(second)
    text = (
        f"[{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year:04d}"
        f":{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000]"
    )
    _clf_cache = (second, text)
    return text


def _iso_time(timestamp: float) -> str:
    global _iso_cache
    # Round once in milliseconds so .123 does not print as .122 through float error.
    second, millis = divmod(round(timestamp * 1000), 1000)
    cached_second, text = _iso_cache
    if cached_second != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _iso_cache = (second, text)
    return f"{text}.{millis:03d}Z"


# -- formatters --------------------------------------------------------------------------------


def format_common(record: AccessRecord) -> str:
    """The NCSA Common Log Format line (no newline), time in UTC.

    ``host ident authuser [dd/Mon/yyyy:HH:MM:SS +0000] "METHOD target HTTP/x" status bytes``;
    ident is always ``-`` (nobody runs identd), bytes is ``-`` for an empty body as in Apache
    ``%b``, so existing CLF parsers and analysers read it unchanged.
    """
    return (
        f"{_host(record.client_addr)} - {_user(record.user)} {_clf_time(record.request_start)}"
        f' "{_escape(record.method)} {_escape(record.target)} HTTP/{record.http_version}"'
        f" {record.status} {record.response_bytes or '-'}"
    )


def format_combined(record: AccessRecord) -> str:
    """Common Log Format plus ``"referer" "user-agent"`` (Apache/nginx ``combined``)."""
    return (
        f"{_host(record.client_addr)} - {_user(record.user)} {_clf_time(record.request_start)}"
        f' "{_escape(record.method)} {_escape(record.target)} HTTP/{record.http_version}"'
        f" {record.status} {record.response_bytes or '-'}"
        f' "{_quoted(record.referer)}" "{_quoted(record.user_agent)}"'
    )


# encode() of a str is the stdlib's C string encoder; the object around the values is assembled
# by hand below, at about half the cost of encoding a dict.
_json_encode: Final = json.JSONEncoder(ensure_ascii=True).encode


def _json_str(value: str) -> str:
    # A clean value (printable ASCII, no '"' or '\\') is exactly what the encoder would leave
    # alone, so quoting it directly gives the same bytes without the call.
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return _json_encode(value)


def _json_opt(value: str | None) -> str:
    return "null" if value is None else _json_str(value)


def format_json(record: AccessRecord) -> str:
    """One JSON object (no newline) with the same keys in the same order on every line.

    Missing values are ``null`` rather than absent, so a shipper's schema never has to guess.
    ``time`` is RFC 3339 UTC with milliseconds; ``duration_ms`` is milliseconds to the
    microsecond. JSON string escaping (ASCII only) already makes CR/LF harmless.
    """
    port = record.client_port
    return (
        f'{{"time":"{_iso_time(record.request_start)}"'
        f',"client_addr":{_json_opt(record.client_addr)}'
        f',"client_port":{"null" if port is None else format(port, "d")}'
        f',"user":{_json_opt(record.user)}'
        f',"method":{_json_str(record.method)}'
        f',"target":{_json_str(record.target)}'
        f',"http_version":{_json_str(record.http_version)}'
        f',"status":{record.status:d}'
        f',"response_bytes":{record.response_bytes:d}'
        f',"duration_ms":{round(record.duration * 1000.0, 3)!r}'
        f',"referer":{_json_opt(record.referer)}'
        f',"user_agent":{_json_opt(record.user_agent)}'
        f',"scheme":{_json_str(record.scheme)}'
        f',"host":{_json_opt(record.host)}'
        f',"request_id":{_json_opt(record.request_id)}}}'
    )


_FORMATTERS: Final[dict[str, Callable[[AccessRecord], str]]] = {
    "common": format_common,
    "combined": format_combined,
    "json": format_json,
}

# -- the log -----------------------------------------------------------------------------------

_STOP: Final = object()
_REOPEN: Final = object()
# Lines per write: bounds the memory of one join and lets flush/reopen markers through.
_MAX_BATCH: Final = 4096
_OPEN_FLAGS: Final = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)


class AccessLog:
    """Formats each request's line on the caller's thread and writes it on a writer thread.

    ``target``: ``None`` disables the log (:meth:`log` returns at once, no thread is started),
    ``"-"`` writes to ``sys.stdout``, anything else is a path opened for appending (opened here,
    so a bad path fails at startup with :class:`OSError` instead of losing every line later).

    ``max_bytes > 0`` rotates like :class:`logging.handlers.RotatingFileHandler`: before a line
    would take the file past ``max_bytes``, ``path`` becomes ``path.1``, ``path.1`` becomes
    ``path.2`` … up to ``path.<backups>`` (the oldest is dropped). Lines are never split across
    files, so a file exceeds ``max_bytes`` only when one line alone is longer. With
    ``backups=0`` the file is truncated instead: it keeps only the most recent lines. For
    external rotation (logrotate) leave ``max_bytes=0`` and call :meth:`reopen` on SIGHUP.

    ``max_pending`` caps the lines waiting for the writer; see the module docstring.

    Call :meth:`close` (or ``await aclose()``) at shutdown; it writes every line logged before
    it. An ``atexit`` hook closes a log that was never closed, so lines are not lost on exit.
    """

    def __init__(
        self,
        target: str | None,
        fmt: Literal["common", "combined", "json"] = "combined",
        max_bytes: int = 0,
        backups: int = 0,
        *,
        max_pending: int = 100_000,
    ) -> None:
        formatter = _FORMATTERS.get(fmt)
        if formatter is None:
            raise ValueError(f"access log format must be one of {sorted(_FORMATTERS)}, not {fmt!r}")
        if max_bytes < 0:
            raise ValueError(f"access log max_bytes must be >= 0, not {max_bytes!r}")
        if backups < 0:
            raise ValueError(f"access log backups must be >= 0, not {backups!r}")
        if backups > 0 and max_bytes == 0:
            raise ValueError("access log backups needs max_bytes > 0 (rotation is by size)")
        if max_bytes > 0 and target == "-":
            raise ValueError("access log max_bytes cannot apply to stdout ('-')")
        if target == "":
            raise ValueError("access log target must be a path, '-' for stdout, or None")
        if max_pending < 1:
            raise ValueError(f"access log max_pending must be >= 1, not {max_pending!r}")

        self._format = formatter
        self._path = None if target in (None, "-") else target
        self._name = "stdout" if target == "-" else repr(target)
        self._max_bytes = max_bytes
        self._backups = backups
        self._max_pending = max_pending
        self._lock = threading.Lock()  # orders close() against flush(); never held for I/O
        self._sink: queue.SimpleQueue[object] | None = None
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._dropped = 0  # lines not written, for any reason
        self._overflowed = 0  # of which: queue full (counted on the hot path)
        self._overflow_reported = 0
        self._overflowing = False
        self._failing = False
        self._lost_while_failing = 0
        if target is None:
            return
        if self._path is not None:
            self._fd = self._open()
        self._sink = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, args=(self._sink,), name="rws-access-log", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    @property
    def enabled(self) -> bool:
        """False for ``target=None``: callers may skip building records at all."""
        return self._thread is not None

    @property
    def dropped(self) -> int:
        """Lines logged but never written (queue full or write error), e.g. for /metrics."""
        return self._dropped + self._overflowed

    def log(self, record: AccessRecord) -> None:
        """Format ``record`` and queue the line; never blocks and never touches the disk.

        Safe from any thread. After :meth:`close`, and on a disabled log, a no-op.
        """
        sink = self._sink
        if sink is None:
            return
        if sink.qsize() >= self._max_pending:
            self._overflowed += 1
            return
        sink.put(self._format(record))

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every line logged before this call is written; False on timeout.

        It waits for disk I/O: from a coroutine use ``await asyncio.to_thread(log.flush)``.
        """
        with self._lock:
            sink = self._sink
            if sink is None:
                return True
            done = threading.Event()
            sink.put(done)
        return done.wait(timeout)

    def reopen(self) -> None:
        """Reopen the path (after logrotate moved it); returns at once, the writer does it.

        Lines logged before this call go to the old file, lines after it to the new one. If
        the path cannot be opened, the error is reported and writing continues to the old file.
        Takes no lock (``SimpleQueue.put`` is reentrant), so a signal handler may call it. A
        no-op for stdout, a disabled or a closed log.
        """
        sink = self._sink
        if sink is not None and self._path is not None:
            sink.put(_REOPEN)

    def close(self, timeout: float | None = None) -> None:
        """Write every queued line, then close the file; idempotent.

        Blocks until the writer is done (or ``timeout`` seconds, after which the remaining
        lines are reported lost). Lines logged by other threads while this runs may be dropped.
        """
        with self._lock:
            sink = self._sink
            if sink is None:
                return
            self._sink = None
            sink.put(_STOP)
        atexit.unregister(self.close)
        thread = self._thread
        assert thread is not None
        thread.join(timeout)
        if thread.is_alive():
            logger.error(
                "access log %s: writer still busy %ss into close(); lines it has not written "
                "by exit are lost",
                self._name,
                timeout,
            )
            return
        # The writer has exited: anything a racing log() queued after _STOP is ours to write.
        self._process(_drain(sink, 0))
        self._report_overflow()
        self._close_fd()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    # -- writer thread -------------------------------------------------------------------------

    def _run(self, sink: queue.SimpleQueue[object]) -> None:
        while True:
            batch = [sink.get()]
            batch.extend(_drain(sink, _MAX_BATCH - 1))
            try:
                stop = self._process(batch)
                self._report_overflow()
            except Exception:  # a bug here must not kill the writer and lose every later line
                logger.exception("access log %s: writer error", self._name)
                for item in batch:  # nobody may wait forever in flush()
                    if isinstance(item, threading.Event):
                        item.set()
                stop = _STOP in batch
            if stop:
                return

    def _process(self, batch: list[object]) -> bool:
        """Write the lines in ``batch`` and act on its markers, in order; True on _STOP."""
        lines: list[str] = []
        stop = False
        for item in batch:
            if type(item) is str:
                lines.append(item)
                continue
            if lines:
                self._write(lines)
                lines = []
            if item is _STOP:
                stop = True
            elif item is _REOPEN:
                self._reopen_now()
            elif isinstance(item, threading.Event):
                item.set()
        if lines:
            self._write(lines)
        return stop

    def _write(self, lines: list[str]) -> None:
        try:
            if self._path is None:
                self._write_stdout(lines)
            else:
                self._write_file(lines)
        except (OSError, ValueError, AttributeError) as exc:
            # OSError: disk full, permission, EIO; ValueError/AttributeError: stdout closed or
            # replaced by None. Report the first failure only; the server must keep serving.
            self._dropped += len(lines)
            self._lost_while_failing += len(lines)
            if not self._failing:
                self._failing = True
                logger.error(
                    "access log %s: cannot write (%s); dropping lines until it works again",
                    self._name,
                    exc,
                )
        else:
            if self._failing:
                self._failing = False
                logger.warning(
                    "access log %s: writing again; %d lines were lost",
                    self._name,
                    self._lost_while_failing,
                )
                self._lost_while_failing = 0

    def _write_stdout(self, lines: list[str]) -> None:
        stream = sys.stdout  # looked up each time: tests and embedders replace it
        stream.write("\n".join(lines) + "\n")
        stream.flush()

    def _write_file(self, lines: list[str]) -> None:
        if self._fd is None:  # a rotation or reopen failed earlier: try again
            self._fd = self._open()
        if self._max_bytes == 0:
            self._write_all(("\n".join(lines) + "\n").encode("utf-8", "backslashreplace"))
            return
        # fstat, not a running count: another process or copytruncate may have changed it.
        size = os.fstat(self._fd).st_size
        chunk: list[bytes] = []
        for line in lines:
            data = (line + "\n").encode("utf-8", "backslashreplace")
            if size > 0 and size + len(data) > self._max_bytes:
                if chunk:
                    self._write_all(b"".join(chunk))
                    chunk = []
                self._rotate()
                size = 0
            chunk.append(data)
            size += len(data)
        if chunk:
            self._write_all(b"".join(chunk))

    def _write_all(self, data: bytes) -> None:
        fd = self._fd
        assert fd is not None
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            if written <= 0:
                raise OSError(f"write returned {written}")
            view = view[written:]

    def _rotate(self) -> None:
        path = self._path
        fd = self._fd
        assert path is not None and fd is not None
        if self._backups == 0:
            os.ftruncate(fd, 0)  # O_APPEND: the next write lands at the new end, 0
            return
        self._fd = None
        os.close(fd)  # before renaming: Windows cannot rename an open file
        for index in range(self._backups, 0, -1):
            source = f"{path}.{index - 1}" if index > 1 else path
            with contextlib.suppress(FileNotFoundError):  # gaps in the chain are fine
                os.replace(source, f"{path}.{index}")  # replaces (drops) the oldest
        self._fd = self._open()

    def _reopen_now(self) -> None:
        try:
            new_fd = self._open()
        except OSError as exc:
            logger.error(
                "access log %s: reopen failed (%s); still writing to the previous file",
                self._name,
                exc,
            )
            return
        old_fd, self._fd = self._fd, new_fd
        if old_fd is not None:
            os.close(old_fd)

    def _open(self) -> int:
        assert self._path is not None
        return os.open(self._path, _OPEN_FLAGS, 0o644)

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError as exc:  # e.g. NFS reporting a deferred write error on close
                logger.error("access log %s: close failed (%s)", self._name, exc)

    def _report_overflow(self) -> None:
        """Report once when lines start being dropped for a full queue, once when it stops."""
        overflowed = self._overflowed
        new = overflowed - self._overflow_reported
        self._overflow_reported = overflowed
        if new and not self._overflowing:
            self._overflowing = True
            logger.error(
                "access log %s: writer is behind by %d lines; dropping lines until it catches up",
                self._name,
                self._max_pending,
            )
        elif not new and self._overflowing:
            self._overflowing = False
            logger.warning(
                "access log %s: writer caught up; %d lines dropped in all",
                self._name,
                overflowed,
            )


def _drain(sink: queue.SimpleQueue[object], limit: int) -> list[object]:
    """Take up to ``limit`` items (0: all) without waiting."""
    items: list[object] = []
    try:
        while not limit or len(items) < limit:
            items.append(sink.get_nowait())
    except queue.Empty:
        pass
    return items
