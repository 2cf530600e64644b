from __future__ import annotations

from pydantic import Field

from shared.settings import LetheSettings


class NotifierSettings(LetheSettings):
    mail_from: str = Field("Lethe <lethe@localhost>", description="From address of emails.")
    smtp_timeout_seconds: float = Field(15, description="SMTP connect/send timeout.")
