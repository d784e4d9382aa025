"""Worker processes and the development reloader.

``--workers N`` starts N processes that share the listening sockets (opened once here, so
every worker accepts on the same port) and restarts one that dies. HTTP/3's UDP sockets are
not shared: worker ``i`` gets slot ``i``'s sockets of the ``SO_REUSEPORT`` groups (see
:func:`~rws.http.server.listeners.open_quic_sockets`), and its replacement gets the same ones.
``--reload`` runs a single worker and restarts it when a Python file under the watched
directory changes. Both forward SIGTERM/SIGINT (graceful shutdown) and SIGHUP (reopen logs)
to their children.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, NamedTuple

logger = logging.getLogger("rws.http.error")

#: A worker that dies within this many seconds of starting is crashing, not failing once:
#: restart it with a growing delay instead of in a tight loop.
_CRASH_WINDOW = 5.0
_MAX_BACKOFF = 10.0

WorkerTarget = Callable[[list[socket.socket], dict[str, Any]], None]


class Supervisor:
    """Keeps ``count`` workers alive until told to stop.

    ``quic_sockets``, if given, holds one list of UDP sockets per worker slot: the worker
    started in slot ``i`` (and each one restarted there) finds ``quic_sockets[i]`` in its
    options under ``"quic_sockets"``. The supervisor keeps them open, unread, until it stops.
    """

    def __init__(
        self,
        target: WorkerTarget,
        sockets: Sequence[socket.socket],
        options: dict[str, Any],
        count: int,
        *,
        stop_timeout: float,
        quic_sockets: Sequence[Sequence[socket.socket]] | None = None,
    ) -> None:
        if quic_sockets is not None and len(quic_sockets) != count:
            raise ValueError(f"quic_sockets has {len(quic_sockets)} slot(s) for {count} workers")
        self._context = multiprocessing.get_context("spawn")
        self.target = target
        self.sockets = list(sockets)
        self.options = options
        self.count = count
        self.quic_sockets = [list(slot) for slot in quic_sockets or ()]
        self.stop_timeout = stop_timeout
        self.workers: list[BaseProcess] = []
        self._started_at: dict[int, float] = {}
        self._backoff = 0.5
        self._stopping = threading.Event()
        self._signal: int | None = None

    def _spawn(self, slot: int = 0) -> BaseProcess:
        options = self.options
        if self.quic_sockets:
            options = {**options, "quic_sockets": self.quic_sockets[slot]}
        process = self._context.Process(
            target=self.target, args=(self.sockets, options), daemon=False
        )
        process.start()
        assert process.pid is not None
        self._started_at[process.pid] = time.monotonic()
        logger.info("started worker %d", process.pid)
        return process

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            for worker in self.workers:
                if worker.pid is not None and worker.is_alive():
                    os.kill(worker.pid, signal.SIGHUP)
            return
        self._signal = signum
        self._stopping.set()

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._handle)
        self.workers = [self._spawn(slot) for slot in range(self.count)]
        while not self._stopping.wait(0.2):
            self._replace_dead()
        return self._stop()

    def _replace_dead(self) -> None:
        for index, worker in enumerate(self.workers):
            if worker.is_alive() or self._stopping.is_set():
                continue
            assert worker.pid is not None
            lived = time.monotonic() - self._started_at.pop(worker.pid, 0.0)
            logger.error("worker %d exited with code %s; restarting", worker.pid, worker.exitcode)
            if lived < _CRASH_WINDOW:
                if self._stopping.wait(self._backoff):
                    return
                self._backoff = min(self._backoff * 2, _MAX_BACKOFF)
            else:
                self._backoff = 0.5
            self.workers[index] = self._spawn(index)

    def _stop(self) -> int:
        for worker in self.workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        code = 0
        for worker in self.workers:
            if worker.is_alive():
                logger.error("worker %d did not stop in time: killing it", worker.pid)
                worker.kill()
                worker.join()
                code = 1
        for sock in self.sockets:
            sock.close()
        for slot in self.quic_sockets:
            for sock in slot:
                sock.close()
        return code


#: Directories never watched, besides hidden ones (``.git``, ``.venv``): bytecode caches and
#: JavaScript dependencies.
_IGNORED_DIRS = ("__pycache__", "node_modules")

#: File systems stamp mtimes with a coarse clock (a kernel tick on Linux, 1 or 2 s on others),
#: so a file rewritten within one tick of being looked at keeps its mtime, and its size too if
#: the edit kept the length. While an mtime is this recent ("racy", as git calls it) the poll
#: also hashes the file's content, and does so once more on the next poll.
_RACY_NS = 3_000_000_000


class Stamp(NamedTuple):
    """What one poll saw of one file."""

    mtime_ns: int
    size: int
    inode: int
    racy: bool
    digest: bytes | None


def python_files(root: Path) -> Iterator[Path]:
    """The ``*.py`` files under ``root``, without hidden and ignored names below ``root``.

    Only names below ``root`` count (``root`` itself may sit in a hidden directory), ignored
    directories are not entered, and a directory removed during the walk is skipped.
    """
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _IGNORED_DIRS]
        for name in files:
            if name.endswith(".py") and not name.startswith("."):
                yield Path(directory, name)


def snapshot(root: Path, previous: Mapping[Path, Stamp] | None = None) -> dict[Path, Stamp]:
    """Stamp every watched file; ``previous`` is the last poll's (for racy files)."""
    now = time.time_ns()
    stamps = {}
    for path in python_files(root):
        try:
            info = path.stat()
            racy = now - info.st_mtime_ns < _RACY_NS
            before = previous.get(path) if previous is not None else None
            digest = None
            if racy or (before is not None and before.racy):
                digest = hashlib.blake2b(path.read_bytes(), digest_size=16).digest()
        except OSError:  # removed (or unreadable) since the walk listed it
            continue
        stamps[path] = Stamp(info.st_mtime_ns, info.st_size, info.st_ino, racy, digest)
    return stamps


