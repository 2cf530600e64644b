from __future__ import annotations

from shared.settings import LetheSettings


class AuditorSettings(LetheSettings):
    pass
