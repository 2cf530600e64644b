import uvicorn

from services.intake.app import create_http
from services.intake.settings import IntakeSettings
from shared.runner import configure_logging, load_settings, preflight

if __name__ == "__main__":
    configure_logging()
    settings = load_settings(IntakeSettings)
    # A data map that does not fit the database stops intake here, with the message alone.
    datamap = preflight(settings)
    uvicorn.run(
        create_http(settings, datamap=datamap),
        host=settings.http_host,
        port=settings.http_port,
        log_level="info",
        # A third of the grace period for HTTP requests in flight; the Kafka drain gets the rest.
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds / 3)),
    )