def changed_files(before: Mapping[Path, Stamp], after: Mapping[Path, Stamp]) -> list[Path]:
    """The files added, removed or changed between two snapshots, sorted."""
    changed = set(before) ^ set(after)
    for path, stamp in after.items():
        old = before.get(path)
        if old is None:
            continue
        if stamp[:3] != old[:3] or (
            stamp.digest is not None and old.digest is not None and stamp.digest != old.digest
        ):
            changed.add(path)
    return sorted(changed)


class Reloader(Supervisor):
    """One worker, restarted when a ``*.py`` file under ``root`` changes (polling, stdlib)."""

    def __init__(
        self,
        target: WorkerTarget,
        sockets: Sequence[socket.socket],
        options: dict[str, Any],
        *,
        root: Path,
        interval: float = 0.5,
        stop_timeout: float,
    ) -> None:
        super().__init__(target, sockets, options, 1, stop_timeout=stop_timeout)
        self.root = root
        self.interval = interval

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._handle)
        # Look before the worker imports the app: a change made while it starts is then seen.
        stamps = snapshot(self.root)
        self.workers = [self._spawn()]
        reported = False
        while not self._stopping.wait(self.interval):
            current = snapshot(self.root, stamps)
            changed = changed_files(stamps, current)
            stamps = current
            if changed:
                logger.warning("reloading: %s changed", ", ".join(str(p) for p in changed[:3]))
                self._restart()
                reported = False
            elif not reported and not self.workers[0].is_alive():
                # Crashed (e.g. a syntax error): wait for the next change rather than spin.
                worker = self.workers[0]
                logger.error(
                    "worker %d exited with code %s; waiting for a file to change",
                    worker.pid,
                    worker.exitcode,
                )
                reported = True
        return self._stop()

    def _restart(self) -> None:
        worker = self.workers[0]
        if worker.pid is not None and worker.is_alive():
            os.kill(worker.pid, signal.SIGTERM)
            worker.join(self.stop_timeout)
            if worker.is_alive():
                worker.kill()
                worker.join()
        if not self._stopping.is_set():  # told to stop while the old worker was stopping
            self.workers[0] = self._spawn()
