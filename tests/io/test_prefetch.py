"""The background reader: order, errors handed over, stopping, bounded read-ahead."""

from __future__ import annotations

import itertools
import queue
import threading
import time

import pytest

from kmervae.io.prefetch import Prefetch, put_until_stopped


def test_items_in_order_from_any_iterable():
    with Prefetch(range(50), depth=3) as reader:
        assert list(reader) == list(range(50))
    with Prefetch(iter([1, 2])) as reader:  # an iterator without close()
        assert list(reader) == [1, 2]


def test_an_error_in_the_thread_is_raised_in_the_consumer():
    def items():
        yield 1
        raise ValueError("bad block")

    reader = Prefetch(items())
    got = []
    with pytest.raises(ValueError, match="bad block"):
        for item in reader:
            got.append(item)
    reader.close()
    assert got == [1]


def test_close_stops_an_endless_producer_and_closes_it():
    closed = threading.Event()
    made = []

    def items():
        try:
            for i in itertools.count():
                made.append(i)
                yield i
        finally:
            closed.set()

    reader = Prefetch(items(), depth=2, name="test-reader")
    assert next(iter(reader)) == 0
    time.sleep(0.3)
    assert len(made) <= 4  # bounded read-ahead: the queue holds 2, one waits to go in
    reader.close(timeout=5)
    assert closed.is_set()
    assert not reader._thread.is_alive() and reader._thread.daemon


def test_put_until_stopped_gives_up_when_stopped():
    q: queue.Queue[int] = queue.Queue(maxsize=1)
    stop = threading.Event()
    assert put_until_stopped(q, 1, stop)
    threading.Timer(0.2, stop.set).start()
    assert not put_until_stopped(q, 2, stop)
    assert q.get_nowait() == 1
