"""All SQL of challenges. Every query filters by brand, or by a challenge or member id already
resolved within the brand."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import date, datetime

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.community.challenges.models import (
    Challenge,
    ChallengeAction,
    ChallengeActionRecord,
    ChallengeParticipant,
    ChallengeStep,
)
from services.community.reputation.models import Badge
from services.kernel.ids import new_id
from services.kernel.pagination import PageRequest, keyset


class ChallengeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- challenges and steps ---

    async def add(self, challenge: Challenge) -> None:
        self.session.add(challenge)
        await self.session.flush()

    async def get(
        self, brand_id: uuid.UUID, challenge_id: uuid.UUID, *, for_update: bool = False
    ) -> Challenge | None:
        statement = (
            select(Challenge)
            .where(Challenge.brand_id == brand_id, Challenge.id == challenge_id)
            .execution_options(populate_existing=True)
        )
        if for_update:
            statement = statement.with_for_update()
        return await self.session.scalar(statement)

    async def page(
        self, brand_id: uuid.UUID, page: PageRequest, *, ending_after: datetime | None = None
    ) -> Sequence[Challenge]:
        statement = select(Challenge).where(Challenge.brand_id == brand_id)
        if ending_after is not None:
            statement = statement.where(Challenge.ends_at > ending_after)
        return (await self.session.scalars(keyset(statement, Challenge.id, page))).all()

    async def joined_page(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, page: PageRequest
    ) -> Sequence[Challenge]:
        statement = (
            select(Challenge)
            .join(ChallengeParticipant, ChallengeParticipant.challenge_id == Challenge.id)
            .where(Challenge.brand_id == brand_id, ChallengeParticipant.member_id == member_id)
        )
        return (await self.session.scalars(keyset(statement, Challenge.id, page))).all()

    async def badge_exists(self, brand_id: uuid.UUID, badge_id: uuid.UUID) -> bool:
        return bool(
            await self.session.scalar(
                select(exists().where(Badge.brand_id == brand_id, Badge.id == badge_id))
            )
        )

    async def steps(
        self, challenge_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[ChallengeStep]]:
        """Each challenge's steps in their order."""
        by_challenge: dict[uuid.UUID, list[ChallengeStep]] = {cid: [] for cid in challenge_ids}
        if not challenge_ids:
            return by_challenge
        rows = await self.session.scalars(
            select(ChallengeStep)
            .where(ChallengeStep.challenge_id.in_(challenge_ids))
            .order_by(ChallengeStep.challenge_id, ChallengeStep.position)
        )
        for step in rows:
            by_challenge[step.challenge_id].append(step)
        return by_challenge

    async def replace_steps(
        self, challenge: Challenge, steps: Sequence[tuple[ChallengeAction, int]]
    ) -> None:
        await self.session.execute(
            delete(ChallengeStep).where(ChallengeStep.challenge_id == challenge.id)
        )
        self.session.add_all(
            ChallengeStep(
                id=new_id(),
                brand_id=challenge.brand_id,
                challenge_id=challenge.id,
                position=position,
                action=action,
                target=target,
            )
            for position, (action, target) in enumerate(steps)
        )
        await self.session.flush()

    async def delete_if_unjoined(self, challenge: Challenge) -> bool:
        """Deletes a challenge nobody joined (its steps go with it); False otherwise."""
        joined = await self.session.scalar(
            select(exists().where(ChallengeParticipant.challenge_id == challenge.id))
        )
        if joined:
            return False
        await self.session.delete(challenge)
        await self.session.flush()
        return True

    # --- participants ---

    async def join(
        self, challenge: Challenge, member_id: uuid.UUID, at: datetime
    ) -> ChallengeParticipant | None:
        """Adds the member; None when they had joined already."""
        joined = await self.session.scalar(
            insert(ChallengeParticipant)
            .values(
                challenge_id=challenge.id,
                member_id=member_id,
                brand_id=challenge.brand_id,
                joined_at=at,
            )
            .on_conflict_do_nothing()
            .returning(ChallengeParticipant)
        )
        if joined is not None:
            await self.session.execute(
                update(Challenge)
                .where(Challenge.id == challenge.id)
                .values(participant_count=Challenge.participant_count + 1)
            )
        return joined

    async def participant(
        self, challenge_id: uuid.UUID, member_id: uuid.UUID
    ) -> ChallengeParticipant | None:
        return await self.session.get(ChallengeParticipant, (challenge_id, member_id))

    async def participants(
        self, challenge_ids: Sequence[uuid.UUID], member_id: uuid.UUID
    ) -> dict[uuid.UUID, ChallengeParticipant]:
        if not challenge_ids:
            return {}
        rows = await self.session.scalars(
            select(ChallengeParticipant).where(
                ChallengeParticipant.challenge_id.in_(challenge_ids),
                ChallengeParticipant.member_id == member_id,
            )
        )
        return {row.challenge_id: row for row in rows}

    async def participant_page(
        self, challenge_id: uuid.UUID, page: PageRequest
    ) -> Sequence[ChallengeParticipant]:
        statement = select(ChallengeParticipant).where(
            ChallengeParticipant.challenge_id == challenge_id
        )
        return (
            await self.session.scalars(keyset(statement, ChallengeParticipant.member_id, page))
        ).all()

    async def taking_part(
        self, members: Collection[tuple[uuid.UUID, uuid.UUID]]
    ) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """Those of the (brand, member) pairs who joined any challenge of their brand."""
        if not members:
            return set()
        rows = await self.session.execute(
            select(ChallengeParticipant.brand_id, ChallengeParticipant.member_id)
            .where(ChallengeParticipant.member_id.in_(sorted({m for _, m in members})))
            .distinct()
        )
        return {(row[0], row[1]) for row in rows} & set(members)

    async def counting_for(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, action: ChallengeAction, at: datetime
    ) -> Sequence[ChallengeParticipant]:
        """The member's participations that count `action` done at `at` (joined by then, inside
        the challenge's window, with a step for it), locked, in a fixed order so concurrent
        handlers never deadlock."""
        has_step = exists().where(
            ChallengeStep.challenge_id == ChallengeParticipant.challenge_id,
            ChallengeStep.action == action,
        )
        return (
            await self.session.scalars(
                select(ChallengeParticipant)
                .join(Challenge, Challenge.id == ChallengeParticipant.challenge_id)
                .where(
                    ChallengeParticipant.brand_id == brand_id,
                    ChallengeParticipant.member_id == member_id,
                    ChallengeParticipant.joined_at <= at,
                    Challenge.starts_at <= at,
                    Challenge.ends_at > at,
                    has_step,
                )
                .order_by(ChallengeParticipant.challenge_id)
                .with_for_update(of=ChallengeParticipant)
                .execution_options(populate_existing=True)
            )
        ).all()

    async def complete(self, participant: ChallengeParticipant, at: datetime) -> bool:
        """Marks the participation complete, once; True when it is this call that did."""
        done = await self.session.scalar(
            update(ChallengeParticipant)
            .where(
                ChallengeParticipant.challenge_id == participant.challenge_id,
                ChallengeParticipant.member_id == participant.member_id,
                ChallengeParticipant.completed_at.is_(None),
            )
            .values(completed_at=at)
            .returning(ChallengeParticipant.member_id)
        )
        if done is None:
            return False
        participant.completed_at = at
        await self.session.execute(
            update(Challenge)
            .where(Challenge.id == participant.challenge_id)
            .values(completed_count=Challenge.completed_count + 1)
        )
        return True

    async def set_streaks(
        self, participant: ChallengeParticipant, *, streak: int, longest: int, last: date | None
    ) -> None:
        participant.streak = streak
        participant.longest_streak = longest
        participant.last_active_day = last
        await self.session.flush()

    # --- counted actions ---

    async def add_action(
        self,
        participant: ChallengeParticipant,
        action: ChallengeAction,
        subject_id: uuid.UUID,
        *,
        source_event_id: uuid.UUID,
        at: datetime,
        day: date,
    ) -> bool:
        """Counts the action unless its subject counted already; True when counted now."""
        added = await self.session.scalar(
            insert(ChallengeActionRecord)
            .values(
                id=new_id(),
                brand_id=participant.brand_id,
                challenge_id=participant.challenge_id,
                member_id=participant.member_id,
                action=action,
                subject_id=subject_id,
                source_event_id=source_event_id,
                occurred_at=at,
                day=day,
            )
            .on_conflict_do_nothing()
            .returning(ChallengeActionRecord.id)
        )
        return added is not None

    async def withdraw_actions(
        self, brand_id: uuid.UUID, member_id: uuid.UUID, subject_id: uuid.UUID
    ) -> list[uuid.UUID]:
        """Removes the subject's actions from the member's unfinished challenges; returns those
        challenges' ids."""
        unfinished = exists().where(
            ChallengeParticipant.challenge_id == ChallengeActionRecord.challenge_id,
            ChallengeParticipant.member_id == member_id,
            ChallengeParticipant.completed_at.is_(None),
        )
        rows = await self.session.scalars(
            delete(ChallengeActionRecord)
            .where(
                ChallengeActionRecord.brand_id == brand_id,
                ChallengeActionRecord.member_id == member_id,
                ChallengeActionRecord.subject_id == subject_id,
                unfinished,
            )
            .returning(ChallengeActionRecord.challenge_id)
        )
        return sorted(set(rows))

    async def lock_participant(
        self, challenge_id: uuid.UUID, member_id: uuid.UUID
    ) -> ChallengeParticipant | None:
        return await self.session.scalar(
            select(ChallengeParticipant)
            .where(
                ChallengeParticipant.challenge_id == challenge_id,
                ChallengeParticipant.member_id == member_id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def counts(
        self, challenge_ids: Sequence[uuid.UUID], member_ids: Sequence[uuid.UUID]
    ) -> dict[tuple[uuid.UUID, uuid.UUID], dict[ChallengeAction, int]]:
        """Counted actions per (challenge, member) and kind."""
        result: dict[tuple[uuid.UUID, uuid.UUID], dict[ChallengeAction, int]] = {}
        if not challenge_ids or not member_ids:
            return result
        rows = await self.session.execute(
            select(
                ChallengeActionRecord.challenge_id,
                ChallengeActionRecord.member_id,
                ChallengeActionRecord.action,
                func.count(),
            )
            .where(
                ChallengeActionRecord.challenge_id.in_(challenge_ids),
                ChallengeActionRecord.member_id.in_(member_ids),
            )
            .group_by(
                ChallengeActionRecord.challenge_id,
                ChallengeActionRecord.member_id,
                ChallengeActionRecord.action,
            )
        )
        for challenge_id, member_id, action, count in rows:
            result.setdefault((challenge_id, member_id), {})[action] = int(count)
        return result

    async def active_days(self, challenge_id: uuid.UUID, member_id: uuid.UUID) -> list[date]:
        """The UTC days on which the member has a counted action in the challenge, in order."""
        rows = await self.session.scalars(
            select(ChallengeActionRecord.day)
            .where(
                ChallengeActionRecord.challenge_id == challenge_id,
                ChallengeActionRecord.member_id == member_id,
            )
            .distinct()
            .order_by(ChallengeActionRecord.day)
        )
        return list(rows)
