"""A steady load of purchases, redemptions, posts and bookings, sent as a careful client sends
them: each write carries its idempotency key (a purchase's is its order id), and a write that got
no answer, or a 503, is sent again with the same key until it gets one. So every write ends with
an answer, and the system must hold each accepted write's effect exactly once however many times
it was sent.

Every answer is recorded: a 500 is a bug wherever it comes from, faults included (a service that
lost its database answers 503).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.kernel.auth import MemberTokenCodec

CLIENTS = 4  # loops sending one write after another, each with its own members
MEMBERS_PER_CLIENT = 3
# How long a write is sent again before the load gives up on it (the test then fails).
ANSWER_DEADLINE_SECONDS = 90.0
RETRY_PAUSE_SECONDS = 0.25
# The events of the load's writes that the webhook endpoint wants.
WEBHOOK_EVENT_TYPES = ("purchase.recorded", "perk.redeemed", "post.created", "experience.booked")


@dataclass(frozen=True)
class Member:
    id: str
    external_id: str
    headers: dict[str, str]


@dataclass
class Accepted:
    """The ids of what the system accepted: what must be there, exactly once, afterwards."""

    order_ids: set[str] = field(default_factory=set)
    redemption_ids: set[str] = field(default_factory=set)
    post_ids: set[str] = field(default_factory=set)
    booking_ids: set[str] = field(default_factory=set)
    cancelled_booking_ids: set[str] = field(default_factory=set)


@dataclass
class Answers:
    """Every answer the load got, by status (None: no answer at all)."""

    statuses: Counter[int | None] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # the 500s: each a bug
    unanswered: list[str] = field(default_factory=list)  # writes given up on
    refused: list[str] = field(default_factory=list)  # final 4xx answers


class Load:
    def __init__(self, client: httpx.AsyncClient, staff_key: str, brand_id: uuid.UUID) -> None:
        self.client = client
        self.staff = {"Authorization": f"Bearer {staff_key}"}
        self.brand_id = brand_id
        self.members: list[Member] = []
        self.perk_id = ""
        self.session_id = ""
        self.endpoint_id = ""
        self.accepted = Accepted()
        self.answers = Answers()

    # --- Sending ---------------------------------------------------------------------------

    async def send(
        self, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> httpx.Response | None:
        """The write until it gets an answer other than 503; None if it never did."""
        deadline = time.monotonic() + ANSWER_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            try:
                response = await self.client.request(method, path, headers=headers, json=body)
            except httpx.TransportError:
                self.answers.statuses[None] += 1
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                continue
            self.answers.statuses[response.status_code] += 1
            if response.status_code == 503:
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                continue
            if response.status_code >= 500:
                # A bug: noted, and sent again so the run still ends with every write answered.
                self.answers.server_errors.append(
                    f"{method} {path}: {response.status_code} {response.text[:500]}"
                )
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                continue
            if response.status_code >= 400:
                self.answers.refused.append(
                    f"{method} {path}: {response.status_code} {response.text[:300]}"
                )
            return response
        self.answers.unanswered.append(f"{method} {path}")
        return None

    async def setup_call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.send(method, path, self.staff, body)
        assert response is not None, f"{path}: no answer"
        assert response.is_success, (path, response.status_code, response.text)
        return response.json() if response.content else None

    # --- The brand -------------------------------------------------------------------------

    async def prepare(self, codec: MemberTokenCodec, receiver_url: str) -> None:
        """Members with points to spend, a perk, a session with room, the webhook endpoint."""
        await self.setup_call(
            "PUT", "/rewards/v1/program", {"currency": "EUR", "points_per_unit": 1}
        )
        for index in range(CLIENTS * MEMBERS_PER_CLIENT):
            external_id = f"fault-{index}-{uuid.uuid4().hex[:6]}"
            member = await self.setup_call(
                "POST",
                "/members/v1/members",
                {"external_id": external_id, "email": f"{external_id}@example.com"},
            )
            token = codec.issue(self.brand_id, uuid.UUID(member["id"]), timedelta(hours=2))
            self.members.append(
                Member(member["id"], external_id, {"Authorization": f"Bearer {token}"})
            )
        perk = await self.setup_call(
            "POST",
            "/rewards/v1/perks",
            {"name": "Travel-size serum", "kind": "free_product", "category": "skincare",
             "cost_points": 1},
        )  # fmt: skip
        self.perk_id = perk["id"]
        experience = await self.setup_call(
            "POST",
            "/community/v1/experiences",
            {"title": "Skincare masterclass", "kind": "masterclass"},
        )
        starts = datetime.now(UTC) + timedelta(days=30)
        session = await self.setup_call(
            "POST",
            f"/community/v1/experiences/{experience['id']}/sessions",
            {
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=2)).isoformat(),
                "time_zone": "Europe/Paris",
                "place": {"kind": "online", "url": "https://live.example.com/masterclass"},
                "capacity": 10_000,
            },
        )
        self.session_id = session["id"]
        endpoint = await self.setup_call(
            "POST",
            "/webhooks/v1/endpoints",
            {"url": receiver_url, "event_types": list(WEBHOOK_EVENT_TYPES)},
        )
        self.endpoint_id = endpoint["id"]

    async def give_points(self) -> None:
        """Enough points for every redemption; once rewards knows the members (from events)."""
        for member in self.members:
            await self.setup_call(
                "POST",
                f"/rewards/v1/members/{member.id}/adjustments",
                {"points": 1_000_000, "reason": "fault-injection test"},
            )

    # --- The writes ------------------------------------------------------------------------

    async def purchase(self, member: Member, rng: random.Random) -> None:
        order_id = f"order-{uuid.uuid4()}"
        amount = rng.randrange(1_000, 20_000)
        body = {
            "external_id": member.external_id,
            "order_id": order_id,
            "occurred_at": datetime.now(UTC).isoformat(),
            "amount_minor": amount,
            "currency": "EUR",
            "lines": [{"sku": "SKU-SERUM-01", "category": "skincare", "amount_minor": amount}],
        }
        response = await self.send("POST", "/rewards/v1/purchases", self.staff, body)
        if response is not None and response.is_success:
            self.accepted.order_ids.add(order_id)

    async def redemption(self, member: Member, rng: random.Random) -> None:
        headers = {**member.headers, "Idempotency-Key": str(uuid.uuid4())}
        body = {"perk_id": self.perk_id}
        response = await self.send("POST", "/rewards/v1/me/redemptions", headers, body)
        if response is not None and response.is_success:
            self.accepted.redemption_ids.add(response.json()["id"])

    async def post(self, member: Member, rng: random.Random) -> None:
        headers = {**member.headers, "Idempotency-Key": str(uuid.uuid4())}
        body = {"body": f"My evening routine, step by step ({uuid.uuid4().hex[:8]}).",
                "tags": ["skincare", "routine"]}  # fmt: skip
        response = await self.send("POST", "/community/v1/posts", headers, body)
        if response is not None and response.is_success:
            self.accepted.post_ids.add(response.json()["id"])

    async def booking(self, member: Member, rng: random.Random) -> None:
        """A seat, then (as often as not) its cancellation, so the member may book again."""
        headers = {**member.headers, "Idempotency-Key": str(uuid.uuid4())}
        path = f"/community/v1/sessions/{self.session_id}/bookings"
        response = await self.send("POST", path, headers, {"seats": 1})
        if response is None or not response.is_success:
            return
        booking_id = response.json()["id"]
        self.accepted.booking_ids.add(booking_id)
        cancel = await self.send(
            "POST",
            f"/community/v1/bookings/{booking_id}/cancel",
            {**member.headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        if cancel is not None and cancel.is_success:
            self.accepted.cancelled_booking_ids.add(booking_id)

    async def _client_loop(self, index: int, until: float) -> None:
        rng = random.Random(index)
        mine = self.members[index * MEMBERS_PER_CLIENT : (index + 1) * MEMBERS_PER_CLIENT]
        writes = [self.purchase, self.redemption, self.post, self.booking]
        while time.monotonic() < until:
            await rng.choice(writes)(rng.choice(mine), rng)

    async def run(self, seconds: float) -> None:
        """CLIENTS loops for `seconds`; each finishes the write it is on."""
        until = time.monotonic() + seconds
        await asyncio.gather(*(self._client_loop(i, until) for i in range(CLIENTS)))
