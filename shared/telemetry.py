"""OpenTelemetry setup: one TracerProvider per service, passed in (never a global)."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF


def tracer_provider(
    service: str, *, exporter: str = "none", processors: list[SpanProcessor] | None = None
) -> TracerProvider:
    # Nothing to send spans to: none is recorded (ALWAYS_OFF), but each still has a trace
    # context, so trace ids still travel in envelopes and headers. Recording the spans of
    # every publish and consume costs CPU on each message for nothing.
    exporting = exporter in ("console", "otlp") or bool(processors)
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"lethe-{service}"}),
        sampler=None if exporting else ALWAYS_OFF,  # None: the default (or OTEL_TRACES_SAMPLER)
    )
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        # OTLP over HTTP to a collector: OTEL_EXPORTER_OTLP_ENDPOINT (standard variables).
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    for p in processors or []:
        provider.add_span_processor(p)
    return provider
