"""Reading the next page while the run works on this one."""

from __future__ import annotations

import threading
import time
from contextlib import closing

import pytest

from rejection_fhir.sync.readahead import read_ahead


def test_pages_come_in_the_order_they_were_read():
    assert list(read_ahead(iter([[1], [2], [3]]))) == [[1], [2], [3]]
    assert list(read_ahead([[1], [2]], depth=0)) == [[1], [2]]


def test_the_next_page_is_read_while_the_caller_works_on_this_one():
    read: list[int] = []
    second_read = threading.Event()

    def pages():
        for n in range(3):
            read.append(n)
            if n == 1:
                second_read.set()
            yield [n]

    with closing(read_ahead(pages())) as ahead:
        first = next(ahead)
        # The caller is still on page 0: the reader has fetched page 1 meanwhile.
        assert second_read.wait(5) and first == [0]
        assert list(ahead) == [[1], [2]]


def test_at_most_depth_pages_are_read_ahead():
    read: list[int] = []

    def pages():
        for n in range(10):
            read.append(n)
            yield [n]

    with closing(read_ahead(pages(), depth=2)) as ahead:
        next(ahead)
        time.sleep(0.3)
        # page 0 handed over, 2 waiting in the queue, 1 read and waiting for room
        assert len(read) <= 4


def test_an_error_while_reading_is_raised_where_the_page_was_expected():
    def pages():
        yield [1]
        raise RuntimeError("the search was refused")

    ahead = read_ahead(pages())
    assert next(ahead) == [1]
    with pytest.raises(RuntimeError, match="refused"):
        next(ahead)


def test_stopping_early_stops_the_reader_and_closes_the_search():
    closed = threading.Event()
    read: list[int] = []

    def pages():
        try:
            for n in range(1000):
                read.append(n)
                yield [n]
        finally:
            closed.set()

    with closing(read_ahead(pages())) as ahead:
        next(ahead)
    assert closed.wait(5), "the search generator was closed"
    assert len(read) < 5, "the reader stopped"
    assert not any(t.name == "rfhir-read" and t.is_alive() for t in threading.enumerate())


def test_a_reader_never_started_leaves_no_thread():
    before = threading.active_count()
    with closing(read_ahead(iter([[1]]))):
        pass
    assert threading.active_count() == before
