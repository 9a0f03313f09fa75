"""WorkShare: blocks published by one worker are taken by an idle one, results in order, errors raised
by the publisher, serving ends when every worker has run out of jobs (or on close)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from robustpath.util.shared_work import WorkShare, map_blocks


def test_outside_a_share_map_blocks_is_a_plain_loop_in_this_thread():
    threads = []
    assert map_blocks(lambda x: threads.append(threading.current_thread()) or x * x, range(5)) == [0, 1, 4, 9, 16]
    assert set(threads) == {threading.current_thread()}


def serving_thread(share: WorkShare, ran: list) -> threading.Thread:
    def serve():
        share.serve()
        ran.append("served")

    thread = threading.Thread(target=serve, name="server")
    thread.start()
    return thread


def test_an_idle_worker_runs_some_blocks_and_the_results_keep_the_items_order():
    share, ran, where = WorkShare(workers=2), [], {}
    server = serving_thread(share, ran)

    def block(item):
        where[item] = threading.current_thread().name
        time.sleep(0.02)  # long enough for the server to take the next blocks
        return item * 10

    with share.attached():
        results = map_blocks(block, range(20))
    assert results == [item * 10 for item in range(20)]
    assert set(where.values()) == {"MainThread", "server"}  # both threads ran blocks
    assert server.is_alive() and ran == []  # the publisher still has jobs: the server waits for more
    share.leave()
    server.join(5)
    assert not server.is_alive() and ran == ["served"]


def test_an_error_in_a_block_the_server_ran_is_raised_by_the_publisher():
    share = WorkShare(workers=2)
    server = serving_thread(share, [])

    def block(item):
        time.sleep(0.01)
        if threading.current_thread().name == "server":
            raise ValueError(f"block {item} failed")
        return item

    with share.attached(), pytest.raises(ValueError, match="block .* failed"):
        map_blocks(block, range(30))
    share.leave()
    server.join(5)
    assert not server.is_alive()


def test_close_ends_serving_at_once_and_the_publisher_runs_the_rest_itself():
    share = WorkShare(workers=2)
    ran: list = []
    server = serving_thread(share, ran)
    share.close()
    server.join(5)
    assert ran == ["served"]
    with share.attached():
        assert map_blocks(lambda x: threading.current_thread().name, range(3)) == ["MainThread"] * 3


def test_serve_polls_while_there_is_nothing_to_run():
    share, polls = WorkShare(workers=2), []
    server = threading.Thread(target=share.serve, kwargs={"poll": lambda: polls.append(1), "every": 0.01})
    server.start()
    time.sleep(0.2)
    share.leave()
    server.join(5)
    assert not server.is_alive() and len(polls) >= 3


def test_leave_counts_each_thread_once():
    share = WorkShare(workers=3)
    share.leave()
    share.leave()  # the same thread again: two workers still busy
    ran: list = []
    server = serving_thread(share, ran)  # leaves too: one worker still busy, so it keeps serving
    time.sleep(0.1)
    assert server.is_alive() and ran == []
    last = threading.Thread(target=share.leave)
    last.start()
    last.join(5)
    server.join(5)
    assert ran == ["served"]


def test_a_generator_is_advanced_in_order_one_item_per_block_taken():
    share, where, alive = WorkShare(workers=2), {}, []
    server = serving_thread(share, [])
    rng = np.random.default_rng(5)
    expected = [np.random.default_rng(5).integers(0, 100, size=50) for _ in range(1)]  # the stream's first block
    live = [0]

    def stream():
        for _ in range(12):
            live[0] += 1
            alive.append(live[0])
            yield rng.integers(0, 100, size=50)

    def block(values):
        where[int(values.sum())] = threading.current_thread().name
        time.sleep(0.02)
        live[0] -= 1
        return values.copy()

    with share.attached():
        results = map_blocks(block, stream())
    reference = np.random.default_rng(5).integers(0, 100, size=(12, 50))  # numpy: one seeded stream, in order
    np.testing.assert_array_equal(np.stack(results), reference)
    np.testing.assert_array_equal(results[0], expected[0])
    assert max(alive) <= 2  # never more items drawn than threads running blocks
    assert set(where.values()) == {"MainThread", "server"}
    share.leave()
    server.join(5)


def test_a_waiting_worker_runs_blocks_until_its_wait_is_over():
    share, where = WorkShare(workers=2), {}
    over = threading.Event()

    def publisher():
        def block(item):
            where[item] = threading.current_thread().name
            time.sleep(0.02)
            return item

        with share.attached():
            assert map_blocks(block, range(20)) == list(range(20))
        over.set()
        share.leave()

    thread = threading.Thread(target=publisher, name="publisher")
    thread.start()
    share.help_until(over.is_set)  # e.g. waiting for room: helps meanwhile, does not leave
    thread.join(5)
    assert set(where.values()) == {"MainThread", "publisher"}
    assert over.is_set()
