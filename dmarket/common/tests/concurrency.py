"""Calls made at once from several threads, each with its own database connection."""

import threading

from django.db import connection


def at_once(call, n=4):
    """call(i) for i in range(n), each in a thread of its own, all released together; returns
    their results in order (an exception is returned in its place)."""
    barrier, results = threading.Barrier(n), [None] * n

    def run(i):
        try:
            barrier.wait()
            results[i] = call(i)
        except Exception as e:  # shown by the caller's assertion
            results[i] = e
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
