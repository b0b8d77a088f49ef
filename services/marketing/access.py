"""Who may call marketing's routes: staff keys with the marketing scopes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.kernel.auth import Scope, StaffPrincipal, require_staff

StaffRead = Annotated[StaffPrincipal, Depends(require_staff(Scope.MARKETING_READ))]
StaffWrite = Annotated[StaffPrincipal, Depends(require_staff(Scope.MARKETING_WRITE))]
