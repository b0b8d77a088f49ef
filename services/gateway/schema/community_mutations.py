"""What members do in the community: post, comment, react, follow, bookmark, report, answer
prompts, propose and vote on ideas, join groups and challenges.

Each mutation takes one input object and answers a payload with its result and `userErrors`. Bad
global ids are refused before anything is sent; everything else is the community's to refuse,
and it refuses before it writes, so a payload with `userErrors` means nothing changed. Objects a
payload shows after a write are read afresh (their loader's cached copy is dropped first).
"""

from __future__ import annotations

import uuid
from typing import Any

import strawberry

from services.community.ideas.models import IdeaCategory
from services.community.models import PostKind
from services.community.moderation.models import ReportReason, TargetKind
from services.community.posts.events import ReactionKind
from services.gateway.calls import Rejected, input_id, input_uuid, send
from services.gateway.context import GatewayContext, GatewayInfo
from services.gateway.errors import UserError
from services.gateway.schema.community_types import (
    Challenge,
    Comment,
    Group,
    Idea,
    Member,
    Post,
    Prompt,
    Report,
    challenge_from_json,
    comment_by_id,
    comment_from_json,
    group_by_id,
    idea_from_json,
    member_by_id,
    post_by_id,
    post_from_json,
    prompt_by_id,
    report_from_json,
)

# Where a refusal's code points in the input, when it is about one field.
_POST_CODES = {"PostNotFound": "postId", "PostRemoved": "postId", "NotTheAuthor": "postId"}
_GROUP_CODES = {
    "GroupNotFound": "groupId",
    "NotAGroupMember": "groupId",
    "RemovedFromGroup": "groupId",
}


async def _fresh_post(context: GatewayContext, post_id: uuid.UUID) -> Post | None:
    context.loaders.forget("post", post_id)
    return await post_by_id(context, post_id)


def _written(**fields: Any) -> dict[str, Any]:
    """The request body: the fields given (absent ones are the service's defaults)."""
    return {name: value for name, value in fields.items() if value is not None}


# --- Inputs -----------------------------------------------------------------------------------


@strawberry.input
class MediaInput:
    url: str = strawberry.field(description="An http or https URL.")
    alt: str = ""


def _media(items: list[MediaInput] | None) -> list[dict[str, str]] | None:
    return [{"url": m.url, "alt": m.alt} for m in items] if items is not None else None


@strawberry.input(description="A post, or with `kind: REVIEW` a review of `reviewSku` rated 1-5.")
class CreatePostInput:
    body: str
    kind: PostKind = PostKind.POST
    media: list[MediaInput] | None = None
    tags: list[str] | None = None
    skus: list[str] | None = None
    group_id: strawberry.ID | None = strawberry.field(
        default=None, description="Post in this group (I must be an active member)."
    )
    review_sku: str | None = None
    rating: int | None = None
    idempotency_key: str | None = strawberry.field(
        default=None, description="Send the same key to retry safely: one post is written."
    )


@strawberry.input(description="What I may change of my post; omitted fields stay.")
class UpdatePostInput:
    post_id: strawberry.ID
    body: str | None = None
    media: list[MediaInput] | None = None
    tags: list[str] | None = None


@strawberry.input
class DeletePostInput:
    post_id: strawberry.ID


@strawberry.input(description="A comment on a post, or a reply to a comment on it.")
class AddCommentInput:
    post_id: strawberry.ID
    body: str
    parent_id: strawberry.ID | None = strawberry.field(
        default=None, description="The comment this replies to."
    )
    idempotency_key: str | None = None


@strawberry.input
class DeleteCommentInput:
    comment_id: strawberry.ID


@strawberry.input(description="A reaction to a post or to a comment (`subjectId`).")
class ReactInput:
    subject_id: strawberry.ID
    kind: ReactionKind


@strawberry.input
class UnreactInput:
    subject_id: strawberry.ID
    kind: ReactionKind


@strawberry.input
class FollowInput:
    member_id: strawberry.ID


@strawberry.input
class UnfollowInput:
    member_id: strawberry.ID


@strawberry.input
class BookmarkInput:
    post_id: strawberry.ID


