"""Errors about posts, comments, reactions and bookmarks; each says what to do instead."""

from __future__ import annotations

from services.kernel.errors import Conflict, Forbidden, NotFound


class PostNotFound(NotFound):
    """No such post in this brand that you can see (held posts are visible to their author only;
    removed posts to no one)."""

    code = "PostNotFound"


class CommentNotFound(NotFound):
    """No such comment in this brand that you can see."""

    code = "CommentNotFound"


class PostRemoved(Conflict):
    """The post was removed: it takes no more comments, reactions or bookmarks."""

    code = "PostRemoved"


class CommentRemoved(Conflict):
    """The comment was removed: it takes no more replies or reactions."""

    code = "CommentRemoved"


class NotTheAuthor(Forbidden):
    """Only the author may change or delete this; report it instead if it breaks the rules."""

    code = "NotTheAuthor"


class ReviewExists(Conflict):
    """You already have a review of this sku: edit it (PATCH) or delete it before writing
    another."""

    code = "ReviewExists"


class InvalidParent(NotFound):
    """`parent_id` must name a visible comment on the same post."""

    code = "InvalidParent"
