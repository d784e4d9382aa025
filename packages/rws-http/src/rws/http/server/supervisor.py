"""Worker processes and the development reloader.

``--workers N`` starts N processes that share the listening sockets (opened once here, so
every worker accepts on the same port) and restarts one that dies. ``--reload`` runs a single
worker and restarts it when a Python file under the watched directory changes. Both forward
SIGTERM/SIGINT (graceful shutdown) and SIGHUP (reopen logs) to their children.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

logger = logging.getLogger("rws.http.error")

#: A worker that dies within this many seconds of starting is crashing, not failing once:
#: restart it with a growing delay instead of in a tight loop.
_CRASH_WINDOW = 5.0
_MAX_BACKOFF = 10.0

WorkerTarget = Callable[[list[socket.socket], dict[str, Any]], None]


class Supervisor:
    """Keeps ``count`` workers alive until told to stop."""

    def __init__(
        self,
        target: WorkerTarget,
        sockets: Sequence[socket.socket],
        options: dict[str, Any],
        count: int,
        *,
        stop_timeout: float,
    ) -> None:
        self._context = multiprocessing.get_context("spawn")
        self.target = target
        self.sockets = list(sockets)
        self.options = options
        self.count = count
        self.stop_timeout = stop_timeout
        self.workers: list[BaseProcess] = []
        self._started_at: dict[int, float] = {}
        self._backoff = 0.5
        self._stopping = threading.Event()
        self._signal: int | None = None

    def _spawn(self) -> BaseProcess:
        process = self._context.Process(
            target=self.target, args=(self.sockets, self.options), daemon=False
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
        self.workers = [self._spawn() for _ in range(self.count)]
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
            self.workers[index] = self._spawn()

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
        return code


def python_files(root: Path) -> Iterator[Path]:
    for path in root.rglob("*.py"):
        if not any(
            part.startswith(".") or part in ("__pycache__", "node_modules") for part in path.parts
        ):
            yield path


def snapshot(root: Path) -> dict[Path, float]:
    stamps = {}
    for path in python_files(root):
        try:
            stamps[path] = path.stat().st_mtime
        except OSError:
            continue
    return stamps


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
        self.workers = [self._spawn()]
        stamps = snapshot(self.root)
        while not self._stopping.wait(self.interval):
            current = snapshot(self.root)
            if current != stamps:
                changed = sorted(
                    str(p)
                    for p in set(current) ^ set(stamps)
                    | {p for p in current if stamps.get(p) != current[p]}
                )
                logger.warning("reloading: %s changed", ", ".join(changed[:3]))
                stamps = current
                self._restart()
            elif not self.workers[0].is_alive():
                # Crashed (e.g. a syntax error): wait for the next change rather than spin.
                continue
        return self._stop()

    def _restart(self) -> None:
        worker = self.workers[0]
        if worker.pid is not None and worker.is_alive():
            os.kill(worker.pid, signal.SIGTERM)
            worker.join(self.stop_timeout)
            if worker.is_alive():
                worker.kill()
                worker.join()
        self.workers[0] = self._spawn()