@strawberry.input
class UnbookmarkInput:
    post_id: strawberry.ID


@strawberry.input(description="A report of a post, a comment or a member (`subjectId`).")
class ReportInput:
    subject_id: strawberry.ID
    reason: ReportReason
    text: str | None = strawberry.field(
        default=None, description="What is wrong, in my words (required for OTHER)."
    )


@strawberry.input(description="An answer to a prompt: a post.")
class AnswerPromptInput:
    prompt_id: strawberry.ID
    body: str
    media: list[MediaInput] | None = None
    tags: list[str] | None = None
    skus: list[str] | None = None
    group_id: strawberry.ID | None = None
    idempotency_key: str | None = None


@strawberry.input
class ProposeIdeaInput:
    title: str
    body: str
    category: IdeaCategory
    idempotency_key: str | None = None


@strawberry.input
class VoteIdeaInput:
    idea_id: strawberry.ID


@strawberry.input
class UnvoteIdeaInput:
    idea_id: strawberry.ID


@strawberry.input
class JoinGroupInput:
    group_id: strawberry.ID


@strawberry.input
class LeaveGroupInput:
    group_id: strawberry.ID


@strawberry.input
class JoinChallengeInput:
    challenge_id: strawberry.ID


# --- Payloads ---------------------------------------------------------------------------------


@strawberry.type
class CreatePostPayload:
    post: Post | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class UpdatePostPayload:
    post: Post | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeletePostPayload:
    deleted_post_id: strawberry.ID | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class AddCommentPayload:
    comment: Comment | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteCommentPayload:
    deleted_comment_id: strawberry.ID | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="The post reacted to (or holding the comment), read afresh.")
class ReactPayload:
    post: Post | None = None
    comment: Comment | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class UnreactPayload:
    post: Post | None = None
    comment: Comment | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class FollowPayload:
    member: Member | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class UnfollowPayload:
    member: Member | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class BookmarkPayload:
    post: Post | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class UnbookmarkPayload:
    post: Post | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ReportPayload:
    report: Report | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class AnswerPromptPayload:
    post: Post | None = None
    prompt: Prompt | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ProposeIdeaPayload:
    idea: Idea | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class VoteIdeaPayload:
    idea: Idea | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class UnvoteIdeaPayload:
    idea: Idea | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class JoinGroupPayload:
    group: Group | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class LeaveGroupPayload:
    group: Group | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class JoinChallengePayload:
    challenge: Challenge | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


# --- Reactions: to a post or to a comment -----------------------------------------------------


async def _react(
    context: GatewayContext, subject_id: str, kind: ReactionKind, *, undo: bool
) -> tuple[Post | None, Comment | None]:
    type_name, raw = input_id(subject_id, "subjectId", "Post", "Comment")
    target = "posts" if type_name == "Post" else "comments"
    codes = {"PostNotFound": "subjectId", "CommentNotFound": "subjectId"}
    if undo:
        await send(
            context,
            "community",
            "DELETE",
            f"/community/v1/{target}/{raw}/reactions/{kind.value}",
            codes=codes,
        )
    else:
        await send(
            context,
            "community",
            "POST",
            f"/community/v1/{target}/{raw}/reactions",
            json={"kind": kind.value},
            codes=codes,
        )
    if type_name == "Post":
        return await _fresh_post(context, raw), None
    comment = await comment_by_id(context, raw)
    post = await _fresh_post(context, comment.post_id) if comment is not None else None
    return post, comment


_REPORTED = {"Post": TargetKind.POST, "Comment": TargetKind.COMMENT, "Member": TargetKind.MEMBER}


