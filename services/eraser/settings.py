from __future__ import annotations

from pydantic import Field

from shared.settings import LetheSettings


class EraserSettings(LetheSettings):
    erase_batch_size: int = Field(1000, ge=1, le=50_000, description="Rows per erase batch.")
    erase_rate_limit_rows: float = Field(
        0, ge=0, description="Upper bound on rows erased per second (0: unlimited)."
    )
