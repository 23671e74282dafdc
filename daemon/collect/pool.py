"""A fixed pool of threads that runs the task of lowest rank first.

The collector ranks each task by its subscription's place in the list: a worker that comes free takes the next task
of the earliest subscription still being read, and only then one of a later subscription. Subscriptions are then
finished (and handed on to be stored) one after another from the start of the poll, instead of all of them near
its end, as with ``ThreadPoolExecutor``'s first-come order, where the storing side had nothing to do for the first
second of a large poll. Every worker stays busy all the same: later subscriptions fill what the earliest cannot use.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from queue import PriorityQueue
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
_STOP = 1 << 62  # the rank of the stop markers: after every task


class RankedPool:
    """``submit(rank, fn)`` -> a ``Future`` of ``fn()``; leaving the ``with`` block waits for the running tasks and
    cancels those not started."""

    def __init__(self, workers: int, name: str) -> None:
        self._tasks: PriorityQueue[tuple[int, int, Callable[[], Any] | None, Future[Any] | None]] = PriorityQueue()
        self._order = itertools.count()
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, rank: int, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._tasks.put((rank, next(self._order), fn, future))
        return future

    def _work(self) -> None:
        while True:
            _, _, fn, future = self._tasks.get()
            if fn is None or future is None:  # a stop marker
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self) -> None:
        """Cancel the tasks not started, let the running ones finish, and end the workers."""
        with self._tasks.mutex:
            queued = [future for _, _, _, future in self._tasks.queue if future is not None]
        for future in queued:
            future.cancel()
        for _ in self._threads:
            self._tasks.put((_STOP, next(self._order), None, None))
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> RankedPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.shutdown()
