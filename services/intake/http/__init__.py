"""Intake's HTTP API: one APIRouter per area; each route authenticates, validates, calls one
use case of `services.intake.service` and answers. Dependencies are in `deps`."""
