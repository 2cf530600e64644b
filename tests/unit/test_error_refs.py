"""Exception text stays in the logs; events get an error code and the log line's id."""

from __future__ import annotations

import logging

import pytest
from botocore.exceptions import ClientError

from shared.errors import Worded, reference

pytestmark = pytest.mark.unit
EMAIL = "ann@example.com"


def _logged(caplog: pytest.LogCaptureFixture, ref: str) -> list[str]:
    error_id = ref.split("error_id=")[1].split(";")[0]
    return [r.getMessage() for r in caplog.records if f"error_id={error_id}" in r.getMessage()]


def test_a_reference_names_the_code_and_the_log_line_holds_the_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="lethe.errors")
    ref = reference(ValueError(f"duplicate key {EMAIL}"), "chunk 3")
    assert ref.startswith("ValueError (error_id=") and EMAIL not in ref
    [line] = _logged(caplog, ref)
    assert "chunk 3" in line and EMAIL in line
    # Two failures, two log lines: ids are not reused.
    assert reference(ValueError("x")) != reference(ValueError("x"))


def test_s3_errors_keep_their_code() -> None:
    exc = ClientError({"Error": {"Code": "NoSuchBucket", "Message": "gone"}}, "ListObjectsV2")
    assert reference(exc).startswith("NoSuchBucket (error_id=")


def test_errors_lethe_words_itself_keep_their_text() -> None:
    class Incomplete(Worded):
        pass

    assert reference(Incomplete("3 objects not deleted")) == "Incomplete: 3 objects not deleted"
