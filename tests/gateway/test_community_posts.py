"""Posts and comments over GraphQL, on data written through the community's REST API: the tag
and following feeds and a post's comments as connections (paged by `endCursor` and by any edge's
cursor), what I did to a post, `node(id:)` for posts, and members' public profiles."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.ids import encode_global_id
from tests.community.conftest import sync_members
from tests.conftest import BrandFixture, MemberFixture
from tests.gateway.conftest import GraphQL, MakeGatewayMember

POSTS = "/community/v1/posts"


async def community_member(
    make_gateway_member: MakeGatewayMember,
    session: AsyncSession,
    brand: BrandFixture | None = None,
    **fields: Any,
) -> MemberFixture:
    """A member made through the members API and projected into the community, as its consumer
    would."""
    member = await make_gateway_member(brand, **fields)
    await sync_members(session)
    return member


async def rest(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    who: MemberFixture | BrandFixture,
    body: dict[str, Any] | None = None,
) -> Any:
    response = await client.request(method, f"/community/v1{path}", json=body, headers=who.headers)
    assert response.is_success, response.text
    return response.json() if response.content else None


async def write_post(
    client: httpx.AsyncClient, who: MemberFixture, body: str, **fields: Any
) -> dict[str, Any]:
    post: dict[str, Any] = await rest(client, "POST", "/posts", who, {"body": body, **fields})
    return post


def gid(type_name: str, raw: Any) -> str:
    return str(encode_global_id(type_name, raw))


def data(answer: dict[str, Any]) -> Any:
    assert "errors" not in answer, answer
    return answer["data"]


FEED = """
query Feed($tag: String!, $first: Int, $after: String) {
  postsByTag(tag: $tag, first: $first, after: $after) {
    edges { cursor node { id body tags author { id displayName } } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""


async def test_a_tag_feed_pages_newest_first_by_end_cursor_and_by_any_edge(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_gateway_member: MakeGatewayMember,
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    bea = await community_member(make_gateway_member, session, display_name="Bea")
    posts = [
        await write_post(client, who, f"Curls {n}", tags=["Curls"])
        for n, who in enumerate((bea, ada, bea))
    ]
    await write_post(client, bea, "Something else", tags=["frizz"])
    newest = list(reversed(posts))

    def node(post: dict[str, Any]) -> dict[str, Any]:
        author = post["author"]
        return {
            "id": gid("Post", post["id"]),
            "body": post["body"],
            "tags": ["curls"],
            "author": {
                "id": gid("Member", author["member_id"]),
                "displayName": author["display_name"],
            },
        }

    first = data(await graphql(FEED, {"tag": "curls", "first": 2}, member=ada))["postsByTag"]
    assert [edge["node"] for edge in first["edges"]] == [node(p) for p in newest[:2]]
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    rest_ = data(
        await graphql(
            FEED, {"tag": "curls", "first": 2, "after": first["pageInfo"]["endCursor"]}, member=ada
        )
    )["postsByTag"]
    assert [edge["node"] for edge in rest_["edges"]] == [node(newest[2])]
    assert rest_["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "endCursor": rest_["edges"][0]["cursor"],
    }
    # Any edge's cursor resumes right after it.
    resumed = data(
        await graphql(
            FEED, {"tag": "curls", "first": 5, "after": first["edges"][0]["cursor"]}, member=ada
        )
    )["postsByTag"]
    assert [edge["node"]["id"] for edge in resumed["edges"]] == [
        gid("Post", p["id"]) for p in newest[1:]
    ]


COMMENTS = """
query Thread($id: ID!, $first: Int, $after: String) {
  node(id: $id) {
    id
    ... on Post {
      body commentCount
      comments(first: $first, after: $after) {
        edges { cursor node { id body author { displayName } post { id } } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}
"""


async def test_node_reads_a_post_and_its_comments_page_oldest_first(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_gateway_member: MakeGatewayMember,
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    bea = await community_member(make_gateway_member, session, display_name="Bea")
    post = await write_post(client, bea, "Wash day")
    said = [
        await rest(client, "POST", f"/posts/{post['id']}/comments", who, {"body": text})
        for who, text in ((ada, "First"), (bea, "Second"), (ada, "Third"))
    ]
    post_id = gid("Post", post["id"])

    def comment(c: dict[str, Any], name: str) -> dict[str, Any]:
        return {
            "id": gid("Comment", c["id"]),
            "body": c["body"],
            "author": {"displayName": name},
            "post": {"id": post_id},
        }

    first = data(await graphql(COMMENTS, {"id": post_id, "first": 2}, member=ada))["node"]
    assert {k: first[k] for k in ("id", "body", "commentCount")} == {
        "id": post_id,
        "body": "Wash day",
        "commentCount": 3,
    }
    assert [e["node"] for e in first["comments"]["edges"]] == [
        comment(said[0], "Ada"),
        comment(said[1], "Bea"),
    ]
    assert first["comments"]["pageInfo"]["hasNextPage"] is True
    after = first["comments"]["pageInfo"]["endCursor"]
    second = data(await graphql(COMMENTS, {"id": post_id, "first": 2, "after": after}, member=ada))
    assert [e["node"] for e in second["node"]["comments"]["edges"]] == [comment(said[2], "Ada")]
    last_edge = second["node"]["comments"]["edges"][-1]
    assert second["node"]["comments"]["pageInfo"] == {
        "hasNextPage": False,
        "endCursor": last_edge["cursor"],
    }
    from_edge = data(
        await graphql(
            COMMENTS,
            {"id": post_id, "first": 5, "after": first["comments"]["edges"][0]["cursor"]},
            member=ada,
        )
    )
    assert [e["node"]["body"] for e in from_edge["node"]["comments"]["edges"]] == [
        "Second",
        "Third",
    ]
    # A comment by its own id, and `first` checked before anything is fetched.
    own = data(
        await graphql(
            "query($id: ID!) { node(id: $id) { ... on Comment { body parent { id } } } }",
            {"id": gid("Comment", said[1]["id"])},
            member=ada,
        )
    )
    assert own == {"node": {"body": "Second", "parent": None}}
    too_many = await graphql(COMMENTS, {"id": post_id, "first": 101}, member=ada)
    assert too_many["data"] == {"node": None}
    assert [e["extensions"]["code"] for e in too_many["errors"]] == ["PAGINATION_LIMIT"]


async def test_node_hides_other_brands_posts_and_refuses_forged_ids(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    other_brand: BrandFixture,
    make_gateway_member: MakeGatewayMember,
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    zed = await community_member(make_gateway_member, session, other_brand, display_name="Zed")
    theirs = await write_post(client, zed, "Not for Ada")
    query = "query($id: ID!) { node(id: $id) { id ... on Post { body } } }"
    hidden = await graphql(query, {"id": gid("Post", theirs["id"])}, member=ada)
    assert data(hidden) == {"node": None}
    assert data(await graphql(query, {"id": gid("Post", theirs["id"])}, member=zed)) == {
        "node": {"id": gid("Post", theirs["id"]), "body": "Not for Ada"}
    }
    forged = await graphql(query, {"id": "bm90LWFuLWlk"}, member=ada)
    assert forged["data"] == {"node": None}
    assert [e["extensions"]["code"] for e in forged["errors"]] == ["INVALID_ID"]


MINE = """
query {
  followingFeed(first: 10) {
    nodes { body reactionCount myReactions bookmarked author { displayName followerCount } }
  }
}
"""


async def test_the_following_feed_says_what_i_did_to_each_post_in_one_batch(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_gateway_member: MakeGatewayMember,
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    bea = await community_member(make_gateway_member, session, display_name="Bea")
    await rest(client, "PUT", f"/me/following/{bea.id}", ada)
    older = await write_post(client, bea, "Older")
    await write_post(client, bea, "Newer")
    for kind in ("wow", "love"):
        await rest(client, "POST", f"/posts/{older['id']}/reactions", ada, {"kind": kind})
    await rest(client, "PUT", f"/posts/{older['id']}/bookmark", ada)

    assert data(await graphql(MINE, member=ada)) == {
        "followingFeed": {
            "nodes": [
                {
                    "body": "Newer",
                    "reactionCount": 0,
                    "myReactions": [],
                    "bookmarked": False,
                    "author": {"displayName": "Bea", "followerCount": 1},
                },
                {
                    "body": "Older",
                    "reactionCount": 2,
                    "myReactions": ["LOVE", "WOW"],
                    "bookmarked": True,
                    "author": {"displayName": "Bea", "followerCount": 1},
                },
            ]
        }
    }
    assert data(await graphql(MINE, member=bea)) == {"followingFeed": {"nodes": []}}


PROFILE = """
query($id: ID!) {
  member(id: $id) {
    id displayName reputation trustLevel followerCount followingCount
    posts(first: 1) { nodes { body } pageInfo { hasNextPage } }
    followers(first: 5) { nodes { member { id displayName } } }
    badges(first: 5) { nodes { badge { name } } }
  }
}
"""


async def test_a_member_profile_shows_what_other_members_may_see(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    other_brand: BrandFixture,
    make_gateway_member: MakeGatewayMember,
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    bea = await community_member(make_gateway_member, session, display_name="Bea")
    zed = await community_member(make_gateway_member, session, other_brand, display_name="Zed")
    await rest(client, "PUT", f"/me/following/{bea.id}", ada)
    await write_post(client, bea, "One")
    await write_post(client, bea, "Two")

    assert data(await graphql(PROFILE, {"id": gid("Member", bea.id)}, member=ada)) == {
        "member": {
            "id": gid("Member", bea.id),
            "displayName": "Bea",
            "reputation": 0,
            "trustLevel": 0,
            "followerCount": 1,
            "followingCount": 0,
            "posts": {"nodes": [{"body": "Two"}], "pageInfo": {"hasNextPage": True}},
            "followers": {
                "nodes": [{"member": {"id": gid("Member", ada.id), "displayName": "Ada"}}]
            },
            "badges": {"nodes": []},
        }
    }
    named = "query($id: ID!) { member(id: $id) { displayName } }"
    assert data(await graphql(named, {"id": gid("Member", bea.id)}, member=zed)) == {"member": None}
    wrong_type = await graphql(named, {"id": gid("Post", bea.id)}, member=ada)
    assert [e["extensions"]["code"] for e in wrong_type["errors"]] == ["INVALID_ID"]
