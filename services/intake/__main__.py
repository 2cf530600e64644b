import signal
import sys
from types import FrameType

import uvicorn

from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from shared.runner import configure_logging, load_settings, preflight


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


if __name__ == "__main__":
    configure_logging()
    settings = load_settings(IntakeSettings)
    # A data map that does not fit the database stops intake here, with the message alone.
    datamap = preflight(settings)
    http = create_http(settings, datamap=datamap)
    # uvicorn drains on SIGTERM, then raises the signal again with the handler found here:
    # exit 0 after a drain, as the other services do, not "killed by SIGTERM".
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        http,
        host=settings.http_host,
        port=settings.http_port,
        log_level="info",
        # A third of the grace period for HTTP requests in flight; the Kafka drain gets the rest.
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds / 3)),
    )
