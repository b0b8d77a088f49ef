"""`kinfolk streams`: each stream's entries and each group's lag and pending, groups no service
declares marked retired, and dropping only such a group (after which the stream trims again)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from services.kernel.stream_trim import StreamTrimmer
from services.kernel.streams import GroupInUse, GroupStatus, drop_retired_group, stream_status
from services.registry import SERVICES

MEMBERS = "kinfolk:events:members"
REWARDS = "kinfolk:events:rewards"


async def test_status_shows_each_groups_lag_and_pending_and_marks_the_retired(
    redis: Redis,
) -> None:
    for n in range(5):
        await redis.xadd(REWARDS, {"n": str(n)})
    await redis.xgroup_create(REWARDS, "community.members", id="0")
    read = await redis.xreadgroup("community.members", "c1", {REWARDS: ">"}, count=3)
    await redis.xack(REWARDS, "community.members", *[entry for entry, _ in read[0][1][:2]])
    await redis.xgroup_create(REWARDS, "retired.group", id="0")
    await redis.xgroup_create(REWARDS, "gateway.member-news", id="$")  # live: at the end
    await redis.xgroup_create(MEMBERS, "gateway.member-news", id="$", mkstream=True)
    await redis.xadd("kinfolk:events:rewards:dead", {"n": "x"})  # not a stream of events

    statuses = {status.service: status for status in await stream_status(redis, SERVICES)}
    assert "rewards:dead" not in statuses
    rewards = statuses["rewards"]
    assert rewards.entries == 5
    assert rewards.groups == (
        GroupStatus("community.members", True, False, 1, 1, lag=2),
        GroupStatus("gateway.member-news", True, True, 0, 0, lag=0),
        GroupStatus("retired.group", False, False, 0, 0, lag=5),
    )
    assert [group.name for group in rewards.retired] == ["retired.group"]
    # Declared inbox groups the workers have not created yet (the stream waits for them);
    # never a live one.
    assert "community.milestones" in rewards.missing
    assert not {"community.members", "gateway.member-news"} & set(rewards.missing)
    # The live group reads rewards and community only: on members it is someone else's.
    assert [g.name for g in statuses["members"].retired] == ["gateway.member-news"]
    # A declared stream Redis does not have yet is listed, empty.
    assert (statuses["webhooks"].entries, statuses["webhooks"].groups) == (0, ())


async def test_only_a_group_no_service_declares_can_be_dropped(redis: Redis) -> None:
    await redis.xadd(MEMBERS, {"n": "1"})
    for group in ("rewards.members", "retired.group"):
        await redis.xgroup_create(MEMBERS, group, id="0")
    await redis.xreadgroup("retired.group", "c1", {MEMBERS: ">"})
    with pytest.raises(ValueError, match=r"'rewards\.members' is declared by a service"):
        await drop_retired_group(redis, SERVICES, "members", "rewards.members")
    with pytest.raises(LookupError, match=r"no group 'nope' on kinfolk:events:members"):
        await drop_retired_group(redis, SERVICES, "members", "nope")
    # c1 read from it just now: an older release may still run it.
    with pytest.raises(GroupInUse, match=r"'retired\.group' .* was read 0 s ago by c1"):
        await drop_retired_group(redis, SERVICES, "members", "retired.group")
    assert len(await redis.xinfo_groups(MEMBERS)) == 2
    assert await drop_retired_group(redis, SERVICES, "members", "retired.group", force=True) == 1
    groups = [g["name"] for g in await redis.xinfo_groups(MEMBERS)]
    assert groups == [b"rewards.members"]


async def test_a_group_nobody_has_read_from_lately_is_dropped_without_force(
    redis: Redis,
) -> None:
    await redis.xadd(MEMBERS, {"n": "1"})
    await redis.xgroup_create(MEMBERS, "retired.group", id="0")
    await redis.xreadgroup("retired.group", "c1", {MEMBERS: ">"})
    with pytest.raises(GroupInUse):
        await drop_retired_group(redis, SERVICES, "members", "retired.group", in_use_seconds=0.3)
    await asyncio.sleep(0.4)
    dropped = await drop_retired_group(
        redis, SERVICES, "members", "retired.group", in_use_seconds=0.3
    )
    assert dropped == 1


async def test_a_retired_group_holds_its_stream_back_until_it_is_dropped(redis: Redis) -> None:
    await redis.xadd(MEMBERS, {"n": "1"})
    await redis.xgroup_create(MEMBERS, "retired.group", id="0")
    await redis.xgroup_create(MEMBERS, "rewards.members", id="$")  # has read everything
    trimmer = StreamTrimmer(redis, {MEMBERS: {"rewards.members"}}, set())
    assert await trimmer.trim_all() == 0
    await drop_retired_group(redis, SERVICES, "members", "retired.group")
    assert await trimmer.trim_all() == 1


async def test_where_redis_cannot_tell_the_lag_status_counts_it(redis: Redis) -> None:
    """Redis 7 gives no lag once an entry past the group's position was deleted (and Redis 6,
    the embedded server, gives none at all): the unread entries are counted instead."""
    ids = [await redis.xadd(MEMBERS, {"n": str(n)}) for n in range(5)]
    await redis.xgroup_create(MEMBERS, "rewards.members", id="0")
    await redis.xreadgroup("rewards.members", "c1", {MEMBERS: ">"}, count=1)
    await redis.xdel(MEMBERS, ids[2])
    [info] = await redis.xinfo_groups(MEMBERS)
    assert info.get("lag") is None
    statuses = {status.service: status for status in await stream_status(redis, SERVICES)}
    [group] = statuses["members"].groups
    assert (group.lag, group.lag_counted, group.pending) == (3, True, 1)
