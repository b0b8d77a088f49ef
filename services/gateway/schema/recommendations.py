"""The member's personal lists from the recommender, each item with its reason and exposure id.

The lists a query asks for are one call to the recommender (which logs each as an exposure)
and one batch read per kind of item in them, whatever their number and length; an item its
service no longer shows this member (a perk gone out of stock, a post taken down since the
list was made) is left out rather than shown stale.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from enum import Enum
from functools import partial
from typing import Annotated, Any, Generic, TypeVar

import strawberry

from services.gateway.calls import Rejected, input_id, read, send
from services.gateway.context import GatewayContext, GatewayInfo
from services.gateway.errors import BadUserInput, UserError
from services.gateway.schema.community import Post, Prompt, post_from_json, prompt_from_json
from services.gateway.schema.experiences import Experience, experience_from_json
from services.gateway.schema.rewards import Perk, perk_from_json

# The recommender serves at most this many items per list.
MAX_LIST = 50

T = TypeVar("T")

ItemUnion = Annotated[Perk | Prompt | Experience | Post, strawberry.union("RecommendedItem")]

# Kind of recommender item -> (batch-read kind in the loaders, GraphQL type name, builder).
_KINDS: dict[str, tuple[str, str, Callable[[dict[str, Any]], Any]]] = {
    "perk": ("perk", "Perk", perk_from_json),
    "prompt": ("prompt", "Prompt", prompt_from_json),
    "experience": ("experience", "Experience", experience_from_json),
    "post": ("post", "Post", post_from_json),
}
_TYPE_TO_KIND = {type_name: kind for kind, (_, type_name, _) in _KINDS.items()}


@strawberry.type(description="One recommended item, where it was shown and why.")
class Recommendation(Generic[T]):
    item: T
    reason: str = strawberry.field(description="Why it is here, in a sentence for the member.")
    position: int = strawberry.field(description="1 is the top of the list.")
    explored: bool = strawberry.field(
        description="Chosen to learn about an item with little data, not by the model."
    )
    exposure_id: strawberry.ID = strawberry.field(
        description="The showing of this list; send it back with `recordRecommendationFeedback`."
    )


def _first(first: int) -> int:
    if not 1 <= first <= MAX_LIST:
        raise BadUserInput(
            f"`first` must be between 1 and {MAX_LIST} for a recommended list.",
            code="PAGINATION_LIMIT",
        )
    return first


async def _lists(context: GatewayContext, asked: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """The lists a query asks for in one tick (the home screen's perks, prompts and posts), in
    one call to the recommender; a surface asked twice (two aliases, two lengths) goes in a
    second call, as the recommender takes each surface once a call."""
    rounds: list[list[tuple[str, int]]] = []
    for one in asked:
        free = next((r for r in rounds if all(one[0] != other[0] for other in r)), None)
        if free is None:
            rounds.append(free := [])
        free.append(one)
    path = f"/recommender/v1/members/{context.member.member_id}/recommendations/lists"
    answers = await asyncio.gather(
        *(
            read(context, "recommender", path, {"list": tuple(f"{s}:{n}" for s, n in r)})
            for r in rounds
        )
    )
    served = {
        key: listing
        for r, answer in zip(rounds, answers, strict=True)
        for key, listing in zip(r, answer["lists"], strict=True)
    }
    return [served[key] for key in asked]


def _raw_id(item: dict[str, Any]) -> uuid.UUID | None:
    """The item's id in its service; None for one no service could hold (an unknown kind, an
    id that is not one)."""
    if item.get("kind") not in _KINDS:
        return None
    try:
        return uuid.UUID(str(item.get("id")))
    except ValueError:
        return None


async def recommended(
    context: GatewayContext, surface: str, first: int
) -> list[Recommendation[Any]]:
    lists = context.loaders.batched("recommendation_lists", partial(_lists, context))
    listing: dict[str, Any] = await lists.load((surface, _first(first)))
    # An item no service could hold is left out like one its service no longer shows, rather
    # than failing the whole list.
    readable = [
        (item, raw_id) for item in listing["items"] if (raw_id := _raw_id(item)) is not None
    ]
    items = [item for item, _ in readable]
    loaded = await asyncio.gather(
        *(context.loaders.by_id(_KINDS[i["kind"]][0]).load(raw_id) for i, raw_id in readable)
    )
    exposure_id = strawberry.ID(str(listing["exposure_id"]))
    shown: list[Recommendation[Any]] = []
    for item, data in zip(items, loaded, strict=True):
        if data is None:
            continue
        build = _KINDS[item["kind"]][2]
        shown.append(
            Recommendation(
                item=build(data),
                reason=item["reason"],
                position=item["position"],
                explored=item["explored"],
                exposure_id=exposure_id,
            )
        )
    return shown


async def _perks(info: GatewayInfo, first: int = 10) -> list[Recommendation[Perk]]:
    return await recommended(info.context, "perks", first)


async def _prompts(info: GatewayInfo, first: int = 10) -> list[Recommendation[Prompt]]:
    return await recommended(info.context, "prompts", first)


async def _experiences(info: GatewayInfo, first: int = 10) -> list[Recommendation[Experience]]:
    return await recommended(info.context, "experiences", first)


async def _posts(info: GatewayInfo, first: int = 10) -> list[Recommendation[Post]]:
    return await recommended(info.context, "posts", first)


async def _discover(info: GatewayInfo, first: int = 30) -> list[Recommendation[ItemUnion]]:
    return await recommended(info.context, "discover", first)


async def _new(info: GatewayInfo, first: int = 30) -> list[Recommendation[ItemUnion]]:
    return await recommended(info.context, "new", first)


# Mounted on `Me` by `schema.me`.
recommended_perks_field = strawberry.field(
    resolver=_perks, description="Perks picked for the member, best first (at most 50)."
)
recommended_prompts_field = strawberry.field(
    resolver=_prompts, description="The brand's prompts the member is likely to answer."
)
recommended_experiences_field = strawberry.field(
    resolver=_experiences, description="Experiences the member is likely to book."
)
for_you_field = strawberry.field(
    resolver=_posts, description='The member\'s "for you" feed: posts picked for them.'
)
discover_field = strawberry.field(
    resolver=_discover,
    description="This week's discoveries across perks, prompts, experiences and posts: things "
    "new to the member, renewed weekly.",
)
new_for_you_field = strawberry.field(
    resolver=_new, description="What appeared lately that suits the member, renewed weekly."
)


# --- Feedback ---------------------------------------------------------------------------------


@strawberry.enum(description="What the member did with a recommended item.")
class FeedbackAction(Enum):
    CLICK = "click"
    DISMISS = "dismiss"


@strawberry.input
class RecordRecommendationFeedbackInput:
    exposure_id: strawberry.ID
    item_id: strawberry.ID = strawberry.field(description="The global id of the item.")
    action: FeedbackAction


@strawberry.type
class RecordRecommendationFeedbackPayload:
    recorded: bool
    user_errors: list[UserError]


@strawberry.type
class RecommendationMutations:
    @strawberry.mutation(
        description="Records that the member opened or dismissed an item of a list they were "
        "shown; a dismissed item is not recommended to them again."
    )
    async def record_recommendation_feedback(
        self, info: GatewayInfo, input: RecordRecommendationFeedbackInput
    ) -> RecordRecommendationFeedbackPayload:
        try:
            type_name, raw = input_id(str(input.item_id), "itemId", *_TYPE_TO_KIND)
            exposure = _exposure_id(str(input.exposure_id))
            await send(
                info.context,
                "recommender",
                "POST",
                f"/recommender/v1/exposures/{exposure}/feedback",
                json={"item_id": f"{_TYPE_TO_KIND[type_name]}:{raw}", "action": input.action.value},
                fields={"item_id": "itemId"},
                subject="exposureId",
            )
        except Rejected as rejected:
            return RecordRecommendationFeedbackPayload(recorded=False, user_errors=rejected.errors)
        return RecordRecommendationFeedbackPayload(recorded=True, user_errors=[])


def _exposure_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Rejected(
            UserError(
                field=["input", "exposureId"],
                code="INVALID_ID",
                message=f"{value!r} is not an exposure id; send the `exposureId` of a list item.",
            )
        ) from None
