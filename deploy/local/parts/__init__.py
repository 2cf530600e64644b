"""The parts of the local infrastructure that `deploy/local/infra.py` starts and stops.

`processes` (detached processes with pid files and logs), `kafka`, `postgres` and
`s3_smtp` (moto server, SMTP sink), on the helpers in `common`. Standard library only.
"""
