"""Reports: a member flags a post, a comment or another member, with a reason from a fixed set
and optional words (required with `other`).

A member may report what they can see: published posts and comments (held or removed content,
and content of another brand, is 404 `TargetNotFound`), and members of their brand; not
themselves or their own content (422 `CannotReportSelf`). One open report per reporter and
target: reporting the same target again while the first report is open changes nothing and
returns the first report (200 instead of 201), so a double tap in an app is harmless. Once a
decision resolves it, the member may report the target again. A new report emits
`moderation.reported`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.community.models import OUTBOX, CommunityMember, ContentStatus
from services.community.moderation.errors import CannotReportSelf, TargetNotFound
from services.community.moderation.events import ModerationReported, ReportedData
from services.community.moderation.models import Report, ReportStatus, TargetKind
from services.community.moderation.repository import ReportRepository
from services.community.moderation.schemas import ReportCreate
from services.community.moderation.targets import find_target
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest


@dataclass(frozen=True, slots=True)
class Filed:
    report: Report
    created: bool  # False: the reporter's open report on this target, returned as it was


async def file_report(
    session: AsyncSession, reporter: CommunityMember, payload: ReportCreate
) -> Filed:
    brand_id = reporter.brand_id
    target = await find_target(session, brand_id, payload.target_kind, payload.target_id)
    if target.kind != TargetKind.MEMBER and target.status != ContentStatus.PUBLISHED:
        raise TargetNotFound(f"No {target.kind.value} {target.id} in this brand.")
    if target.author_id == reporter.member_id:
        raise CannotReportSelf()
    reports = ReportRepository(session)
    report = await reports.add_open(
        {
            "id": new_id(),
            "brand_id": brand_id,
            "reporter_id": reporter.member_id,
            "target_kind": target.kind,
            "target_id": target.id,
            "target_author_id": target.author_id,
            "group_id": target.group_id,
            "reason": payload.reason,
            "note": payload.text or None,
        }
    )
    if report is None:
        existing = await reports.open_by(reporter.member_id, target.kind, target.id)
        assert existing is not None  # the conflict was with it
        return Filed(existing, created=False)
    await OUTBOX.add(
        session,
        ModerationReported(
            brand_id=brand_id,
            subject_id=target.author_id,
            data=ReportedData(
                report_id=report.id,
                reporter_id=reporter.member_id,
                target_kind=target.kind,
                target_id=target.id,
                target_author_id=target.author_id,
                group_id=target.group_id,
                reason=payload.reason,
            ),
        ),
    )
    return Filed(report, created=True)


async def my_reports(
    session: AsyncSession, member: CommunityMember, page: PageRequest
) -> Sequence[Report]:
    return await ReportRepository(session).page(member.brand_id, page, reporter_id=member.member_id)


async def list_reports(
    session: AsyncSession,
    brand_id: uuid.UUID,
    page: PageRequest,
    *,
    status: ReportStatus | None,
    target_id: uuid.UUID | None,
) -> Sequence[Report]:
    return await ReportRepository(session).page(brand_id, page, status=status, target_id=target_id)
