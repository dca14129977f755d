"""Read ahead in a background thread: the next items are fetched while this one is used.

One reader thread fills a queue of at most ``depth`` items. An exception in the thread is
raised in the consumer; :meth:`Prefetch.close` stops the thread. The thread is a daemon
and waits on the full queue in short polls, so an interrupted command (Ctrl-C, an error)
neither waits for it nor is kept alive by it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: seconds between two looks at the stop flag while the queue is full
POLL_SECONDS = 0.1
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def put_until_stopped(q: queue.Queue[Any], item: object, stop: threading.Event) -> bool:
    """Put ``item`` into the bounded queue ``q``, waiting while it is full, until ``stop``
    is set. Returns whether the item went in."""
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


class Prefetch(Generic[T]):
    """Iterate ``items`` in a background thread, ``depth`` items ahead (bounded memory).

    Parameters
    ----------
    items : what to read ahead; an iterator with ``close`` (a generator) is closed in the
        thread when it stops.
    depth : items waiting at most.
    name : the thread's name.

    Iterate the object once to get the items in order; call :meth:`close` (or use it as a
    context manager) when done, also after an error.
    """

    def __init__(self, items: Iterable[T], depth: int = 2, name: str = "kmervae-prefetch"):
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(items,), name=name, daemon=True)
        self._thread.start()

    def _produce(self, items: Iterable[T]) -> None:
        final: object = _DONE
        try:
            it = iter(items)
            try:
                for item in it:
                    if not put_until_stopped(self._queue, item, self._stop):
                        return
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # handed to the consumer, which raises it
            final = _Failure(exc)
        put_until_stopped(self._queue, final, self._stop)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]

    def close(self, timeout: float | None = None) -> None:
        """Stop the thread and wait for it (at most ``timeout`` seconds: it may be inside
        a long read, which it finishes before it sees the stop)."""
        self._stop.set()
        self._thread.join(timeout)

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
