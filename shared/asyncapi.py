"""Generate the AsyncAPI 3.0 document of every topic from the event models (never by hand).

python -m shared.asyncapi > docs/asyncapi.json     (`make docs`)
"""

from __future__ import annotations

import json
from typing import Any

from shared.events import Envelope, registered_types
from shared.events.catalogue import CATALOGUE
from shared.events.requests import SubmitRequest
from shared.events.topics import TOPICS

_PLAIN = {"SubmitRequest": SubmitRequest}  # published by upstream services, not enveloped


def _channel_id(topic: str) -> str:
    return topic.replace(".", "_")


def document() -> dict[str, Any]:
    payloads = registered_types()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        "Envelope": Envelope.model_json_schema(ref_template="#/components/schemas/{model}")
    }
    for spec in TOPICS:
        cid = _channel_id(spec.name)
        refs = {}
        for name in CATALOGUE.get(spec.name, ()):
            model = _PLAIN.get(name) or payloads[name]
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for sub, sub_schema in schema.pop("$defs", {}).items():
                schemas[sub] = sub_schema
            schemas[name] = schema
            enveloped = name not in _PLAIN
            messages[name] = {
                "name": name,
                "title": name,
                "summary": (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else "",
                "contentType": "application/json",
                "payload": {"$ref": "#/components/schemas/Envelope"}
                if enveloped
                else {"$ref": f"#/components/schemas/{name}"},
                "x-lethe-payload": {"$ref": f"#/components/schemas/{name}"},
            }
            refs[name] = {"$ref": f"#/components/messages/{name}"}
        channels[cid] = {
            "address": spec.name,
            "messages": refs,
            "bindings": {
                "kafka": {"partitions": spec.partitions, "topicConfiguration": spec.config or {}}
            },
        }
        operations[f"publish_{cid}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": [{"$ref": f"#/channels/{cid}/messages/{m}"} for m in refs],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Lethe events",
            "version": "1",
            "description": "Every event shares the Envelope; `payload` holds the message's "
            "x-lethe-payload schema. Fields marked pii never reach the audit store.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
