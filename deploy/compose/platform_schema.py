"""Compose/Kubernetes demo only: create the sample platform schema the demo erases from.

python -m deploy.compose.platform_schema   (PLATFORM_DATABASE_URL from the environment)
"""

from __future__ import annotations

import asyncio

from deploy.local.sample.seed import apply_schema
from shared.settings import LetheSettings

if __name__ == "__main__":
    asyncio.run(apply_schema(LetheSettings().platform_database_url))
