"""Who may call rewards' staff routes: API keys with the rewards scopes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.kernel.auth import Scope, StaffPrincipal, require_staff

StaffRead = Annotated[StaffPrincipal, Depends(require_staff(Scope.REWARDS_READ))]
StaffWrite = Annotated[StaffPrincipal, Depends(require_staff(Scope.REWARDS_WRITE))]
