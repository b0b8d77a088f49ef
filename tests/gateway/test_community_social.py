"""The rest of the community over GraphQL: my community fields on `me`, groups, prompts,
challenges, the ideas board and badges, their mutations, and `node(id:)` for each type."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.challenges.models import ChallengeParticipant
from services.community.ideas.models import Idea
from services.community.models import GroupMembership, Post
from services.community.reputation.consumer import REPUTATION_CONSUMER
from services.community.reputation.trust import THRESHOLDS
from services.kernel.clock import utcnow
from tests.community.engagement_helpers import replay
from tests.conftest import BrandFixture
from tests.gateway.conftest import GraphQL, MakeGatewayMember
from tests.gateway.test_community_posts import community_member, data, gid, rest, write_post


async def count(session: AsyncSession, model: type[Any]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def iso(delta: timedelta) -> str:
    return (utcnow() + delta).isoformat()


ME = """
query {
  me {
    posts(first: 5) { nodes { body status } }
    bookmarks(first: 5) { nodes { post { body } } pageInfo { hasNextPage } }
    followers(first: 5) { nodes { member { displayName } } }
    following(first: 5) { nodes { member { displayName followerCount } } }
    badges(first: 5) { nodes { source badge { id name reputationThreshold } } }
    standing { reputation trustLevel abilities nextLevel nextLevelAt }
    communityProfile { displayName reputation followingCount }
  }
}
"""


async def test_me_lists_my_posts_bookmarks_follows_badges_and_standing(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_gateway_member: MakeGatewayMember,
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    bea = await community_member(make_gateway_member, session, display_name="Bea")
    badge = await rest(
        client, "POST", "/badges", brand, {"name": "Rising star", "reputation_threshold": 10}
    )
    await write_post(client, ada, "My first")
    theirs = await write_post(client, bea, "Hers")
    await rest(client, "PUT", f"/posts/{theirs['id']}/bookmark", ada)
    await rest(client, "PUT", f"/me/following/{bea.id}", ada)
    await rest(client, "PUT", f"/me/following/{ada.id}", bea)
    await replay(session, REPUTATION_CONSUMER)

    assert data(await graphql(ME, member=ada)) == {
        "me": {
            "posts": {"nodes": [{"body": "My first", "status": "PUBLISHED"}]},
            "bookmarks": {
                "nodes": [{"post": {"body": "Hers"}}],
                "pageInfo": {"hasNextPage": False},
            },
            "followers": {"nodes": [{"member": {"displayName": "Bea"}}]},
            "following": {"nodes": [{"member": {"displayName": "Bea", "followerCount": 1}}]},
            "badges": {
                "nodes": [
                    {
                        "source": "REPUTATION",
                        "badge": {
                            "id": gid("Badge", badge["id"]),
                            "name": "Rising star",
                            "reputationThreshold": 10,
                        },
                    }
                ]
            },
            "standing": {
                "reputation": 10,
                "trustLevel": 0,
                "abilities": [],
                "nextLevel": 1,
                "nextLevelAt": THRESHOLDS[1],
            },
            "communityProfile": {"displayName": "Ada", "reputation": 10, "followingCount": 1},
        }
    }
    node = await graphql(
        "query($id: ID!) { node(id: $id) { ... on Badge { name } } }",
        {"id": gid("Badge", badge["id"])},
        member=bea,
    )
    assert data(node) == {"node": {"name": "Rising star"}}


GROUPS = """
query($id: ID!) {
  groups(first: 5) { nodes { id name slug kind memberCount owner { id } } }
  group(id: $id) { name posts(first: 5) { nodes { body group { name } } } }
}
"""
JOIN = """
mutation($j: JoinGroupInput!, $p: CreatePostInput!) {
  joinGroup(input: $j) { group { memberCount } userErrors { field code } }
  createPost(input: $p) { post { body group { slug } } userErrors { field code } }
}
"""
LEAVE = """
mutation($l: LeaveGroupInput!) {
  leaveGroup(input: $l) { group { memberCount } userErrors { field code } }
}
"""


async def test_groups_join_post_in_and_leave(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_gateway_member: MakeGatewayMember,
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    group = await rest(client, "POST", "/groups", brand, {"name": "Curly hair"})
    group_id = gid("Group", group["id"])
    post_input = {"body": "Hello curls", "groupId": group_id}

    outsider = data(await graphql(JOIN, {"j": {"groupId": "x"}, "p": post_input}, member=ada))
    assert outsider == {
        "joinGroup": {
            "group": None,
            "userErrors": [{"field": ["input", "groupId"], "code": "INVALID_ID"}],
        },
        "createPost": {
            "post": None,
            "userErrors": [{"field": ["input", "groupId"], "code": "NotAGroupMember"}],
        },
    }
    assert (await count(session, GroupMembership), await count(session, Post)) == (0, 0)
    joined = data(await graphql(JOIN, {"j": {"groupId": group_id}, "p": post_input}, member=ada))
    assert joined == {
        "joinGroup": {"group": {"memberCount": 1}, "userErrors": []},
        "createPost": {
            "post": {"body": "Hello curls", "group": {"slug": "curly-hair"}},
            "userErrors": [],
        },
    }
    assert data(await graphql(GROUPS, {"id": group_id}, member=ada)) == {
        "groups": {
            "nodes": [
                {
                    "id": group_id,
                    "name": "Curly hair",
                    "slug": "curly-hair",
                    "kind": "BRAND",
                    "memberCount": 1,
                    "owner": None,
                }
            ]
        },
        "group": {
            "name": "Curly hair",
            "posts": {"nodes": [{"body": "Hello curls", "group": {"name": "Curly hair"}}]},
        },
    }
    left = data(await graphql(LEAVE, {"l": {"groupId": group_id}}, member=ada))
    assert left == {"leaveGroup": {"group": {"memberCount": 0}, "userErrors": []}}


PROMPTS = """
query {
  prompts(first: 5) {
    nodes { id title points endsAt answerCount answers(first: 5) { nodes { body } } }
  }
}
"""
ANSWER = """
mutation($input: AnswerPromptInput!) {
  answerPrompt(input: $input) {
    post { body incentivised prompt { title } }
    prompt { answerCount }
    userErrors { field code message }
  }
}
"""


async def test_prompts_are_listed_answered_and_refused_when_closed(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_gateway_member: MakeGatewayMember,
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    summer = await rest(
        client, "POST", "/prompts", brand, {"title": "Summer look", "body": "Show us", "points": 50}
    )
    later = await rest(
        client,
        "POST",
        "/prompts",
        brand,
        {"title": "Autumn", "body": "Soon", "starts_at": iso(timedelta(days=2))},
    )
    prompt_id = gid("Prompt", summer["id"])
    answered = data(
        await graphql(ANSWER, {"input": {"promptId": prompt_id, "body": "Linen"}}, member=ada)
    )
    assert answered == {
        "answerPrompt": {
            "post": {"body": "Linen", "incentivised": True, "prompt": {"title": "Summer look"}},
            "prompt": {"answerCount": 1},
            "userErrors": [],
        }
    }
    closed = data(
        await graphql(
            ANSWER,
            {"input": {"promptId": gid("Prompt", later["id"]), "body": "Early"}},
            member=ada,
        )
    )["answerPrompt"]
    assert closed["post"] is None
    [refusal] = closed["userErrors"]
    assert (refusal["field"], refusal["code"]) == (["input", "promptId"], "PromptClosed")
    assert refusal["message"].startswith("This prompt opens at ")
    assert await count(session, Post) == 1

    assert data(await graphql(PROMPTS, member=ada)) == {
        "prompts": {
            "nodes": [
                {
                    "id": prompt_id,
                    "title": "Summer look",
                    "points": 50,
                    "endsAt": None,
                    "answerCount": 1,
                    "answers": {"nodes": [{"body": "Linen"}]},
                }
            ]
        }
    }
    # A prompt not yet open is no node of mine.
    unseen = "query($id: ID!) { node(id: $id) { id } }"
    assert data(await graphql(unseen, {"id": gid("Prompt", later["id"])}, member=ada)) == {
        "node": None
    }


CHALLENGES = """
query($id: ID!) {
  challenges(first: 5) { nodes { id title myProgress { steps { action target count } } } }
  me { challenges(first: 5) { nodes { title participantCount } } }
  node(id: $id) { ... on Challenge { title badge { name } } }
}
"""


async def test_challenges_are_joined_and_followed(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    brand: BrandFixture,
    make_gateway_member: MakeGatewayMember,
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    badge = await rest(client, "POST", "/badges", brand, {"name": "Glow"})
    challenge = await rest(
        client,
        "POST",
        "/challenges",
        brand,
        {
            "title": "Glow week",
            "starts_at": iso(-timedelta(hours=1)),
            "ends_at": iso(timedelta(days=7)),
            "steps": [{"action": "post", "target": 2}],
            "badge_id": badge["id"],
        },
    )
    challenge_id = gid("Challenge", challenge["id"])
    join = """
    mutation($input: JoinChallengeInput!) {
      joinChallenge(input: $input) { challenge { title participantCount } userErrors { code } }
    }
    """
    joined = data(await graphql(join, {"input": {"challengeId": challenge_id}}, member=ada))
    assert joined == {
        "joinChallenge": {
            "challenge": {"title": "Glow week", "participantCount": 1},
            "userErrors": [],
        }
    }
    assert data(await graphql(CHALLENGES, {"id": challenge_id}, member=ada)) == {
        "challenges": {
            "nodes": [
                {
                    "id": challenge_id,
                    "title": "Glow week",
                    "myProgress": {"steps": [{"action": "POST", "target": 2, "count": 0}]},
                }
            ]
        },
        "me": {"challenges": {"nodes": [{"title": "Glow week", "participantCount": 1}]}},
        "node": {"title": "Glow week", "badge": {"name": "Glow"}},
    }
    missing = data(
        await graphql(join, {"input": {"challengeId": gid("Challenge", badge["id"])}}, member=ada)
    )
    assert missing == {
        "joinChallenge": {"challenge": None, "userErrors": [{"code": "ChallengeNotFound"}]}
    }
    assert await count(session, ChallengeParticipant) == 1


IDEAS = """
query($sort: IdeaSort!, $after: String) {
  ideas(first: 1, sort: $sort, after: $after) {
    edges { cursor node { title voteCount voted author { displayName } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_ideas_are_proposed_voted_and_paged_in_either_order(
    graphql: GraphQL, session: AsyncSession, make_gateway_member: MakeGatewayMember
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    bea = await community_member(make_gateway_member, session, display_name="Bea")
    propose = """
    mutation($input: ProposeIdeaInput!) {
      proposeIdea(input: $input) { idea { id title voteCount voted } userErrors { field code } }
    }
    """
    ideas = []
    for title in ("Refill stations", "Vegan line"):
        made = data(
            await graphql(
                propose,
                {"input": {"title": title, "body": "Please", "category": "PRODUCT"}},
                member=ada,
            )
        )["proposeIdea"]
        assert made["userErrors"] == []
        ideas.append(made["idea"])
    assert ideas[0] == {
        "id": ideas[0]["id"],
        "title": "Refill stations",
        "voteCount": 1,
        "voted": True,
    }
    empty = data(
        await graphql(
            propose, {"input": {"title": "", "body": "x", "category": "OTHER"}}, member=ada
        )
    )
    assert empty == {
        "proposeIdea": {
            "idea": None,
            "userErrors": [{"field": ["input", "title"], "code": "ValidationError"}],
        }
    }
    assert await count(session, Idea) == 2

    vote = """
    mutation($v: VoteIdeaInput!) {
      voteIdea(input: $v) { idea { voteCount voted } userErrors { field code } }
    }
    """
    voted = data(await graphql(vote, {"v": {"ideaId": ideas[0]["id"]}}, member=bea))
    assert voted == {"voteIdea": {"idea": {"voteCount": 2, "voted": True}, "userErrors": []}}
    again = data(await graphql(vote, {"v": {"ideaId": ideas[0]["id"]}}, member=bea))
    assert again == {
        "voteIdea": {
            "idea": None,
            "userErrors": [{"field": ["input", "ideaId"], "code": "AlreadyVoted"}],
        }
    }

    # Most voted first, then newest first; each walked one by one from the edges' cursors.
    for sort, order in (("VOTES", [0, 1]), ("NEWEST", [1, 0])):
        first = data(await graphql(IDEAS, {"sort": sort}, member=bea))["ideas"]
        second = data(
            await graphql(IDEAS, {"sort": sort, "after": first["edges"][0]["cursor"]}, member=bea)
        )["ideas"]
        titles = [page["edges"][0]["node"]["title"] for page in (first, second)]
        assert titles == [ideas[i]["title"] for i in order], sort
        assert (first["pageInfo"]["hasNextPage"], second["pageInfo"]["hasNextPage"]) == (
            True,
            False,
        )
    unvote = """
    mutation($u: UnvoteIdeaInput!) { unvoteIdea(input: $u) { idea { voteCount voted } } }
    """
    assert data(await graphql(unvote, {"u": {"ideaId": ideas[0]["id"]}}, member=bea)) == {
        "unvoteIdea": {"idea": {"voteCount": 1, "voted": False}}
    }
    node = data(
        await graphql(
            "query($id: ID!) { node(id: $id) { ... on Idea { title author { displayName } } } }",
            {"id": ideas[1]["id"]},
            member=bea,
        )
    )
    assert node == {"node": {"title": "Vegan line", "author": {"displayName": "Ada"}}}
