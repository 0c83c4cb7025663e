"""Query rates over a window, from batches: each batch's queries are spread evenly over the
time it ran, so that a window that cuts a batch counts the part of it inside. Counting whole
batches at their end instead makes a 10 s rate jump by a whole batch (often 10 % or more).

No Django here: the inference server's driver uses it too.
"""


def spread_count(spans, start, end):
    """Queries processed in [start, end]: spans are (started, finished, size) in seconds."""
    total = 0.0
    for began, finished, size in spans:
        if finished <= start or began >= end:
            continue
        if finished <= began:
            total += size
            continue
        overlap = min(finished, end) - max(began, start)
        total += size * overlap / (finished - began)
    return total


def spread_rate(spans, start, end):
    return spread_count(spans, start, end) / (end - start) if end > start else 0.0
