"""Errors of testimonials; each says what the caller can do."""

from __future__ import annotations

from services.kernel.errors import Conflict, Forbidden, NotFound


class PostNotPublished(Conflict):
    """Only a published (approved) post or review can be featured: this one is held for review
    or removed."""

    code = "PostNotPublished"


class AlreadyFeatured(Conflict):
    """This post already has an open testimonial (asked or live); unfeature it first."""

    code = "AlreadyFeatured"


class AuthorDeclined(Conflict):
    """The author declined to have this post featured; the brand may not ask again."""

    code = "AuthorDeclined"


class TestimonialNotFound(NotFound):
    """No such testimonial in this brand."""

    code = "TestimonialNotFound"


class TestimonialRequestNotFound(NotFound):
    """No such testimonial request for you: see `GET /community/v1/me/testimonial-requests`."""

    code = "TestimonialRequestNotFound"


class RequestAlreadyAnswered(Conflict):
    """This request was already accepted, declined or withdrawn."""

    code = "RequestAlreadyAnswered"


class NotFeatured(Conflict):
    """This testimonial is no longer featured (declined or already withdrawn)."""

    code = "NotFeatured"


class StaffOnlyFilter(Forbidden):
    """Members see live testimonials only; other statuses need a staff key."""

    code = "StaffOnlyFilter"
