"""REST for the community's challenges."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/community/v1", tags=["community: challenges"])
