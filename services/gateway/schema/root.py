"""The schema: every area's queries, mutations and subscriptions, merged into one."""

from __future__ import annotations

import strawberry
from strawberry.tools import merge_types

from services.gateway.ids import node_field
from services.gateway.schema.community import CommunityMutation, CommunityQuery
from services.gateway.schema.experiences import ExperiencesQuery
from services.gateway.schema.experiences_mutations import ExperiencesMutation
from services.gateway.schema.me import MeQuery
from services.gateway.schema.members import MembersMutation
from services.gateway.schema.recommendations import RecommendationMutations
from services.gateway.schema.rewards import RewardsQuery
from services.gateway.schema.rewards_mutations import RewardsMutation
from services.gateway.schema.subscriptions import MemberSubscription


@strawberry.type
class NodeQuery:
    node = node_field()


# Each area adds its root classes here.
QUERY_PARTS: tuple[type, ...] = (
    MeQuery,
    NodeQuery,
    ExperiencesQuery,
    RewardsQuery,
    CommunityQuery,
)
MUTATION_PARTS: tuple[type, ...] = (
    ExperiencesMutation,
    MembersMutation,
    RewardsMutation,
    CommunityMutation,
    RecommendationMutations,
)
SUBSCRIPTION_PARTS: tuple[type, ...] = (MemberSubscription,)

Query = merge_types("Query", QUERY_PARTS)
Mutation = merge_types("Mutation", MUTATION_PARTS)
Subscription = merge_types("Subscription", SUBSCRIPTION_PARTS)
