"""Prometheus metrics as `/metrics` answers them, in one process or gathered from several.

A server started with several worker processes (`kinfolk serve --workers N`) counts in each
process apart, and a scrape reaches one of them at random. prometheus-client's multiprocess mode
joins them: with `PROMETHEUS_MULTIPROC_DIR` set before the workers start, each keeps its
counts in files there, and a scrape of any worker adds up every process's files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def exposition() -> tuple[bytes, str]:
    """The metrics of this process, or of every worker process of its server; and their
    content type."""
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


@contextmanager
def shared_between_processes() -> Iterator[None]:
    """For processes started inside the block (they inherit the environment): their metrics
    are kept where `exposition` in any of them finds them all.

    A folder set by the operator is used as is: clearing it between runs is theirs to do (the
    counts of earlier runs would add in). Otherwise a fresh one is made and removed afterwards.
    """
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        yield
        return
    folder = tempfile.mkdtemp(prefix="kinfolk-metrics-")
    os.environ[MULTIPROCESS_DIR_VARIABLE] = folder
    try:
        yield
    finally:
        del os.environ[MULTIPROCESS_DIR_VARIABLE]
        shutil.rmtree(folder, ignore_errors=True)
