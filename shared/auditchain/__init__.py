"""The audit chain's rules, shared by the auditor that writes it and whoever checks it (intake's
web UI, the CLI): row hashes, signed checkpoints, the trusted keys, and the verification walk.

Pure code, except `verify`, which reads the trail through shared/readmodels/audit.py.
"""
