"""Ids: version 7 UUIDs that behave exactly as ones parsed from their text."""

from __future__ import annotations

import pickle
import uuid
from datetime import UTC, datetime, timedelta

from services.kernel.ids import id_at, new_id


def test_a_new_id_is_a_version_7_uuid_indistinguishable_from_its_parsed_text() -> None:
    made = new_id()
    parsed = uuid.UUID(str(made))
    assert (made.version, made.variant) == (7, uuid.RFC_4122)
    assert made == parsed
    assert hash(made) == hash(parsed)
    assert (made.bytes, made.hex, made.int) == (parsed.bytes, parsed.hex, parsed.int)
    assert made.is_safe == parsed.is_safe
    assert pickle.loads(pickle.dumps(made)) == made  # noqa: S301 (ids cross into worker processes)
    assert {made: 1}[parsed] == 1


def test_new_ids_sort_in_the_order_they_were_made() -> None:
    made = [new_id() for _ in range(1_000)]
    assert sorted(made) == made
    assert len(set(made)) == 1_000


def test_an_id_at_a_moment_sorts_by_its_moment_and_repeats_with_the_same_entropy() -> None:
    moment = datetime(2026, 3, 1, 12, tzinfo=UTC)
    later = moment + timedelta(microseconds=1)
    assert id_at(moment) < id_at(later)
    assert id_at(moment, b"12345678") == id_at(moment, b"12345678abc")
    assert id_at(moment, b"12345678") != id_at(moment, b"87654321")
    made = id_at(moment, b"12345678")
    assert (made.version, made.variant) == (7, uuid.RFC_4122)
    assert made == uuid.UUID(str(made))
