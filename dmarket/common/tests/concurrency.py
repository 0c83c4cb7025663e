"""Calls made at once from several threads, each with its own database connection."""

import threading

from django.db import connection


def at_once(call, n=4):
    """call(i) for i in range(n), each in a thread of its own, all released together; returns
    their results in order (an exception is returned in its place)."""
    barrier, results = threading.Barrier(n), [None] * n

    def run(i):
        try:
            barrier.wait(timeout=30)
            results[i] = call(i)
        except Exception as e:  # shown by the caller's assertion (a thread's is otherwise lost)
            results[i] = e
        finally:
            # Left open, a thread's connection blocks the test database's teardown.
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results
