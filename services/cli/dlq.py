"""`lethe dlq list | show | replay`: the dead-letter topic, read with aiokafka.

Each record on `lethe.dlq.v1` is a message a consumer gave up on: its original bytes, under its
original key, with headers lethe-source-topic, lethe-consumer-group and lethe-error. `replay`
publishes the original bytes, with the key, to the source topic again once the cause is fixed;
every handler is idempotent (events carry an event_id that consumers dedupe on), so a group
that had already processed it sees a duplicate and ignores it. Records are referred to as
`PARTITION:OFFSET` (or just the offset on partition 0), as `list` prints them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Annotated

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from rich.table import Table

from services.cli.common import console, settings
from shared.events import Envelope
from shared.events.topics import DLQ

app = typer.Typer(help="Messages dead-lettered by the consumers: list, show, replay.")


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def source_topic(self) -> str:
        return self.headers.get("lethe-source-topic", "")

    def envelope(self) -> Envelope | None:
        try:
            return Envelope.model_validate_json(self.value)
        except ValueError:
            return None


def _dead_letter(r: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    headers = {k: v.decode(errors="replace") for k, v in (r.headers or ())}
    return DeadLetter(r.partition, r.offset, r.timestamp, r.key, r.value or b"", headers)


async def read_all(bootstrap: str, topic: str = DLQ) -> list[DeadLetter]:
    """Every record on the topic now, oldest first (no consumer group: nothing committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        metadata = await consumer._client.fetch_all_metadata()  # the topic's partitions
        partitions = sorted(metadata.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[DeadLetter] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(*tps, timeout_ms=1000)
            for tp, records in batches.items():
                found += [_dead_letter(r) for r in records if r.offset < ends[tp]]
        return sorted(found, key=lambda d: (d.timestamp_ms, d.partition, d.offset))
    finally:
        await consumer.stop()


def _parse_ref(ref: str) -> tuple[int, int]:
    partition, sep, offset = ref.rpartition(":")
    try:
        return (int(partition) if sep else 0), int(offset)
    except ValueError:
        raise typer.BadParameter(
            f"{ref!r}: expected PARTITION:OFFSET, as `lethe dlq list` shows"
        ) from None


def _pick(found: list[DeadLetter], refs: list[str]) -> list[DeadLetter]:
    by_ref = {(d.partition, d.offset): d for d in found}
    picked = []
    for ref in refs:
        d = by_ref.get(_parse_ref(ref))
        if d is None:
            raise typer.BadParameter(f"no dead letter {ref} on {DLQ} (see `lethe dlq list`)")
        picked.append(d)
    return picked


async def replay(bootstrap: str, letters: list[DeadLetter]) -> None:
    """Publish each one's original bytes and key to its source topic (acks=all)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for d in letters:
            if not d.source_topic:
                raise typer.BadParameter(f"{d.ref} has no lethe-source-topic header")
            env = d.envelope()
            headers = [("lethe-replayed-from", f"{DLQ}:{d.ref}".encode())]
            if env is not None:
                headers += [
                    ("content-type", b"application/json"),
                    ("lethe-event-type", env.type.encode()),
                ]
            await producer.send_and_wait(d.source_topic, d.value, key=d.key, headers=headers)
    finally:
        await producer.stop()


SourceOption = Annotated[str | None, typer.Option("--source-topic", help="Only these.")]


@app.command("list")
def list_cmd(source_topic: SourceOption = None) -> None:
    """The dead letters, oldest first: where from, which group, why."""
    found = asyncio.run(read_all(settings().kafka_bootstrap_servers))
    table = Table("ref", "source topic", "group", "event", "job", "error")
    for d in found:
        if source_topic and d.source_topic != source_topic:
            continue
        env = d.envelope()
        error = d.headers.get("lethe-error", "").splitlines()
        table.add_row(
            d.ref,
            d.source_topic,
            d.headers.get("lethe-consumer-group", ""),
            env.type if env else "(not an envelope)",
            str(env.job_id or "") if env else "",
            error[-1][:120] if error else "",
        )
    console.print(table)


@app.command("show")
def show_cmd(
    ref: str, body: Annotated[bool, typer.Option(help="Print the payload too.")] = False
) -> None:
    """One dead letter: its headers, the whole error and the envelope (payload with --body;
    it may hold personal data)."""
    [d] = _pick(asyncio.run(read_all(settings().kafka_bootstrap_servers)), [ref])
    env = d.envelope()
    shown: dict[str, object] = {
        "ref": d.ref,
        "key": d.key.decode(errors="replace") if d.key else None,
        "headers": d.headers,
    }
    if env is not None:
        shown["envelope"] = env.model_dump(mode="json", exclude=None if body else {"payload"})
    elif body:
        shown["body"] = d.value.decode(errors="replace")
    console.print_json(json.dumps(shown))


@app.command("replay")
def replay_cmd(
    refs: Annotated[list[str] | None, typer.Argument(help="PARTITION:OFFSET of each.")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every dead letter (of --source-topic).")
    ] = False,
    source_topic: SourceOption = None,
) -> None:
    """Publish dead letters to their source topic again (after fixing the cause)."""
    bootstrap = settings().kafka_bootstrap_servers
    found = asyncio.run(read_all(bootstrap))
    if all_ == bool(refs):
        raise typer.BadParameter("name the dead letters to replay, or --all")
    letters = found if all_ else _pick(found, refs or [])
    letters = [d for d in letters if not source_topic or d.source_topic == source_topic]
    asyncio.run(replay(bootstrap, letters))
    console.print(f"replayed {len(letters)} message(s)")
