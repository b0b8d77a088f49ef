"""The embedded Redis a new user runs on: one server per data folder, shared by every Kinfolk
process using that folder (`kinfolk dev`, then `kinfolk token` beside it), stopped by the last."""

from __future__ import annotations

import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

import redis

from services.kernel.embedded import embedded_redis, redis_answers

SECOND_PROCESS = """
import sys
from pathlib import Path

import redis

from services.kernel.embedded import embedded_redis

with embedded_redis(Path(sys.argv[1])) as url:
    client = redis.Redis.from_url(url)
    client.set("written by", "the second process")
    print(client.get("written by the first").decode(), client.info("server")["process_id"])
    client.close()
"""


def _server_pid(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        # The sync client's answer is typed for the async one too.
        info = cast(dict[str, Any], client.info("server"))
        return int(info["process_id"])
    finally:
        client.close()


def test_a_second_process_uses_the_running_server_and_leaves_it_running(tmp_path: Path) -> None:
    folder = tmp_path / "redis"
    with embedded_redis(folder) as url:
        assert url == f"unix://{folder / 'redis.sock'}"
        first = redis.Redis.from_url(url)
        first.set("written by the first", "dev")
        pid = _server_pid(url)

        second = subprocess.run(
            [sys.executable, "-c", SECOND_PROCESS, str(folder)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

        # The second process read the first's data from the same server...
        assert second.stdout.split() == ["dev", str(pid)]
        # ...and leaving, did not stop it or take its socket: new connections of the first
        # process reach the same server and see both writes.
        first.connection_pool.disconnect()
        assert _server_pid(url) == pid
        assert first.get("written by") == b"the second process"
        assert first.get("written by the first") == b"dev"
        first.close()

    # The last process out stopped the server, and the data stays in the folder.
    assert not redis_answers(folder / "redis.sock")
    with embedded_redis(folder) as url:
        again = redis.Redis.from_url(url)
        assert again.get("written by") == b"the second process"
        assert _server_pid(url) != pid
        again.close()


def test_the_server_runs_until_the_last_process_using_it_lets_go(tmp_path: Path) -> None:
    folder = tmp_path / "redis"
    socket = folder / "redis.sock"
    with ExitStack() as starter, ExitStack() as joiner:
        url = starter.enter_context(embedded_redis(folder))
        pid = _server_pid(url)
        assert joiner.enter_context(embedded_redis(folder)) == url

        starter.close()  # the process that started the server stops first
        assert redis_answers(socket)
        assert _server_pid(url) == pid

        joiner.close()
        assert not redis_answers(socket)

    # A later start is not misled by the stopped server's registry: a new server, same socket.
    with embedded_redis(folder) as url:
        assert url == f"unix://{socket}"
        assert _server_pid(url) != pid
