"""Pausing Python's cyclic garbage collector around bulk work that allocates millions of objects.

The collector runs whenever allocations outnumber deallocations by a threshold (700), and every
run walks the young objects; those that survive move to older generations, which are walked again
later. A bulk loader builds hundreds of thousands of rows and events that all stay alive until
they are written: each collection finds them alive, and the walks add up to a quarter of a bulk
load's CPU (measured on a purchases chunk of the simulator, 20,000 members: 26.1 s of CPU, 19.5 s
with the collector paused). Those rows and events hold no reference cycles, so pausing the
collector frees nothing later than it would have been freed.

Only around work that has its process to itself (a simulator chunk, in a worker process or in
the simulating one, and the simulator's events phase): the pause is process-wide, and a server's
other requests would leave their cyclic garbage uncollected meanwhile.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off inside, back as it was after (nesting is fine)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
