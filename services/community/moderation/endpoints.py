"""REST for the community's moderation."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/community/v1", tags=["community: moderation"])
