"""Schemathesis hooks for `test_api_contract` (loaded with SCHEMATHESIS_HOOKS): the values
only the server can issue or the caller's own organisation decides, put in the cases that
are meant to be valid, as a real client would. Schemathesis checks each case again after a
hook, so a case meant to be invalid stays invalid.

- `confirm_org_name` of an organisation-wide request: the org's name (`LETHE_TEST_ORG_NAME`);
- the jobs list's `cursor`: opaque, only a `next_cursor` the API returned is one; left out;
- the `{org}` of the delegation and retention reads and of the delegation change: the key's
  own (`LETHE_TEST_ORG_ID`; another org's is a 403 every time). A retention change keeps a
  generated one: its categories are the data map's, which the document cannot list.
"""

from __future__ import annotations

import os

import schemathesis
from schemathesis import Case, HookContext

OWN_ORG = {
    "GET /v1/orgs/{org}/delegation",
    "PUT /v1/orgs/{org}/delegation",
    "GET /v1/orgs/{org}/retention",
}


@schemathesis.hook
def map_case(context: HookContext, case: Case) -> Case:
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return case
    label = f"{case.operation.method.upper()} {case.operation.path}"
    body = case.body
    if label == "POST /v1/requests" and isinstance(body, dict):
        if body.get("scope") == "organisation" and isinstance(body.get("confirm_org_name"), str):
            case.body = {**body, "confirm_org_name": os.environ["LETHE_TEST_ORG_NAME"]}
    if label == "GET /v1/jobs" and isinstance(case.query, dict) and "cursor" in case.query:
        case.query = {k: v for k, v in case.query.items() if k != "cursor"}
    if label in OWN_ORG and isinstance(case.path_parameters, dict):
        case.path_parameters = {**case.path_parameters, "org": os.environ["LETHE_TEST_ORG_ID"]}
    return case
