"""`kinfolk dev` on the embedded default, as a new user runs it: nothing configured but Python."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXTransport

pytestmark = pytest.mark.embedded


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kinfolk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _wait_ready(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"kinfolk dev exited early with {process.returncode}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("kinfolk dev did not become ready")


HOME_SCREEN = """
query Home {
  me {
    displayName
    tierStatus { tier { name } }
    points { available pending }
    recommendedPerks(first: 10) { reason item { name costPoints } }
    recommendedPrompts(first: 10) { reason item { title } }
    forYou(first: 10) { reason item { body } }
  }
}
"""


# Starting the embedded servers and seeding the demo brand takes most of a minute on a busy machine.
@pytest.mark.timeout(240)
def test_kinfolk_dev_runs_on_embedded_servers_and_stops_them(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINFOLK_")}
    env.update(KINFOLK_DATA_DIR=str(data_dir), KINFOLK_LOG_LEVEL="WARNING")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    dev = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_ready(base, dev)
        ready = httpx.get(f"{base}/readyz").json()
        assert ready == {"status": "ready", "database": "ok", "redis": "ok"}

        # The demo brand is seeded, and its key (kept in the data folder) lists its members.
        demo = json.loads((data_dir / "demo-brand.json").read_text())
        listed = httpx.get(
            f"{base}/members/v1/members",
            params={"limit": 3},
            headers={"Authorization": f"Bearer {demo['api_key']}"},
        )
        assert listed.status_code == 200
        # The simulator's members (seed 7), oldest first.
        assert [m["external_id"] for m in listed.json()["items"]] == [
            "s7-0000000",
            "s7-0000001",
            "s7-0000002",
        ]

        # A second process works against the running dev servers: a new brand, a member, a token.
        created = _kinfolk(env, "brand", "create", "Acme Beauty", "--json")
        assert created.returncode == 0, created.stderr
        brand = json.loads(created.stdout)
        staff = {"Authorization": f"Bearer {brand['api_key']}"}
        member = httpx.post(
            f"{base}/members/v1/members",
            json={"external_id": "crm-1", "email": "ada@example.com", "display_name": "Ada"},
            headers=staff,
        )
        assert member.status_code == 201, member.text
        token = _kinfolk(env, "token", "--brand", brand["brand_id"], "--member", "crm-1")
        assert token.returncode == 0, token.stderr
        me = httpx.get(
            f"{base}/members/v1/me", headers={"Authorization": f"Bearer {token.stdout.strip()}"}
        )
        assert me.status_code == 200
        assert me.json()["id"] == member.json()["id"]
        # The demo brand's key does not reach Acme's member.
        other = httpx.get(
            f"{base}/members/v1/members/{member.json()['id']}",
            headers={"Authorization": f"Bearer {demo['api_key']}"},
        )
        assert other.status_code == 404

        # The apps' GraphQL API, as an app drives it (with gql, a client we did not write): the
        # home screen of one of the demo brand's members.
        minted = _kinfolk(env, "token", "--brand", demo["brand_id"], "--member", "s7-0000000")
        assert minted.returncode == 0, minted.stderr
        transport = HTTPXTransport(
            url=f"{base}/graphql", headers={"Authorization": f"Bearer {minted.stdout.strip()}"}
        )
        with Client(transport=transport, fetch_schema_from_transport=True) as session:
            home = session.execute(GraphQLRequest(HOME_SCREEN))["me"]
        profile = httpx.get(
            f"{base}/members/v1/members",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {demo['api_key']}"},
        ).json()["items"][0]
        assert home["displayName"] == profile["display_name"]
        assert home["points"]["available"] >= 0

        # Marketing's member 360 holds the same member, fed by the seeded history's events.
        seen = httpx.get(
            f"{base}/marketing/v1/members/{profile['id']}",
            headers={"Authorization": f"Bearer {demo['api_key']}"},
        )
        assert seen.status_code == 200, seen.text
        assert seen.json()["display_name"] == profile["display_name"]
    finally:
        dev.send_signal(signal.SIGINT)
        output, _ = dev.communicate(timeout=60)
    assert dev.returncode == 0, output
    assert "staff API key" in output
    # Both embedded servers were stopped on exit.
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    assert not (data_dir / "redis" / "redis.sock").exists()
