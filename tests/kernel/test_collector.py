"""The cyclic garbage collector paused around bulk work, and restored after it."""

from __future__ import annotations

import gc

import pytest

from services.kernel.collector import collector_paused


def test_the_collector_is_off_inside_and_on_again_after_even_when_the_work_fails(
    collector_on: None,
) -> None:
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # nested: still off, and the outer pause still holds after
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()

    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("the load failed")
    assert gc.isenabled()


def test_a_collector_turned_off_before_stays_off(collector_on: None) -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()
    gc.enable()
