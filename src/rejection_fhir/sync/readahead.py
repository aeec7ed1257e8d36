"""Reading the next page of responses while the sync works on this one.

A search is read one page after another (each page's ``next`` link comes with it), and the
sync used to ask for the next page only once it had prepared and sent the current one: on
every page the server's search latency was added to the run.  :func:`read_ahead` runs the
page iterator on a thread of its own, at most ``depth`` pages ahead, and hands the pages
over in the order they were read.  Only reading moves ahead: what is recorded, and when
the cursor moves, stays with the run (:mod:`rejection_fhir.sync.run`), so a crash still
replays at most the pages not yet recorded.

An exception from the iterator (the server refused the search, or went away) is raised
where the page would have been handed over, so the run ends as it did without read-ahead.
When the run stops early, closing the generator (``contextlib.closing``) stops the
reader before its next page.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Done:
    """The end of the pages (or the error that ended them)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _Reader(Generic[T]):
    def __init__(self, pages: Iterable[T], depth: int) -> None:
        self._pages = pages
        self._queue: queue.Queue[T | _Done] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rfhir-read", daemon=True)

    def _put(self, item: T | _Done) -> bool:
        """Hand over one item, waiting for room; False once the run stopped reading."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        iterator = iter(self._pages)
        try:
            for page in iterator:
                if not self._put(page):
                    break
            else:
                self._put(_Done())
        except BaseException as exc:  # handed to the run, which raises it
            self._put(_Done(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def pages(self) -> Generator[T, None, None]:
        # Started with the first page asked for: a generator never iterated is never
        # finished, and its reader would wait for ever.
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if isinstance(item, _Done):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            self._stop.set()
            self._thread.join()


def read_ahead(pages: Iterable[T], depth: int = 1) -> Generator[T, None, None]:
    """The pages of ``pages``, read up to ``depth`` pages ahead on a thread of their own.

    ``depth`` 0 reads on the caller's thread (no read-ahead)."""
    if depth <= 0:
        yield from pages
        return
    yield from _Reader(pages, depth).pages()
