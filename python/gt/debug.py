"""Looking inside GT: the autograd tape of this process and every worker's statistics
(``gt.debug.print_worker_stats()`` is a sync point)."""

import json as _json

from . import _gt


def get_tape():
    """The ops currently recorded for autograd, oldest first: dicts with ``op``, ``output``,
    ``inputs`` (ids), ``shape`` and ``dtype``."""
    return _gt.tape()


def print_tape():
    """Prints :func:`get_tape` as a table."""
    print(_gt.format_tape(), end="")


def get_worker_stats():
    """Every worker's statistics (ops executed, by name, live tensors, buffer pool, errors,
    hot-path and compile counters) as a list of dicts."""
    return _json.loads(_gt.worker_stats_json())


def print_worker_stats():
    """Prints :func:`get_worker_stats` as a table."""
    print(_gt.format_worker_stats(), end="")
