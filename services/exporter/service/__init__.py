"""The exporter's use cases, with their I/O: build an export, cancel one, fail one whose
retries ran out, sweep the expired. Handlers, the app, the CLI and the tests call these."""

from services.exporter.service.build import export
from services.exporter.service.deps import Emit, ExporterDeps
from services.exporter.service.outcomes import cancel, fail, sweep_expired

__all__ = ["Emit", "ExporterDeps", "cancel", "export", "fail", "sweep_expired"]
