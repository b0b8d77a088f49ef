"""The members area: the member's consents, and the mutations on their own profile.

The profile's fields themselves are on `Me` (schema/me.py); this module adds consents and the
`updateProfile` and `setConsent` mutations over the members service's `/me` routes.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from services.gateway.calls import Rejected, read, send
from services.gateway.context import GatewayInfo
from services.gateway.errors import UserError
from services.gateway.json_values import when

if TYPE_CHECKING:
    from services.gateway.schema.me import Me


@strawberry.enum(description="What a member may consent to.")
class ConsentPurpose(Enum):
    EMAIL_MARKETING = "email_marketing"
    SMS_MARKETING = "sms_marketing"
    PUSH = "push"
    PERSONALISATION = "personalisation"


@strawberry.type(description="The member's choice for one purpose, and when it was made.")
class Consent:
    purpose: ConsentPurpose
    granted: bool
    source: str = strawberry.field(description="Who recorded it: the member, the brand's CRM...")
    changed_at: dt.datetime


def consent_from_json(data: dict[str, Any]) -> Consent:
    return Consent(
        purpose=ConsentPurpose(data["purpose"]),
        granted=bool(data["granted"]),
        source=str(data["source"]),
        changed_at=when(data["changed_at"]),
    )


async def _consents(info: GatewayInfo) -> list[Consent]:
    page = await read(info.context, "members", "/members/v1/me/consents")
    return [consent_from_json(item) for item in page["items"]]


consents_field: Any = strawberry.field(
    resolver=_consents,
    description="The member's consents, one per purpose they have ever been asked about.",
)


# --- Mutations ------------------------------------------------------------------------------


@strawberry.input(
    description="The profile fields to change: omitted fields stay as they are, null clears one."
)
class UpdateProfileInput:
    display_name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    birthday: dt.date | None = strawberry.UNSET
    locale: str | None = strawberry.UNSET
    time_zone: str | None = strawberry.UNSET
    interests: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the list; send [] to clear it."
    )

    def body(self) -> dict[str, Any]:
        """The PATCH body: only the fields sent, so that the others stay."""
        sent: dict[str, Any] = {}
        for name in ("display_name", "email", "birthday", "locale", "time_zone", "interests"):
            value = getattr(self, name)
            if value is strawberry.UNSET:
                continue
            sent[name] = value.isoformat() if isinstance(value, dt.date) else value
        return sent


@strawberry.type
class UpdateProfilePayload:
    me: Annotated[Me, strawberry.lazy("services.gateway.schema.me")] | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetConsentInput:
    purpose: ConsentPurpose
    granted: bool


@strawberry.type
class SetConsentPayload:
    consent: Consent | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class MembersMutation:
    @strawberry.mutation(description="Change the member's own profile.")
    async def update_profile(
        self, info: GatewayInfo, input: UpdateProfileInput
    ) -> UpdateProfilePayload:
        from services.gateway.schema.me import me_of

        try:
            await send(info.context, "members", "PATCH", "/members/v1/me", json=input.body())
        except Rejected as rejected:
            return UpdateProfilePayload(user_errors=rejected.errors)
        # `me` in the payload is read after the change, not from the request's earlier read.
        info.context.loaders.forget_get("members", "/members/v1/me")
        return UpdateProfilePayload(me=me_of(info.context))

    @strawberry.mutation(description="Grant or withdraw one consent.")
    async def set_consent(self, info: GatewayInfo, input: SetConsentInput) -> SetConsentPayload:
        try:
            data = await send(
                info.context,
                "members",
                "PUT",
                f"/members/v1/me/consents/{input.purpose.value}",
                json={"granted": input.granted},
            )
        except Rejected as rejected:
            return SetConsentPayload(user_errors=rejected.errors)
        return SetConsentPayload(consent=consent_from_json(data))
