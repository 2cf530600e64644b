"""The parts of the local infrastructure that `deploy/local/infra.py` starts and stops.

`processes` (detached processes with pid files and logs), `kafka`, `postgres` and
`s3_smtp` (moto server, SMTP sink); `endpoints` (ports.json, Endpoints, the env file) and
`common` (files, lock, setup commands, ports) under them all. Standard library only.
"""
