"""Community mutations over GraphQL: what they write and answer, and their `userErrors` for bad
input (a forged or mistyped id, another brand's post, an empty body...) with nothing written."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import Comment, Post
from services.community.posts.models import Bookmark, Reaction
from services.community.social.models import Follow
from tests.conftest import BrandFixture
from tests.gateway.conftest import GraphQL, MakeGatewayMember
from tests.gateway.test_community_posts import community_member, data, gid, rest, write_post


async def count(session: AsyncSession, model: type[Any]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


CREATE_POST = """
mutation($input: CreatePostInput!) {
  createPost(input: $input) {
    post { id body kind status tags media { url alt } author { displayName } myReactions }
    userErrors { field code message }
  }
}
"""


async def test_create_post_writes_it_and_bad_input_writes_nothing(
    graphql: GraphQL, session: AsyncSession, make_gateway_member: MakeGatewayMember
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    first_try = {
        "body": "  Wash day  ",
        "tags": ["#Curls"],
        "media": [{"url": "https://cdn.example.com/a.jpg", "alt": "curls"}],
        "idempotencyKey": "post-1",
    }
    made = data(await graphql(CREATE_POST, {"input": first_try}, member=ada))["createPost"]
    [stored] = (await session.scalars(select(Post))).all()
    assert made == {
        "post": {
            "id": gid("Post", stored.id),
            "body": "Wash day",
            "kind": "POST",
            "status": "PUBLISHED",
            "tags": ["curls"],
            "media": [{"url": "https://cdn.example.com/a.jpg", "alt": "curls"}],
            "author": {"displayName": "Ada"},
            "myReactions": [],
        },
        "userErrors": [],
    }
    # A retry with the same key answers the same post; the key with other input is refused.
    retried = data(await graphql(CREATE_POST, {"input": first_try}, member=ada))["createPost"]
    assert retried == made
    reused = data(
        await graphql(
            CREATE_POST, {"input": {"body": "Other", "idempotencyKey": "post-1"}}, member=ada
        )
    )["createPost"]
    assert (reused["post"], [e["code"] for e in reused["userErrors"]]) == (
        None,
        ["IdempotencyKeyReused"],
    )

    async def refused(input_: dict[str, Any]) -> list[dict[str, Any]]:
        answer = data(await graphql(CREATE_POST, {"input": input_}, member=ada))["createPost"]
        assert answer["post"] is None
        errors: list[dict[str, Any]] = answer["userErrors"]
        return errors

    [empty] = await refused({"body": "   "})
    assert (empty["field"], empty["code"]) == (["input", "body"], "ValidationError")
    assert empty["message"] == "String should have at least 1 character"
    [bad_url] = await refused({"body": "Hi", "media": [{"url": "ftp://x"}]})
    assert (bad_url["field"], bad_url["code"]) == (
        ["input", "media", "0", "url"],
        "ValidationError",
    )
    assert await refused({"body": "Hi", "groupId": "forged"}) == [
        {
            "field": ["input", "groupId"],
            "code": "INVALID_ID",
            "message": "'forged' is not an id this API issued; use the `id` of an object it "
            "returned.",
        }
    ]
    [not_a_group] = await refused({"body": "Hi", "groupId": gid("Post", stored.id)})
    assert (not_a_group["field"], not_a_group["code"]) == (["input", "groupId"], "INVALID_ID")
    [review] = await refused({"body": "Hi", "kind": "REVIEW"})
    assert (review["field"], review["code"]) == (["input"], "ValidationError")
    assert await count(session, Post) == 1


COMMENT = """
mutation($input: AddCommentInput!) {
  addComment(input: $input) {
    comment { id body author { displayName } post { commentCount } parent { id } }
    userErrors { field code message }
  }
}
"""


async def test_add_comment_and_its_refusals(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    other_brand: BrandFixture,
    make_gateway_member: MakeGatewayMember,
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    bea = await community_member(make_gateway_member, session, display_name="Bea")
    zed = await community_member(make_gateway_member, session, other_brand, display_name="Zed")
    post = await write_post(client, bea, "Wash day")
    foreign = await write_post(client, zed, "Elsewhere")

    first = data(
        await graphql(
            COMMENT, {"input": {"postId": gid("Post", post["id"]), "body": "Love it"}}, member=ada
        )
    )["addComment"]
    [stored] = (await session.scalars(select(Comment))).all()
    comment_id = gid("Comment", stored.id)
    assert first == {
        "comment": {
            "id": comment_id,
            "body": "Love it",
            "author": {"displayName": "Ada"},
            "post": {"commentCount": 1},
            "parent": None,
        },
        "userErrors": [],
    }
    reply = data(
        await graphql(
            COMMENT,
            {
                "input": {
                    "postId": gid("Post", post["id"]),
                    "body": "Thanks",
                    "parentId": comment_id,
                }
            },
            member=bea,
        )
    )["addComment"]
    assert reply["comment"]["parent"] == {"id": comment_id}
    assert reply["comment"]["post"] == {"commentCount": 2}

    async def refused(input_: dict[str, Any]) -> dict[str, Any]:
        answer = data(await graphql(COMMENT, {"input": input_}, member=ada))["addComment"]
        assert answer["comment"] is None
        [error] = answer["userErrors"]
        return {"field": error["field"], "code": error["code"]}

    assert await refused({"postId": gid("Post", foreign["id"]), "body": "Hi"}) == {
        "field": ["input", "postId"],
        "code": "PostNotFound",
    }
    assert await refused({"postId": "bm9wZQ", "body": "Hi"}) == {
        "field": ["input", "postId"],
        "code": "INVALID_ID",
    }
    assert await refused({"postId": comment_id, "body": "Hi"}) == {
        "field": ["input", "postId"],
        "code": "INVALID_ID",
    }
    assert await refused({"postId": gid("Post", post["id"]), "body": ""}) == {
        "field": ["input", "body"],
        "code": "ValidationError",
    }
    assert await count(session, Comment) == 2


REACT = """
mutation($input: ReactInput!) {
  react(input: $input) {
    post { reactionCount myReactions } comment { reactionCount }
    userErrors { field code }
  }
}
"""
UNREACT = """
mutation($input: UnreactInput!) {
  unreact(input: $input) {
    post { reactionCount myReactions } comment { reactionCount }
    userErrors { field code }
  }
}
"""
BOOKMARK = """
mutation($b: BookmarkInput!, $u: UnbookmarkInput!) {
  bookmark(input: $b) { post { bookmarked } userErrors { code } }
  unbookmark(input: $u) { post { bookmarked } userErrors { code } }
}
"""


async def test_reactions_and_bookmarks(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_gateway_member: MakeGatewayMember,
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    bea = await community_member(make_gateway_member, session, display_name="Bea")
    post = await write_post(client, bea, "Wash day")
    said = await rest(client, "POST", f"/posts/{post['id']}/comments", bea, {"body": "Mine"})
    post_id, comment_id = gid("Post", post["id"]), gid("Comment", said["id"])

    async def run(query: str, subject: str, kind: str) -> Any:
        answer = await graphql(query, {"input": {"subjectId": subject, "kind": kind}}, member=ada)
        return next(iter(data(answer).values()))

    assert await run(REACT, post_id, "LOVE") == {
        "post": {"reactionCount": 1, "myReactions": ["LOVE"]},
        "comment": None,
        "userErrors": [],
    }
    assert await run(REACT, comment_id, "HELPFUL") == {
        "post": {"reactionCount": 1, "myReactions": ["LOVE"]},
        "comment": {"reactionCount": 1},
        "userErrors": [],
    }
    assert await run(UNREACT, post_id, "LOVE") == {
        "post": {"reactionCount": 0, "myReactions": []},
        "comment": None,
        "userErrors": [],
    }
    assert await run(REACT, gid("Member", ada.id), "LOVE") == {
        "post": None,
        "comment": None,
        "userErrors": [{"field": ["input", "subjectId"], "code": "INVALID_ID"}],
    }
    assert await count(session, Reaction) == 1

    # Both in one document: each payload reads the post after its own write.
    saved = data(
        await graphql(BOOKMARK, {"b": {"postId": post_id}, "u": {"postId": post_id}}, member=ada)
    )
    assert saved == {
        "bookmark": {"post": {"bookmarked": True}, "userErrors": []},
        "unbookmark": {"post": {"bookmarked": False}, "userErrors": []},
    }
    assert await count(session, Bookmark) == 0


EDIT = """
mutation($u: UpdatePostInput!, $d: DeletePostInput!) {
  updatePost(input: $u) { post { body tags } userErrors { field code } }
  deletePost(input: $d) { deletedPostId userErrors { field code } }
}
"""


async def test_authors_edit_and_delete_their_posts_only(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_gateway_member: MakeGatewayMember,
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    bea = await community_member(make_gateway_member, session, display_name="Bea")
    post = await write_post(client, ada, "Draft")
    post_id = gid("Post", post["id"])
    by_bea = data(
        await graphql(
            EDIT,
            {"u": {"postId": post_id, "body": "Mine now"}, "d": {"postId": post_id}},
            member=bea,
        )
    )
    assert by_bea == {
        "updatePost": {
            "post": None,
            "userErrors": [{"field": ["input", "postId"], "code": "NotTheAuthor"}],
        },
        "deletePost": {
            "deletedPostId": None,
            "userErrors": [{"field": ["input", "postId"], "code": "NotTheAuthor"}],
        },
    }
    by_ada = data(
        await graphql(
            EDIT,
            {"u": {"postId": post_id, "body": "Final", "tags": ["Done"]}, "d": {"postId": post_id}},
            member=ada,
        )
    )
    assert by_ada == {
        "updatePost": {"post": {"body": "Final", "tags": ["done"]}, "userErrors": []},
        "deletePost": {"deletedPostId": post_id, "userErrors": []},
    }
    [stored] = (await session.scalars(select(Post))).all()
    assert (stored.body, stored.status) == ("Final", "removed")


FOLLOW = """
mutation($f: FollowInput!) {
  follow(input: $f) { member { displayName followerCount } userErrors { field code } }
}
"""
UNFOLLOW = """
mutation($u: UnfollowInput!) {
  unfollow(input: $u) { member { displayName followerCount } userErrors { field code } }
}
"""


async def test_follow_unfollow_and_report(
    graphql: GraphQL,
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_gateway_member: MakeGatewayMember,
) -> None:
    ada = await community_member(make_gateway_member, session, display_name="Ada")
    bea = await community_member(make_gateway_member, session, display_name="Bea")
    bea_id = gid("Member", bea.id)
    followed = data(await graphql(FOLLOW, {"f": {"memberId": bea_id}}, member=ada))
    assert followed == {
        "follow": {"member": {"displayName": "Bea", "followerCount": 1}, "userErrors": []}
    }
    myself = data(await graphql(FOLLOW, {"f": {"memberId": gid("Member", ada.id)}}, member=ada))
    assert myself == {
        "follow": {
            "member": None,
            "userErrors": [{"field": ["input", "memberId"], "code": "CannotFollowYourself"}],
        }
    }
    assert await count(session, Follow) == 1
    unfollowed = data(await graphql(UNFOLLOW, {"u": {"memberId": bea_id}}, member=ada))
    assert unfollowed == {
        "unfollow": {"member": {"displayName": "Bea", "followerCount": 0}, "userErrors": []}
    }

    post = await write_post(client, bea, "Buy now")
    report = """
    mutation($input: ReportInput!) {
      report(input: $input) { report { targetKind reason text status } userErrors { field code } }
    }
    """
    filed = data(
        await graphql(
            report,
            {"input": {"subjectId": gid("Post", post["id"]), "reason": "SPAM"}},
            member=ada,
        )
    )
    assert filed == {
        "report": {
            "report": {"targetKind": "POST", "reason": "SPAM", "text": None, "status": "OPEN"},
            "userErrors": [],
        }
    }
    needs_text = data(
        await graphql(report, {"input": {"subjectId": bea_id, "reason": "OTHER"}}, member=ada)
    )
    assert needs_text["report"]["report"] is None
    assert [e["code"] for e in needs_text["report"]["userErrors"]] == ["ValidationError"]
