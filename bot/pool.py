"""Worker processes for CPU-bound detection on bulk paths (catch-up, import, redetect).

Analysis, claim detection and keyword matching are pure Python and hold the GIL,
so a backlog of thousands of posts runs on one core unless it is spread over
processes. The pool starts on first use, forking the service so that the workers
begin with its dictionaries and warm word caches, and stops after a while without
work: an idle service has no workers. Live posts never go through it (a round
trip to a worker costs more than analysing one post).

Where fork is not available the pool is disabled and everything runs in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import multiprocessing
import os
import signal
import stat
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from loguru import logger

T = TypeVar("T")
R = TypeVar("R")

IDLE_SECONDS = 60.0
PR_SET_PDEATHSIG = 1


def default_workers() -> int:
    """One worker per core the process may use; none on a single core."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return cores if cores > 1 else 0


def die_with(parent: int, signum: int = signal.SIGKILL) -> None:
    """In a child process (a detection worker; `chanwatch browse`'s Datasette): have
    Linux send it `signum` when `parent` dies. A SIGKILL leaves the parent no chance
    to stop its children, which would live on (kept across exec)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _close_sockets() -> None:
    """Close the service's sockets (Telegram connections, the event loop's self-pipe)
    copied by the fork: a worker holding them would keep a connection of a killed
    service open. The pool itself talks over pipes."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)


def _worker_start(parent: int, setup: Callable[[], None] | None) -> None:
    die_with(parent)
    # The fork copied the service's signal set-up: a signal sent to the process group
    # must not reach the service's event loop a second time through the copied
    # wakeup fd, and Ctrl-C is for the service to handle.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        _close_sockets()
    # numpy (MinHash signatures) does no linear algebra here: no BLAS thread pool
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    if setup is not None:
        setup()


class DetectionPool:
    """A lazily started process pool; `workers` 0 or 1 means in-process."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        idle_seconds: float = IDLE_SECONDS,
        setup: Callable[[], None] | None = None,
    ) -> None:
        """`setup`: called in each worker once it is forked."""
        self.workers = default_workers() if workers is None else workers
        self.setup = setup
        if "fork" not in multiprocessing.get_all_start_methods():
            self.workers = 0
        self.idle_seconds = idle_seconds
        self._executor: ProcessPoolExecutor | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._busy = 0
        self.stopped = asyncio.Event()  # set while no worker runs
        self.stopped.set()

    @property
    def enabled(self) -> bool:
        return self.workers > 1

    @property
    def running(self) -> bool:
        return self._executor is not None

    def _start(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # Objects the workers inherit stay out of their garbage collector: a collection
            # touches every object and would copy every page of the service's heap.
            gc.freeze()
            with warnings.catch_warnings():
                # Python 3.12+ warns about forking a process with threads (aiosqlite's);
                # the workers touch neither the database nor any lock those threads hold.
                warnings.simplefilter("ignore", DeprecationWarning)
                executor = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context("fork"),
                    initializer=_worker_start,
                    initargs=(os.getpid(), self.setup),
                )
                # forks every worker now, inside the warnings filter
                executor.submit(os.getpid).result()
            gc.unfreeze()
            self._executor = executor
            self.stopped.clear()
            logger.debug("started {n} detection workers", n=self.workers)
        return self._executor

    async def map(self, fn: Callable[..., list[R]], chunks: Sequence[T], *args: Any) -> list[R]:
        """fn(chunk, *args) for each chunk in the workers; the results concatenated.
        A broken pool (a worker killed) is replaced and the work done in-process."""
        loop = asyncio.get_running_loop()
        self._busy += 1
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        try:
            executor = self._start()
            futures = [loop.run_in_executor(executor, fn, chunk, *args) for chunk in chunks]
            parts = await asyncio.gather(*futures)
        except BrokenProcessPool:
            logger.warning("a detection worker died; restarting the pool, this batch in-process")
            self._stop()
            parts = [fn(chunk, *args) for chunk in chunks]
        finally:
            self._busy -= 1
            if self._busy == 0 and self._executor is not None:
                self._idle_timer = loop.call_later(self.idle_seconds, self._stop)
        return [item for part in parts for item in part]

    def chunks(self, items: Sequence[T]) -> list[Sequence[T]]:
        """`items` in one slice per worker (contiguous, so results keep their order)."""
        n = max(1, self.workers)
        size = -(-len(items) // n)
        return [items[i : i + size] for i in range(0, len(items), size)]

    def _stop(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        executor, self._executor = self._executor, None
        self.stopped.set()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
            logger.debug("stopped the detection workers")

    def close(self) -> None:
        """Stop the workers (the service's shutdown); a later map() starts them again."""
        executor = self._executor
        self._stop()
        if executor is not None:
            executor.shutdown(wait=True)