@strawberry.type
class CommunityMutation:
    @strawberry.mutation(description="Write a post or a review (held for review if in doubt).")
    async def create_post(self, info: GatewayInfo, input: CreatePostInput) -> CreatePostPayload:
        try:
            group_id = input_uuid(input.group_id, "groupId", "Group") if input.group_id else None
            body = _written(
                body=input.body,
                kind=input.kind.value,
                media=_media(input.media),
                tags=input.tags,
                skus=input.skus,
                group_id=str(group_id) if group_id else None,
                review_sku=input.review_sku,
                rating=input.rating,
            )
            data = await send(
                info.context,
                "community",
                "POST",
                "/community/v1/posts",
                json=body,
                idempotency_key=input.idempotency_key,
                codes=_GROUP_CODES,
            )
        except Rejected as rejected:
            return CreatePostPayload(user_errors=rejected.errors)
        return CreatePostPayload(post=post_from_json(data))

    @strawberry.mutation(description="Edit my post's text, tags or media (screened again).")
    async def update_post(self, info: GatewayInfo, input: UpdatePostInput) -> UpdatePostPayload:
        try:
            post_id = input_uuid(input.post_id, "postId", "Post")
            body = _written(body=input.body, media=_media(input.media), tags=input.tags)
            data = await send(
                info.context,
                "community",
                "PATCH",
                f"/community/v1/posts/{post_id}",
                json=body,
                codes=_POST_CODES,
            )
        except Rejected as rejected:
            return UpdatePostPayload(user_errors=rejected.errors)
        info.context.loaders.forget("post", post_id)
        return UpdatePostPayload(post=post_from_json(data))

    @strawberry.mutation(description="Delete my post.")
    async def delete_post(self, info: GatewayInfo, input: DeletePostInput) -> DeletePostPayload:
        try:
            post_id = input_uuid(input.post_id, "postId", "Post")
            await send(
                info.context,
                "community",
                "DELETE",
                f"/community/v1/posts/{post_id}",
                codes=_POST_CODES,
            )
        except Rejected as rejected:
            return DeletePostPayload(user_errors=rejected.errors)
        info.context.loaders.forget("post", post_id)
        return DeletePostPayload(deleted_post_id=input.post_id)

    @strawberry.mutation(description="Comment on a post, or reply to a comment on it.")
    async def add_comment(self, info: GatewayInfo, input: AddCommentInput) -> AddCommentPayload:
        try:
            post_id = input_uuid(input.post_id, "postId", "Post")
            parent = input_uuid(input.parent_id, "parentId", "Comment") if input.parent_id else None
            data = await send(
                info.context,
                "community",
                "POST",
                f"/community/v1/posts/{post_id}/comments",
                json=_written(body=input.body, parent_id=str(parent) if parent else None),
                idempotency_key=input.idempotency_key,
                codes={**_POST_CODES, "InvalidParent": "parentId", "CommentRemoved": "parentId"},
            )
        except Rejected as rejected:
            return AddCommentPayload(user_errors=rejected.errors)
        info.context.loaders.forget("post", post_id)
        return AddCommentPayload(comment=comment_from_json(data))

    @strawberry.mutation(description="Delete my comment.")
    async def delete_comment(
        self, info: GatewayInfo, input: DeleteCommentInput
    ) -> DeleteCommentPayload:
        try:
            comment_id = input_uuid(input.comment_id, "commentId", "Comment")
            await send(
                info.context,
                "community",
                "DELETE",
                f"/community/v1/comments/{comment_id}",
                codes={"CommentNotFound": "commentId", "NotTheAuthor": "commentId"},
            )
        except Rejected as rejected:
            return DeleteCommentPayload(user_errors=rejected.errors)
        return DeleteCommentPayload(deleted_comment_id=input.comment_id)

    @strawberry.mutation(description="React to a post or a comment (once per kind).")
    async def react(self, info: GatewayInfo, input: ReactInput) -> ReactPayload:
        try:
            post, comment = await _react(info.context, input.subject_id, input.kind, undo=False)
        except Rejected as rejected:
            return ReactPayload(user_errors=rejected.errors)
        return ReactPayload(post=post, comment=comment)

    @strawberry.mutation(description="Take back my reaction of a kind to a post or a comment.")
    async def unreact(self, info: GatewayInfo, input: UnreactInput) -> UnreactPayload:
        try:
            post, comment = await _react(info.context, input.subject_id, input.kind, undo=True)
        except Rejected as rejected:
            return UnreactPayload(user_errors=rejected.errors)
        return UnreactPayload(post=post, comment=comment)

    @strawberry.mutation(description="Follow a member: their posts join my following feed.")
    async def follow(self, info: GatewayInfo, input: FollowInput) -> FollowPayload:
        try:
            member_id = input_uuid(input.member_id, "memberId", "Member")
            await send(
                info.context,
                "community",
                "PUT",
                f"/community/v1/me/following/{member_id}",
                codes={
                    "MemberNotFound": "memberId",
                    "CannotFollowYourself": "memberId",
                    "MemberBlocked": "memberId",
                },
            )
        except Rejected as rejected:
            return FollowPayload(user_errors=rejected.errors)
        info.context.loaders.forget("member", member_id)
        return FollowPayload(member=await member_by_id(info.context, member_id))

    @strawberry.mutation(description="Stop following a member.")
    async def unfollow(self, info: GatewayInfo, input: UnfollowInput) -> UnfollowPayload:
        try:
            member_id = input_uuid(input.member_id, "memberId", "Member")
            await send(
                info.context,
                "community",
                "DELETE",
                f"/community/v1/me/following/{member_id}",
                codes={"MemberNotFound": "memberId"},
            )
        except Rejected as rejected:
            return UnfollowPayload(user_errors=rejected.errors)
        info.context.loaders.forget("member", member_id)
        return UnfollowPayload(member=await member_by_id(info.context, member_id))

    @strawberry.mutation(description="Save a post to my bookmarks.")
    async def bookmark(self, info: GatewayInfo, input: BookmarkInput) -> BookmarkPayload:
        try:
            post_id = input_uuid(input.post_id, "postId", "Post")
            await send(
                info.context,
                "community",
                "PUT",
                f"/community/v1/posts/{post_id}/bookmark",
                codes=_POST_CODES,
            )
        except Rejected as rejected:
            return BookmarkPayload(user_errors=rejected.errors)
        return BookmarkPayload(post=await _fresh_post(info.context, post_id))

    @strawberry.mutation(description="Remove a post from my bookmarks.")
    async def unbookmark(self, info: GatewayInfo, input: UnbookmarkInput) -> UnbookmarkPayload:
        try:
            post_id = input_uuid(input.post_id, "postId", "Post")
            await send(
                info.context,
                "community",
                "DELETE",
                f"/community/v1/posts/{post_id}/bookmark",
                codes=_POST_CODES,
            )
        except Rejected as rejected:
            return UnbookmarkPayload(user_errors=rejected.errors)
        return UnbookmarkPayload(post=await _fresh_post(info.context, post_id))

    @strawberry.mutation(description="Report a post, a comment or a member to the moderators.")
    async def report(self, info: GatewayInfo, input: ReportInput) -> ReportPayload:
        try:
            type_name, raw = input_id(input.subject_id, "subjectId", *_REPORTED)
            body = _written(
                target_kind=_REPORTED[type_name].value,
                target_id=str(raw),
                reason=input.reason.value,
                text=input.text,
            )
            data = await send(
                info.context,
                "community",
                "POST",
                "/community/v1/reports",
                json=body,
                fields={"target_id": "subjectId", "target_kind": "subjectId"},
                codes={"TargetNotFound": "subjectId", "CannotReportSelf": "subjectId"},
            )
        except Rejected as rejected:
            return ReportPayload(user_errors=rejected.errors)
        return ReportPayload(report=report_from_json(data))

    @strawberry.mutation(description="Answer a prompt with a post.")
    async def answer_prompt(
        self, info: GatewayInfo, input: AnswerPromptInput
    ) -> AnswerPromptPayload:
        try:
            prompt_id = input_uuid(input.prompt_id, "promptId", "Prompt")
            group_id = input_uuid(input.group_id, "groupId", "Group") if input.group_id else None
            body = _written(
                body=input.body,
                media=_media(input.media),
                tags=input.tags,
                skus=input.skus,
                group_id=str(group_id) if group_id else None,
            )
            data = await send(
                info.context,
                "community",
                "POST",
                f"/community/v1/prompts/{prompt_id}/answers",
                json=body,
                idempotency_key=input.idempotency_key,
                codes={
                    **_GROUP_CODES,
                    "PromptNotFound": "promptId",
                    "PromptClosed": "promptId",
                    "NotInAudience": "promptId",
                },
            )
        except Rejected as rejected:
            return AnswerPromptPayload(user_errors=rejected.errors)
        info.context.loaders.forget("prompt", prompt_id)
        return AnswerPromptPayload(
            post=post_from_json(data), prompt=await prompt_by_id(info.context, prompt_id)
        )

    @strawberry.mutation(description="Propose an idea to the brand (my vote counts with it).")
    async def propose_idea(self, info: GatewayInfo, input: ProposeIdeaInput) -> ProposeIdeaPayload:
        try:
            data = await send(
                info.context,
                "community",
                "POST",
                "/community/v1/ideas",
                json={"title": input.title, "body": input.body, "category": input.category.value},
                idempotency_key=input.idempotency_key,
            )
        except Rejected as rejected:
            return ProposeIdeaPayload(user_errors=rejected.errors)
        return ProposeIdeaPayload(idea=idea_from_json(data))

    @strawberry.mutation(description="Vote for an idea (once).")
    async def vote_idea(self, info: GatewayInfo, input: VoteIdeaInput) -> VoteIdeaPayload:
        try:
            idea_id = input_uuid(input.idea_id, "ideaId", "Idea")
            data = await send(
                info.context,
                "community",
                "POST",
                f"/community/v1/ideas/{idea_id}/vote",
                codes={"IdeaNotFound": "ideaId", "AlreadyVoted": "ideaId", "IdeaClosed": "ideaId"},
            )
        except Rejected as rejected:
            return VoteIdeaPayload(user_errors=rejected.errors)
        return VoteIdeaPayload(idea=idea_from_json(data))

    @strawberry.mutation(description="Take my vote for an idea back.")
    async def unvote_idea(self, info: GatewayInfo, input: UnvoteIdeaInput) -> UnvoteIdeaPayload:
        try:
            idea_id = input_uuid(input.idea_id, "ideaId", "Idea")
            data = await send(
                info.context,
                "community",
                "DELETE",
                f"/community/v1/ideas/{idea_id}/vote",
                codes={"IdeaNotFound": "ideaId", "VoteNotFound": "ideaId"},
            )
        except Rejected as rejected:
            return UnvoteIdeaPayload(user_errors=rejected.errors)
        return UnvoteIdeaPayload(idea=idea_from_json(data))

    @strawberry.mutation(description="Join a group.")
    async def join_group(self, info: GatewayInfo, input: JoinGroupInput) -> JoinGroupPayload:
        try:
            group_id = input_uuid(input.group_id, "groupId", "Group")
            await send(
                info.context,
                "community",
                "POST",
                f"/community/v1/groups/{group_id}/members",
                codes=_GROUP_CODES,
            )
        except Rejected as rejected:
            return JoinGroupPayload(user_errors=rejected.errors)
        return JoinGroupPayload(group=await group_by_id(info.context, group_id))

    @strawberry.mutation(description="Leave a group.")
    async def leave_group(self, info: GatewayInfo, input: LeaveGroupInput) -> LeaveGroupPayload:
        try:
            group_id = input_uuid(input.group_id, "groupId", "Group")
            await send(
                info.context,
                "community",
                "DELETE",
                f"/community/v1/groups/{group_id}/members/me",
                codes={**_GROUP_CODES, "LastModerator": "groupId"},
            )
        except Rejected as rejected:
            return LeaveGroupPayload(user_errors=rejected.errors)
        return LeaveGroupPayload(group=await group_by_id(info.context, group_id))

    @strawberry.mutation(description="Take on a challenge: my actions count from now.")
    async def join_challenge(
        self, info: GatewayInfo, input: JoinChallengeInput
    ) -> JoinChallengePayload:
        try:
            challenge_id = input_uuid(input.challenge_id, "challengeId", "Challenge")
            data = await send(
                info.context,
                "community",
                "POST",
                f"/community/v1/challenges/{challenge_id}/participants",
                codes={"ChallengeNotFound": "challengeId", "ChallengeClosed": "challengeId"},
            )
        except Rejected as rejected:
            return JoinChallengePayload(user_errors=rejected.errors)
        return JoinChallengePayload(challenge=challenge_from_json(data))
