"""Role-checked caller types for route signatures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.intake.auth import role
from services.intake.domain import Caller

Viewer = Annotated[Caller, Depends(role("viewer"))]
Admin = Annotated[Caller, Depends(role("admin"))]
Owner = Annotated[Caller, Depends(role("owner"))]
