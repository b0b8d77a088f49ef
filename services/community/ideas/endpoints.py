"""REST for the community's ideas."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/community/v1", tags=["community: ideas"])
