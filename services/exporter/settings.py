from __future__ import annotations

from pydantic import Field

from shared.settings import LetheSettings


class ExporterSettings(LetheSettings):
    exports_bucket: str = Field("lethe-exports", description="Bucket exports are written to.")
