"""A member's erasure in the community: what they wrote, and what the community keeps about
them, goes when `member.erased` arrives (see `members.projection`). Never commits: the member's
projection row and everything below change in the consumer's one transaction.

What each kind of data becomes:

- Their posts, reviews and prompt answers: removed, as a moderator removes a post
  (`post.removed`: rewards voids what they earned, the recommender drops them), with the body
  `[removed]` and no media or tags.
- Their comments: removed (uncounted from their posts), body `[removed]`; replies stay.
- Their ideas and comments on ideas: title and body `[removed]`; votes and others' comments stay.
- Their experience reviews: no words; the rating stays counted in the experience's summary.
- Reports they filed: no note; reason and target stay for the moderators.
- Testimonial requests for their posts: no note (staff's words to them).
- Experiences they host: title `[removed]`, no description or tags. Their sessions that have
  not started are cancelled as a host cancels them (guests refunded in full); every session's
  address or link, and the host's own cancellation reasons, become `[removed]`.
- Their bookings and waitlist places on sessions that have not started: cancelled as they would
  cancel them; the waitlist moves up into the seats.
- Follows, blocks and mutes, either way, and their bookmarks: deleted.
- The stored answers of their idempotent writes: deleted (a retry after the erasure is refused,
  the member being unknown).
- Copies in the outbox (titles and tags in post, idea and session events, the title in payment
  requests for their sessions): blanked as above.

What stays, under their id only (the members service keeps the id too): reactions, votes,
group memberships, challenge progress, badges, milestones, reputation, moderation decisions and
bookings that ended or started. Each is a count others see (reactions on a post, votes on an
idea, seats of a session) or a record of what happened, and none holds what the member wrote.
Other members' posts, comments and threads stay as they are.

Every step changes only what is not erased yet, so a second run (a replayed event) changes
nothing and emits nothing.
"""

from __future__ import annotations

import uuid
from collections import Counter

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.erasure.repository import Blank, ErasureRepository
from services.community.experiences import bookings
from services.community.models import OUTBOX
from services.community.posts.events import PostRemoved, PostRemovedData
from services.community.posts.service import post_data
from services.community.posts.text import body_hash
from services.kernel.clock import utcnow

# What erased text reads as where the column needs text (a post's body, an idea's title).
REMOVED = "[removed]"
# Why the sessions of an erased host were cancelled, as their guests see it.
HOST_LEFT = "The host left the community."
# The reason `post.removed` gives for an erased member's posts.
ERASURE_REASON = "member_erased"

_POST_EVENTS = ["post.created", "post.approved", "post.removed"]
_IDEA_EVENTS = ["idea.created", "idea.status_changed"]
_SESSION_EVENTS = ["experience.session_scheduled", "experience.session_cancelled"]


async def erase_member_content(
    session: AsyncSession, brand_id: uuid.UUID, member_id: uuid.UUID
) -> None:
    """Erase what the community holds of the member (see the module doc)."""
    now = utcnow()
    erasure = ErasureRepository(session)
    blank = Blank(REMOVED, body_hash(REMOVED))

    # Experiences first: the cancellations' events then carry the blanked title.
    hosted = await erasure.hosted_experience_ids(brand_id, member_id)
    await erasure.blank_experiences(hosted, REMOVED, now)
    for session_id in await erasure.upcoming_session_ids(hosted, now):
        await bookings.cancel_session_of_erased_host(session, brand_id, session_id, HOST_LEFT, now)
    await erasure.blank_sessions(hosted, REMOVED, [HOST_LEFT], now)
    for booking_id in await erasure.live_booking_ids(brand_id, member_id, now):
        await bookings.cancel_booking_of_erased_member(session, brand_id, booking_id, now)
    await erasure.blank_experience_reviews(brand_id, member_id)

    await erasure.blank_posts(brand_id, member_id, blank, now)
    for post in await erasure.remove_live_posts(brand_id, member_id, now):
        data = PostRemovedData(
            **post_data(post).model_dump(), removed_by="author", reason=ERASURE_REASON
        )
        await OUTBOX.add(
            session,
            PostRemoved(brand_id=brand_id, subject_id=member_id, occurred_at=now, data=data),
        )
    await erasure.blank_comments(brand_id, member_id, blank)
    removed = await erasure.remove_live_comments(brand_id, member_id, now)
    await erasure.uncount_comments(Counter(c.post_id for c in removed if c.was_published))

    await erasure.blank_ideas(brand_id, member_id, REMOVED)
    await erasure.blank_idea_comments(brand_id, member_id, REMOVED)
    await erasure.clear_report_notes(brand_id, member_id)
    await erasure.clear_testimonial_notes(brand_id, member_id)
    await erasure.delete_relations(brand_id, member_id)

    # The copies, last: the events written above are already blank.
    # How the kernel scopes a member's keys (`kernel.idempotency`): every write of theirs.
    await erasure.delete_stored_answers(brand_id, f"member:{member_id}:")
    await erasure.scrub_events(brand_id, _POST_EVENTS, "author_id", [member_id], {"tags": []})
    await erasure.scrub_events(
        brand_id,
        _IDEA_EVENTS,
        "idea_id",
        await erasure.idea_ids(brand_id, member_id),
        {"title": REMOVED},
    )
    await erasure.scrub_events(
        brand_id, _SESSION_EVENTS, "host_member_id", [member_id], {"title": REMOVED, "tags": []}
    )
    await erasure.scrub_cancel_reasons(brand_id, member_id, REMOVED, [HOST_LEFT])
    await erasure.scrub_events(
        brand_id, ["experience.payment_requested"], "experience_id", hosted, {"title": REMOVED}
    )
