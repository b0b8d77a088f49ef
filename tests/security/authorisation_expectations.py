"""Who may call what: the expected answer of every REST route and every GraphQL root field for
every kind of caller. `test_authorisation_matrix.py` tries each (route or field, caller) and
compares; a route or field missing here fails that test, so a new one must be classified.

Callers (`Who`): nobody; the member the fixtures belong to (`SELF`); another member of the same
brand (`PEER`); a member of another brand (`OUTSIDER`); a staff key with exactly the scope the
route needs (`STAFF`; for routes no staff key may use, a key with every scope); a key with every
scope but that one and those that imply it (`STAFF_LACKING`); another brand's key with every scope
(`FOREIGN_STAFF`); a revoked key; an expired member token; an `alg: none` token; and an algorithm
confusion token (`RS256` in the header over an HMAC signature made with the server's own secret).

Answers (`Answer`): `ALLOWED` (2xx, or a 4xx other than 401/403/404: the empty body `{}` sent to
a write is refused with 422 only after the caller got in), `UNAUTHENTICATED` (401), `FORBIDDEN`
(403) and `NOT_FOUND` (404: another brand's or member's object is not revealed; or, for a caller
let in, the route's object is a random id that names nothing).

An entry states which callers get in; the rest of its row follows from that (`Access.answer`):
bad credentials are refused with 401 (unless the route needs none), a caller of the wrong kind
with 403, and a caller of another brand let in by kind meets 404 on any path that names an
object of the fixtures' brand. `answers=` overrides single cells where a route decides more
finely (the author of a post may delete it, another member may not).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from services.kernel.auth import Scope


class Who(StrEnum):
    ANONYMOUS = "anonymous"
    SELF = "self"
    PEER = "peer"
    OUTSIDER = "outsider"
    STAFF = "staff"
    STAFF_LACKING = "staff-lacking"
    FOREIGN_STAFF = "foreign-staff"
    REVOKED_KEY = "revoked-key"
    EXPIRED_TOKEN = "expired-token"
    ALG_NONE = "alg-none"
    ALG_CONFUSION = "alg-confusion"


# Credentials that must never get anyone in.
BAD_CREDENTIALS = (
    Who.ANONYMOUS,
    Who.REVOKED_KEY,
    Who.EXPIRED_TOKEN,
    Who.ALG_NONE,
    Who.ALG_CONFUSION,
)
# Member tokens, and the callers of the other brand.
MEMBERS = (Who.SELF, Who.PEER, Who.OUTSIDER)
OF_OTHER_BRAND = (Who.OUTSIDER, Who.FOREIGN_STAFF)


class Answer(StrEnum):
    ALLOWED = "allowed"
    UNAUTHENTICATED = "401"
    FORBIDDEN = "403"
    NOT_FOUND = "404"


ALLOWED, UNAUTHENTICATED, FORBIDDEN, NOT_FOUND = (
    Answer.ALLOWED,
    Answer.UNAUTHENTICATED,
    Answer.FORBIDDEN,
    Answer.NOT_FOUND,
)


class Fill(StrEnum):
    """How a path parameter is filled."""

    OBJECT = "object"  # the id of a real object of the fixtures' brand (the member's own if theirs)
    RANDOM = "random"  # a random id: nothing has it, so a caller let in meets 404
    VALUE = "value"  # a plain value (a consent purpose, a reaction kind, a tag)


# Every path parameter of every route, by name. A new parameter must be added here.
PARAMETERS: Mapping[str, Fill] = {
    "member_id": Fill.OBJECT,  # SELF
    "purpose": Fill.VALUE,
    "key_id": Fill.OBJECT,  # a key made to be revoked
    "perk_id": Fill.OBJECT,
    "redemption_id": Fill.OBJECT,  # SELF's
    "drop_id": Fill.OBJECT,
    "order_id": Fill.OBJECT,  # SELF's purchase
    "rule_id": Fill.OBJECT,
    "campaign_id": Fill.OBJECT,
    "tier_id": Fill.OBJECT,
    "post_id": Fill.OBJECT,  # SELF's
    "comment_id": Fill.OBJECT,  # SELF's, on their post
    "kind": Fill.VALUE,
    "group_id": Fill.OBJECT,
    "tag": Fill.VALUE,
    "prompt_id": Fill.OBJECT,
    "challenge_id": Fill.OBJECT,
    "badge_id": Fill.OBJECT,
    "idea_id": Fill.OBJECT,  # SELF's
    "testimonial_id": Fill.OBJECT,  # a request to SELF about their post
    "experience_id": Fill.OBJECT,  # hosted by the brand
    "session_id": Fill.OBJECT,
    "booking_id": Fill.OBJECT,  # SELF's
    "term_id": Fill.OBJECT,
    "example_id": Fill.OBJECT,
    "exposure_id": Fill.OBJECT,  # a list shown to SELF
    "experiment_id": Fill.OBJECT,
    "item_id": Fill.OBJECT,  # perk:<perk id>
    "segment_id": Fill.OBJECT,
    "version": Fill.OBJECT,  # the segment's first version
    "export_id": Fill.OBJECT,
    "schedule_id": Fill.RANDOM,  # a schedule needs a writable folder: not worth making
    "endpoint_id": Fill.OBJECT,
    "message_id": Fill.OBJECT,
}

_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")


def path_parameters(template: str) -> list[str]:
    return _PARAMETER.findall(template)


@dataclass(frozen=True)
class Access:
    """Who gets in: staff keys holding `scope`, members of the brand (`members`), everyone
    (`public`); `answers` overrides single cells.

    A write is sent `{}` unless `body` says otherwise, and `query` goes with every try. A route
    that validates its body before it looks its object up answers `{}` with 422 whoever asks,
    so where that would hide whether another brand's object is refused, `body` is a valid one
    (strings "{name}" stand for the world's values: path parameters, "peer_id", "soon", ...).
    """

    scope: Scope | None = None
    members: bool = False
    public: bool = False
    answers: Mapping[Who, Answer] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None
    query: Mapping[str, str] = field(default_factory=dict)

    def callers(self) -> tuple[Who, ...]:
        # A key "with every scope but the needed one" only means something when one is needed.
        return tuple(w for w in Who if w is not Who.STAFF_LACKING or self.scope is not None)

    def answer(self, who: Who, template: str) -> Answer:
        if who in self.answers:
            return self.answers[who]
        found = self._by_kind(who, template)
        fills = {PARAMETERS.get(p) for p in path_parameters(template)}
        if found is ALLOWED and Fill.RANDOM in fills:
            return NOT_FOUND
        return found

    def _by_kind(self, who: Who, template: str) -> Answer:
        if self.public:
            return ALLOWED
        if who in BAD_CREDENTIALS:
            return UNAUTHENTICATED
        names_object = any(PARAMETERS.get(p) is Fill.OBJECT for p in path_parameters(template))
        if who in MEMBERS:
            if not self.members:
                return FORBIDDEN
            return NOT_FOUND if who is Who.OUTSIDER and names_object else ALLOWED
        if who is Who.STAFF_LACKING or self.scope is None:
            return FORBIDDEN
        if who is Who.FOREIGN_STAFF and names_object:
            return NOT_FOUND
        return ALLOWED


Body = Mapping[str, Any] | None
Query = Mapping[str, str] | None


def staff(scope: Scope, *, body: Body = None, query: Query = None, **answers: Answer) -> Access:
    """Staff keys with `scope` only."""
    return Access(scope=scope, answers=_cells(answers), body=body, query=query or {})


def member(*, body: Body = None, query: Query = None, **answers: Answer) -> Access:
    """Member tokens only (each member acting as themself)."""
    return Access(members=True, answers=_cells(answers), body=body, query=query or {})


def actor(scope: Scope, *, body: Body = None, query: Query = None, **answers: Answer) -> Access:
    """Staff keys with `scope`, or member tokens: the route decides what each may do."""
    return Access(scope=scope, members=True, answers=_cells(answers), body=body, query=query or {})


def public(*, body: Body = None, **answers: Answer) -> Access:
    """No credentials needed: the route is open (probes, documents) or checks its own proof."""
    return Access(public=True, answers=_cells(answers), body=body)


def _cells(answers: Mapping[str, Answer]) -> dict[Who, Answer]:
    return {Who(name.replace("_", "-")): answer for name, answer in answers.items()}


MR, MW = Scope.MEMBERS_READ, Scope.MEMBERS_WRITE
RR, RW = Scope.REWARDS_READ, Scope.REWARDS_WRITE
CR, CW = Scope.COMMUNITY_READ, Scope.COMMUNITY_WRITE
XR, XW = Scope.RECOMMENDER_READ, Scope.RECOMMENDER_WRITE
KR, KW = Scope.MARKETING_READ, Scope.MARKETING_WRITE
HOOKS, ADMIN = Scope.WEBHOOKS, Scope.ADMIN

# --- REST -------------------------------------------------------------------------------------

# Each service's part of a privacy export: the member themselves, or staff with `members:read`.
# Another member is told there is no such member; another brand's staff gets what the service
# holds on that id in their brand: nothing (`{}`).
_PRIVACY = actor(MR, peer=NOT_FOUND, foreign_staff=ALLOWED)

REST: Mapping[str, Access] = {
    # Kernel: probes and documents.
    "GET /healthz": public(),
    "GET /readyz": public(),
    "GET /metrics": public(),
    "GET /openapi.json": public(),
    "GET /docs": public(),
    "GET /docs/oauth2-redirect": public(),
    "GET /redoc": public(),
    # --- members
    "POST /members/v1/members": staff(MW),
    "POST /members/v1/members/import": staff(MW),
    "GET /members/v1/members": staff(MR),
    "GET /members/v1/members/{member_id}": staff(MR),
    "PATCH /members/v1/members/{member_id}": staff(MW),
    "POST /members/v1/members/{member_id}/suspend": staff(MW),
    "POST /members/v1/members/{member_id}/reactivate": staff(MW),
    "POST /members/v1/members/{member_id}/erase": staff(MW),
    "GET /members/v1/members/{member_id}/consents": staff(MR),
    "PUT /members/v1/members/{member_id}/consents/{purpose}": staff(
        MW, body={"granted": True, "source": "crm"}
    ),
    "GET /members/v1/members/{member_id}/export": staff(MR),
    "GET /members/v1/me": member(),
    "PATCH /members/v1/me": member(),
    "GET /members/v1/me/consents": member(),
    "PUT /members/v1/me/consents/{purpose}": member(),
    "GET /members/v1/me/export": member(),
    "POST /members/v1/api-keys": staff(ADMIN),
    "GET /members/v1/api-keys": staff(ADMIN),
    "DELETE /members/v1/api-keys/{key_id}": staff(ADMIN),
    # For services in other processes: the body must hold a whole key, which is the proof.
    "POST /members/v1/internal/api-keys/verify": public(),
    # --- rewards
    "GET /rewards/v1/privacy/members/{member_id}": _PRIVACY,
    "GET /rewards/v1/program": staff(RR),
    "PUT /rewards/v1/program": staff(RW),
    "GET /rewards/v1/members/{member_id}/balance": staff(RR),
    "GET /rewards/v1/members/{member_id}/ledger": staff(RR),
    "POST /rewards/v1/members/{member_id}/adjustments": staff(
        RW, body={"points": 10, "reason": "Goodwill"}
    ),
    "GET /rewards/v1/me/balance": member(),
    "GET /rewards/v1/me/ledger": member(),
    "GET /rewards/v1/me/summary": member(),
    "GET /rewards/v1/members/{member_id}/summary": staff(RR),
    "POST /rewards/v1/perks": staff(RW),
    "GET /rewards/v1/perks": staff(RR),
    "GET /rewards/v1/perks/{perk_id}": staff(RR),
    "PATCH /rewards/v1/perks/{perk_id}": staff(RW),
    "DELETE /rewards/v1/perks/{perk_id}": staff(RW),
    "POST /rewards/v1/perks/{perk_id}/codes": staff(RW, body={"codes": ["MATRIX-CODE-1"]}),
    "POST /rewards/v1/members/{member_id}/redemptions": staff(RW, body={"perk_id": "{perk_id}"}),
    "GET /rewards/v1/members/{member_id}/redemptions": staff(RR),
    "POST /rewards/v1/redemptions/{redemption_id}/cancel": staff(RW),
    "GET /rewards/v1/me/perks": member(),
    "POST /rewards/v1/me/redemptions": member(),
    "GET /rewards/v1/me/redemptions": member(),
    "POST /rewards/v1/me/redemptions/{redemption_id}/reveal": member(peer=NOT_FOUND),
    "POST /rewards/v1/me/redemptions/{redemption_id}/cancel": member(peer=NOT_FOUND),
    "POST /rewards/v1/drops": staff(RW),
    "GET /rewards/v1/drops": staff(RR),
    "GET /rewards/v1/drops/{drop_id}": staff(RR),
    "PATCH /rewards/v1/drops/{drop_id}": staff(RW),
    "DELETE /rewards/v1/drops/{drop_id}": staff(RW),
    "POST /rewards/v1/drops/{drop_id}/draw": staff(RW),
    "GET /rewards/v1/drops/{drop_id}/audit": staff(RR),
    "GET /rewards/v1/me/drops": member(),
    "POST /rewards/v1/me/drops/{drop_id}/entries": member(),
    "POST /rewards/v1/purchases": staff(RW),
    "GET /rewards/v1/purchases/{order_id:path}": staff(RR),
    "POST /rewards/v1/returns": staff(RW),
    "POST /rewards/v1/rules/simulate": staff(RR),
    "POST /rewards/v1/rules/simulate-activity": staff(RR),
    "POST /rewards/v1/rules": staff(RW),
    "GET /rewards/v1/rules": staff(RR),
    "GET /rewards/v1/rules/{rule_id}": staff(RR),
    "PATCH /rewards/v1/rules/{rule_id}": staff(RW),
    "DELETE /rewards/v1/rules/{rule_id}": staff(RW),
    "POST /rewards/v1/campaigns": staff(RW),
    "GET /rewards/v1/campaigns": staff(RR),
    "GET /rewards/v1/campaigns/{campaign_id}": staff(RR),
    "PATCH /rewards/v1/campaigns/{campaign_id}": staff(RW),
    "DELETE /rewards/v1/campaigns/{campaign_id}": staff(RW),
    "GET /rewards/v1/tiers": staff(RR),
    "POST /rewards/v1/tiers": staff(RW),
    "GET /rewards/v1/tiers/{tier_id}": staff(RR),
    "PATCH /rewards/v1/tiers/{tier_id}": staff(RW),
    "DELETE /rewards/v1/tiers/{tier_id}": staff(RW),
    "GET /rewards/v1/members/{member_id}/tier": staff(RR),
    "GET /rewards/v1/me/tier": member(),
    # --- community: posts, comments, reactions, bookmarks
    "GET /community/v1/privacy/members/{member_id}": _PRIVACY,
    "POST /community/v1/posts": member(),
    "GET /community/v1/posts/{post_id}": member(),
    "PATCH /community/v1/posts/{post_id}": member(body={"body": "Edited."}, peer=FORBIDDEN),
    "DELETE /community/v1/posts/{post_id}": member(peer=FORBIDDEN),
    "POST /community/v1/posts/{post_id}/comments": member(body={"body": "Same here."}),
    "GET /community/v1/comments/{comment_id}": member(),
    "DELETE /community/v1/comments/{comment_id}": member(peer=FORBIDDEN),
    "POST /community/v1/posts/{post_id}/reactions": member(body={"kind": "love"}),
    "DELETE /community/v1/posts/{post_id}/reactions/{kind}": member(),
    "POST /community/v1/comments/{comment_id}/reactions": member(body={"kind": "love"}),
    "DELETE /community/v1/comments/{comment_id}/reactions/{kind}": member(),
    "PUT /community/v1/posts/{post_id}/bookmark": member(),
    # Taking back a bookmark one does not have answers 204 whatever the post: nothing to hide.
    "DELETE /community/v1/posts/{post_id}/bookmark": member(outsider=ALLOWED),
    "GET /community/v1/posts": member(query={"ids": "{post_id}"}),
    "GET /community/v1/feeds/following": member(),
    "GET /community/v1/feeds/groups/{group_id}": member(),
    "GET /community/v1/feeds/tags/{tag}": member(),
    "GET /community/v1/me/posts": member(),
    "GET /community/v1/members/{member_id}/posts": member(),
    "GET /community/v1/posts/{post_id}/comments": member(),
    "GET /community/v1/me/bookmarks": member(),
    "GET /community/v1/staff/posts": staff(CR),
    "GET /community/v1/staff/posts/{post_id}": staff(CR),
    "GET /community/v1/staff/comments": staff(CR),
    "GET /community/v1/staff/comments/{comment_id}": staff(CR),
    # --- community: social
    "PUT /community/v1/me/following/{member_id}": member(),
    "DELETE /community/v1/me/following/{member_id}": member(),
    "GET /community/v1/me/following": member(),
    "PUT /community/v1/me/blocks/{member_id}": member(),
    "DELETE /community/v1/me/blocks/{member_id}": member(),
    "GET /community/v1/me/blocks": member(),
    "PUT /community/v1/me/mutes/{member_id}": member(),
    "DELETE /community/v1/me/mutes/{member_id}": member(),
    "GET /community/v1/me/mutes": member(),
    "GET /community/v1/me/followers": member(),
    "GET /community/v1/members/{member_id}/followers": member(),
    "GET /community/v1/members/{member_id}/following": member(),
    "GET /community/v1/members": actor(CR, query={"ids": "{member_id}"}),
    # --- community: groups
    "POST /community/v1/groups": actor(CW),
    "GET /community/v1/groups": actor(CR),
    "GET /community/v1/groups/{group_id}": actor(CR),
    "PATCH /community/v1/groups/{group_id}": actor(CW, self=FORBIDDEN, peer=FORBIDDEN),
    "POST /community/v1/groups/{group_id}/archive": actor(CW, self=FORBIDDEN, peer=FORBIDDEN),
    "POST /community/v1/groups/{group_id}/members": member(),
    "DELETE /community/v1/groups/{group_id}/members/me": member(),
    "GET /community/v1/groups/{group_id}/members": actor(CR),
    "DELETE /community/v1/groups/{group_id}/members/{member_id}": actor(
        CW, self=FORBIDDEN, peer=FORBIDDEN
    ),
    "POST /community/v1/groups/{group_id}/members/{member_id}/reinstate": actor(
        CW, self=FORBIDDEN, peer=FORBIDDEN
    ),
    "POST /community/v1/groups/{group_id}/moderators": actor(
        CW, body={"member_id": "{peer_id}"}, self=FORBIDDEN, peer=FORBIDDEN
    ),
    "DELETE /community/v1/groups/{group_id}/moderators/{member_id}": actor(
        CW, self=FORBIDDEN, peer=FORBIDDEN
    ),
    # --- community: prompts and challenges
    "POST /community/v1/prompts": staff(CW),
    "GET /community/v1/prompts": actor(CR),
    "GET /community/v1/prompts/{prompt_id}": staff(CR),
    "PATCH /community/v1/prompts/{prompt_id}": staff(CW),
    "DELETE /community/v1/prompts/{prompt_id}": staff(CW),
    "GET /community/v1/me/prompts": member(),
    "POST /community/v1/prompts/{prompt_id}/answers": member(body={"body": "SPF, always."}),
    "GET /community/v1/prompts/{prompt_id}/answers": actor(CR),
    "POST /community/v1/challenges": staff(CW),
    "GET /community/v1/challenges": staff(CR),
    "GET /community/v1/challenges/{challenge_id}": staff(CR),
    "PATCH /community/v1/challenges/{challenge_id}": staff(CW),
    "DELETE /community/v1/challenges/{challenge_id}": staff(CW),
    "GET /community/v1/challenges/{challenge_id}/participants": staff(CR),
    "POST /community/v1/challenges/{challenge_id}/participants": member(),
    "GET /community/v1/me/challenges": member(),
    "GET /community/v1/me/challenges/{challenge_id}": member(),
    # --- community: reputation and badges
    "GET /community/v1/me/reputation": member(),
    "GET /community/v1/members/{member_id}/reputation": staff(CR),
    "GET /community/v1/members/{member_id}/reputation/events": staff(CR),
    "PUT /community/v1/members/{member_id}/trust-level": staff(CW, body={"trust_level": 2}),
    "DELETE /community/v1/members/{member_id}/trust-level": staff(CW),
    "POST /community/v1/badges": staff(CW),
    "GET /community/v1/badges": staff(CR),
    "GET /community/v1/badges/{badge_id}": actor(CR),
    "PATCH /community/v1/badges/{badge_id}": staff(CW),
    "DELETE /community/v1/badges/{badge_id}": staff(CW),
    "GET /community/v1/me/badges": member(),
    "GET /community/v1/members/{member_id}/badges": actor(CR),
    # --- community: ideas, milestones, testimonials
    "POST /community/v1/ideas": member(),
    "GET /community/v1/ideas": actor(CR),
    "GET /community/v1/ideas/{idea_id}": actor(CR),
    "POST /community/v1/ideas/{idea_id}/vote": member(),
    # The author's vote counts with the idea; the peer has none to take back (VoteNotFound).
    "DELETE /community/v1/ideas/{idea_id}/vote": member(peer=NOT_FOUND),
    "GET /community/v1/ideas/{idea_id}/voters": staff(CR),
    "POST /community/v1/ideas/{idea_id}/comments": member(body={"body": "Yes please."}),
    "GET /community/v1/ideas/{idea_id}/comments": actor(CR),
    "PUT /community/v1/ideas/{idea_id}/status": staff(CW, body={"status": "planned"}),
    "GET /community/v1/me/milestones": member(),
    "POST /community/v1/milestone-prompts": staff(CW),
    "POST /community/v1/testimonials": staff(CW),
    "GET /community/v1/testimonials": actor(CR),
    "POST /community/v1/testimonials/{testimonial_id}/unfeature": staff(CW),
    "GET /community/v1/me/testimonial-requests": member(),
    "POST /community/v1/me/testimonial-requests/{testimonial_id}/accept": member(peer=NOT_FOUND),
    "POST /community/v1/me/testimonial-requests/{testimonial_id}/decline": member(peer=NOT_FOUND),
    # --- community: experiences
    # A new member's trust level is too low to host (403 TrustLevelTooLow).
    "POST /community/v1/experiences": actor(
        CW,
        body={"title": "My meetup", "kind": "meetup"},
        self=FORBIDDEN,
        peer=FORBIDDEN,
        outsider=FORBIDDEN,
    ),
    "GET /community/v1/experiences": actor(CR),
    "GET /community/v1/experiences/{experience_id}": actor(CR),
    "PATCH /community/v1/experiences/{experience_id}": actor(CW, self=FORBIDDEN, peer=FORBIDDEN),
    "GET /community/v1/experiences/{experience_id}/rating": actor(CR),
    "GET /community/v1/experiences/{experience_id}/reviews": actor(CR),
    "POST /community/v1/experiences/{experience_id}/sessions": actor(
        CW,
        body={
            "starts_at": "{soon}",
            "ends_at": "{later}",
            "time_zone": "Europe/Paris",
            "place": {"kind": "online", "url": "https://example.com/live"},
            "capacity": 5,
        },
        self=FORBIDDEN,
        peer=FORBIDDEN,
    ),
    "GET /community/v1/sessions": actor(CR),
    "GET /community/v1/sessions/{session_id}": actor(CR),
    "PATCH /community/v1/sessions/{session_id}": actor(CW, self=FORBIDDEN, peer=FORBIDDEN),
    "POST /community/v1/sessions/{session_id}/cancel": actor(CW, self=FORBIDDEN, peer=FORBIDDEN),
    "GET /community/v1/sessions/{session_id}/bookings": actor(CR, self=FORBIDDEN, peer=FORBIDDEN),
    "POST /community/v1/sessions/{session_id}/bookings": member(),
    "GET /community/v1/me/bookings": member(),
    "GET /community/v1/bookings/{booking_id}": actor(CR, peer=NOT_FOUND),
    "POST /community/v1/bookings/{booking_id}/cancel": member(peer=NOT_FOUND),
    "POST /community/v1/bookings/{booking_id}/check-in": actor(CW, self=FORBIDDEN, peer=FORBIDDEN),
    # Members check themselves in with the code shown at the session; a wrong one is refused.
    "POST /community/v1/sessions/{session_id}/check-in": member(
        body={"code": "000000"}, self=FORBIDDEN, peer=FORBIDDEN
    ),
    "POST /community/v1/sessions/{session_id}/reviews": member(body={"rating": 5}),
    # --- community: moderation
    "POST /community/v1/reports": member(),
    "GET /community/v1/me/reports": member(),
    "GET /community/v1/moderation/reports": staff(CR),
    # Members who moderate a group see its queue; the others are refused (NotAModerator).
    "GET /community/v1/moderation/queue": actor(
        CR, self=FORBIDDEN, peer=FORBIDDEN, outsider=FORBIDDEN
    ),
    "POST /community/v1/moderation/decisions": actor(CW),
    "GET /community/v1/moderation/decisions": staff(CR),
    "POST /community/v1/moderation/blocklist": staff(CW),
    "GET /community/v1/moderation/blocklist": staff(CR),
    "DELETE /community/v1/moderation/blocklist/{term_id}": staff(CW),
    "GET /community/v1/moderation/settings": staff(CR),
    "PUT /community/v1/moderation/settings": staff(CW),
    "POST /community/v1/moderation/classifier/examples": staff(CW),
    "GET /community/v1/moderation/classifier/examples": staff(CR),
    "DELETE /community/v1/moderation/classifier/examples/{example_id}": staff(CW),
    "POST /community/v1/moderation/classifier/train": staff(CW),
    # No classifier has been trained for either brand: 404 ClassifierNotTrained.
    "GET /community/v1/moderation/classifier": staff(CR, staff=NOT_FOUND, foreign_staff=NOT_FOUND),
    # --- recommender
    "GET /recommender/v1/privacy/members/{member_id}": _PRIVACY,
    # Another brand's staff asking for an id their brand does not know get its cold-start list:
    # nothing of the member's (the leak check holds them to that).
    "GET /recommender/v1/members/{member_id}/recommendations": actor(
        XR, query={"surface": "perks"}, peer=NOT_FOUND, foreign_staff=ALLOWED
    ),
    "GET /recommender/v1/members/{member_id}/recommendations/lists": actor(
        XR, query={"list": "perks"}, peer=NOT_FOUND, foreign_staff=ALLOWED
    ),
    "POST /recommender/v1/exposures/{exposure_id}/feedback": actor(
        XW, body={"item_id": "{item_id}", "action": "click"}, peer=NOT_FOUND
    ),
    "POST /recommender/v1/experiments": staff(XW),
    "GET /recommender/v1/experiments": staff(XR),
    "GET /recommender/v1/experiments/{experiment_id}": staff(XR),
    "POST /recommender/v1/experiments/{experiment_id}/end": staff(XW),
    "GET /recommender/v1/experiments/{experiment_id}/report": staff(XR),
    "GET /recommender/v1/models": staff(XR),
    "POST /recommender/v1/models/train": staff(XW),
    "GET /recommender/v1/items/{item_id}/audience": staff(XR, query={"top_share": "0.5"}),
    # --- marketing
    "GET /marketing/v1/privacy/members/{member_id}": _PRIVACY,
    "GET /marketing/v1/members/{member_id}": staff(KR),
    "POST /marketing/v1/members/rebuild": staff(KW),
    "GET /marketing/v1/fields": staff(KR),
    "POST /marketing/v1/segments": staff(KW),
    "GET /marketing/v1/segments": staff(KR),
    "POST /marketing/v1/segments/preview": staff(KR),
    "GET /marketing/v1/segments/{segment_id}": staff(KR),
    "PATCH /marketing/v1/segments/{segment_id}": staff(KW),
    "DELETE /marketing/v1/segments/{segment_id}": staff(KW),
    "GET /marketing/v1/segments/{segment_id}/preview": staff(KR),
    "POST /marketing/v1/segments/{segment_id}/versions": staff(KW),
    "GET /marketing/v1/segments/{segment_id}/versions": staff(KR),
    "GET /marketing/v1/segments/{segment_id}/versions/{version}": staff(KR),
    "GET /marketing/v1/segments/{segment_id}/versions/{version}/changes": staff(
        KR, query={"kind": "entered"}
    ),
    "GET /marketing/v1/churn-models": staff(KR),
    "POST /marketing/v1/churn-models/train": staff(KW),
    "POST /marketing/v1/scores/run": staff(KW),
    "POST /marketing/v1/exports": staff(KW),
    "GET /marketing/v1/exports": staff(KR),
    "GET /marketing/v1/exports/{export_id}": staff(KR),
    # The signed link is the permission: a forged signature is refused whoever sends it.
    "GET /marketing/v1/exports/{export_id}/download": Access(
        public=True,
        answers=dict.fromkeys(Who, FORBIDDEN),
        query={"expires": "4102444800", "signature": "forged"},
    ),
    "POST /marketing/v1/export-schedules": staff(KW),
    "GET /marketing/v1/export-schedules": staff(KR),
    "GET /marketing/v1/export-schedules/{schedule_id}": staff(KR),
    "PATCH /marketing/v1/export-schedules/{schedule_id}": staff(KW),
    "DELETE /marketing/v1/export-schedules/{schedule_id}": staff(KW),
    # --- webhooks
    "GET /webhooks/v1/privacy/members/{member_id}": _PRIVACY,
    "POST /webhooks/v1/endpoints": staff(HOOKS),
    "GET /webhooks/v1/endpoints": staff(HOOKS),
    "GET /webhooks/v1/endpoints/{endpoint_id}": staff(HOOKS),
    "PATCH /webhooks/v1/endpoints/{endpoint_id}": staff(HOOKS),
    "DELETE /webhooks/v1/endpoints/{endpoint_id}": staff(HOOKS),
    "GET /webhooks/v1/endpoints/{endpoint_id}/secret": staff(HOOKS),
    "POST /webhooks/v1/endpoints/{endpoint_id}/secret/rotate": staff(HOOKS),
    "GET /webhooks/v1/messages": staff(HOOKS),
    "GET /webhooks/v1/messages/{message_id}": staff(HOOKS),
    "GET /webhooks/v1/messages/{message_id}/attempts": staff(HOOKS),
    "GET /webhooks/v1/endpoints/{endpoint_id}/attempts": staff(HOOKS),
    "POST /webhooks/v1/messages/{message_id}/endpoints/{endpoint_id}/resend": staff(HOOKS),
    "POST /webhooks/v1/endpoints/{endpoint_id}/recover": staff(HOOKS, body={"since": "{past}"}),
    # --- gateway: each field checks the member token itself (the GraphQL table below).
    "GET /graphql": public(),
    "POST /graphql": public(body={"query": "{ __typename }"}),
}


# --- GraphQL ----------------------------------------------------------------------------------

# The callers tried on GraphQL fields: the gateway serves members only, so one staff key (with
# every scope) stands for all of them.
GRAPHQL_CALLERS = (
    Who.ANONYMOUS,
    Who.SELF,
    Who.PEER,
    Who.OUTSIDER,
    Who.STAFF,
    Who.FOREIGN_STAFF,
    Who.REVOKED_KEY,
    Who.EXPIRED_TOKEN,
    Who.ALG_NONE,
    Who.ALG_CONFUSION,
)


@dataclass(frozen=True)
class FieldAccess:
    """A root field: members get in (each as themself); `answers` overrides single cells;
    `names_object`: its arguments name an object of the fixtures' brand (so a member of another
    brand meets NOT_FOUND); `inputs`: optional input fields to send besides the required ones."""

    names_object: bool = False
    answers: Mapping[Who, Answer] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def answer(self, who: Who) -> Answer:
        if who in self.answers:
            return self.answers[who]
        if who not in MEMBERS:
            # Staff keys and bad credentials alike: the gateway wants a member token.
            return UNAUTHENTICATED
        if who is Who.OUTSIDER and self.names_object:
            return NOT_FOUND
        return ALLOWED


def gql(
    *, names_object: bool = False, inputs: Mapping[str, Any] | None = None, **answers: Answer
) -> FieldAccess:
    return FieldAccess(names_object=names_object, answers=_cells(answers), inputs=inputs or {})


GRAPHQL: Mapping[str, FieldAccess] = {
    "Query.me": gql(),
    "Query.node": gql(names_object=True),
    "Query.experiences": gql(),
    "Query.sessions": gql(),
    "Query.perks": gql(),
    "Query.drops": gql(),
    "Query.postsByTag": gql(),
    "Query.followingFeed": gql(),
    "Query.groups": gql(),
    "Query.group": gql(names_object=True),
    "Query.prompts": gql(),
    "Query.challenges": gql(),
    "Query.ideas": gql(),
    "Query.member": gql(names_object=True),
    "Mutation.bookSession": gql(names_object=True),
    "Mutation.joinWaitlist": gql(names_object=True),
    "Mutation.cancelBooking": gql(names_object=True, peer=NOT_FOUND),
    # A new member's trust level is too low to host (TrustLevelTooLow).
    "Mutation.hostExperience": gql(self=FORBIDDEN, peer=FORBIDDEN, outsider=FORBIDDEN),
    "Mutation.scheduleSession": gql(names_object=True, self=FORBIDDEN, peer=FORBIDDEN),
    "Mutation.checkInAttendee": gql(names_object=True, self=FORBIDDEN, peer=FORBIDDEN),
    "Mutation.reviewExperience": gql(names_object=True),
    "Mutation.updateProfile": gql(),
    "Mutation.setConsent": gql(),
    "Mutation.redeemPerk": gql(names_object=True),
    "Mutation.cancelRedemption": gql(names_object=True, peer=NOT_FOUND),
    "Mutation.revealRedemptionCode": gql(names_object=True, peer=NOT_FOUND),
    "Mutation.enterDrop": gql(names_object=True),
    "Mutation.createPost": gql(),
    "Mutation.updatePost": gql(names_object=True, inputs={"body": "Edited."}, peer=FORBIDDEN),
    "Mutation.deletePost": gql(names_object=True, peer=FORBIDDEN),
    "Mutation.addComment": gql(names_object=True),
    "Mutation.deleteComment": gql(names_object=True, peer=FORBIDDEN),
    "Mutation.react": gql(names_object=True),
    "Mutation.unreact": gql(names_object=True),
    "Mutation.follow": gql(names_object=True),
    "Mutation.unfollow": gql(names_object=True),
    "Mutation.bookmark": gql(names_object=True),
    # As in REST: taking back a bookmark one does not have changes nothing, whatever the post.
    "Mutation.unbookmark": gql(names_object=True, outsider=ALLOWED),
    "Mutation.report": gql(names_object=True),
    "Mutation.answerPrompt": gql(names_object=True),
    "Mutation.proposeIdea": gql(),
    "Mutation.voteIdea": gql(names_object=True),
    "Mutation.unvoteIdea": gql(names_object=True, peer=NOT_FOUND),
    "Mutation.joinGroup": gql(names_object=True),
    "Mutation.leaveGroup": gql(names_object=True),
    "Mutation.joinChallenge": gql(names_object=True),
    "Mutation.recordRecommendationFeedback": gql(names_object=True, peer=NOT_FOUND),
    "Subscription.pointsChanged": gql(),
    "Subscription.tierChanged": gql(),
    "Subscription.notifications": gql(),
}


# `node(id:)` with an object of each kind (of the fixtures' brand; SELF's where it is a member's):
# the objects of the brand's catalog and community are for every member of the brand; a
# redemption or a booking for its member only. Every kind implementing `Node` needs a row.
NODES: Mapping[str, FieldAccess] = {
    "Perk": gql(names_object=True),
    "Drop": gql(names_object=True),
    "Tier": gql(names_object=True),
    "Redemption": gql(names_object=True, peer=NOT_FOUND),
    "Experience": gql(names_object=True),
    "Session": gql(names_object=True),
    "Booking": gql(names_object=True, peer=NOT_FOUND),
    "Post": gql(names_object=True),
    "Comment": gql(names_object=True),
    "Group": gql(names_object=True),
    "Prompt": gql(names_object=True),
    "Challenge": gql(names_object=True),
    "Idea": gql(names_object=True),
    "Badge": gql(names_object=True),
    "Member": gql(names_object=True),
    # `Me` is reached through `me`, not `node`: its id is refused (INVALID_ID) whoever sends it.
    "Me": gql(),
}
NODE_CALLERS = MEMBERS
