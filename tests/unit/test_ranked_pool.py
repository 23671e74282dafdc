"""The collector's pool runs the earliest subscription's tasks first, and stops cleanly."""

from __future__ import annotations

import threading

import pytest

from daemon.collect.pool import RankedPool


def test_a_free_worker_takes_the_lowest_rank_then_the_oldest() -> None:
    gate, ran = threading.Event(), []
    with RankedPool(1, "test") as pool:
        pool.submit(0, gate.wait)  # holds the one worker while the others queue
        futures = [pool.submit(rank, lambda name=name: ran.append(name))
                   for rank, name in ((5, "late"), (1, "first"), (3, "middle"), (1, "second"))]
        gate.set()
        for future in futures:
            future.result(timeout=10)
    assert ran == ["first", "second", "middle", "late"]


def test_a_task_that_raises_hands_its_error_to_its_future_and_the_worker_goes_on() -> None:
    def fail() -> None:
        raise ValueError("bad page")

    with RankedPool(1, "test") as pool:
        failed, fine = pool.submit(0, fail), pool.submit(1, lambda: 42)
        with pytest.raises(ValueError, match="bad page"):
            failed.result(timeout=10)
        assert fine.result(timeout=10) == 42


def test_leaving_the_pool_cancels_what_has_not_started_and_waits_for_what_runs() -> None:
    started, gate, ran = threading.Event(), threading.Event(), []

    def running() -> str:
        started.set()
        gate.wait()
        return "finished"

    pool = RankedPool(1, "test")
    first = pool.submit(0, running)
    queued = pool.submit(1, lambda: ran.append("queued"))
    started.wait(10)
    closer = threading.Thread(target=pool.shutdown)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive(), "shutdown waits for the running task"
    gate.set()
    closer.join(10)
    assert not closer.is_alive()
    assert first.result() == "finished"
    assert queued.cancelled() and ran == []
