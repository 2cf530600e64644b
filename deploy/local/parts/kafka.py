"""Kafka in KRaft mode from Maven-resolved jars: libraries, format, server.properties, start
(one node here; a cluster of N in kafka_cluster.py)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import uuid
from pathlib import Path

from deploy.local.parts.common import (
    HOST,
    InfraError,
    locked,
    run_logged,
    write_atomic,
)
from deploy.local.parts.processes import start_process, wait_ready

KAFKA_START_TIMEOUT = 90.0
INSTALL_HINT = "apt-get install openjdk-17-jre-headless maven"


def api_versions_ok(port: int, timeout: float = 2.0) -> bool:
    """Send a Kafka ApiVersions v0 request; True if the broker answers without error."""
    client_id = b"lethe-infra"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(s, 4)
            (size,) = struct.unpack(">i", head)
            resp = _recv_exact(s, min(size, 1 << 20))
    except (OSError, struct.error):
        return False
    if len(resp) < 6:
        return False
    correlation_id, error_code = struct.unpack(">ih", resp[:6])
    return correlation_id == 7 and error_code == 0


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def _require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise InfraError(f"`java` not found on PATH (Kafka needs Java 17+): {INSTALL_HINT}")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if m:
        major = int(m.group(2) or 0) if m.group(1) == "1" else int(m.group(1))
        if major < 17:
            raise InfraError(f"Kafka 4 needs Java 17+, found Java {major}: {INSTALL_HINT}")
    return java


def ensure_kafka_libs(repo_root: Path) -> Path:
    """Resolve the broker's classpath with Maven unless it matches the pom already."""
    repo_root = Path(repo_root).resolve()
    pom = repo_root / "deploy" / "local" / "kafka" / "pom.xml"
    libs = repo_root / ".local" / "kafka" / "libs"
    stamp = libs / ".pom.sha256"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()

    def current() -> bool:
        has_jars = any(libs.glob("kafka_2.13-*.jar"))
        return has_jars and stamp.is_file() and stamp.read_text().strip() == digest

    if current():
        return libs
    with locked(libs.parent / ".libs.lock"):
        if current():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InfraError(
                f"`mvn` not found on PATH; it is needed once to fetch the Kafka jars into "
                f"{libs}: {INSTALL_HINT}"
            )
        # Resolve into a fresh dir and swap, so a changed pom leaves no stale jars behind.
        tmp = libs.with_name("libs.new")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log = libs.parent / "mvn.log"
        run_logged(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp}",
            ],
            log,
            timeout=1800,
        )
        if not any(tmp.glob("kafka_2.13-*.jar")):
            raise InfraError(f"mvn produced no kafka_2.13 jar in {tmp}; see {log}")
        (tmp / ".pom.sha256").write_text(digest + "\n")
        old = libs.with_name("libs.old")
        shutil.rmtree(old, ignore_errors=True)
        if libs.exists():
            os.replace(libs, old)
        os.replace(tmp, libs)
        shutil.rmtree(old, ignore_errors=True)
    return libs


def kafka_version(libs: Path) -> str | None:
    for jar in libs.glob("kafka_2.13-*.jar"):
        return jar.name[len("kafka_2.13-") : -len(".jar")]
    return None


_LOG4J2 = """\
# Kafka broker logging (log4j2): everything to stdout, which the launcher sends to the log.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def _min_isr(replication: int) -> int:
    # As shared/events/topics.min_insync_replicas: one broker may be down (2 of 3).
    return max(1, min(2, replication - 1))


def kafka_properties(
    data_dir: Path,
    port: int,
    controller_port: int,
    *,
    node_id: int = 1,
    voters: str | None = None,
    replication: int = 1,
) -> str:
    """One node (broker and controller in one JVM); `voters` lists the whole quorum."""
    voters = voters or f"{node_id}@{HOST}:{controller_port}"
    isr = _min_isr(replication)
    return f"""\
# Generated by deploy/local/infra.py on every start (ports may change); edits are lost.
node.id={node_id}
process.roles=broker,controller
listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}
advertised.listeners=PLAINTEXT://{HOST}:{port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
# Static quorum: endpoints are not written into the metadata log, so a restart on other
# ports keeps the data (a --standalone dynamic quorum records the controller endpoint).
controller.quorum.voters={voters}
log.dirs={data_dir}
num.partitions=3
auto.create.topics.enable=true
default.replication.factor={replication}
min.insync.replicas={isr}
offsets.topic.replication.factor={replication}
# Few internal partitions: faster first group join / first transaction on a dev box.
offsets.topic.num.partitions=3
transaction.state.log.replication.factor={replication}
transaction.state.log.min.isr={isr}
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor={replication}
share.coordinator.state.topic.min.isr={isr}
group.initial.rebalance.delay.ms=0
# A restart re-registers the broker only after the previous incarnation's session expires
# (9 s by default); broker and controller share one JVM, so a short session is safe.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
"""


def new_cluster_id() -> str:
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):  # Kafka's own rule: a leading '-' confuses CLIs
            return cid


def launch_node(
    state_dir: Path, repo_root: Path, name: str, kdir: Path, props_text: str, cluster_id: str
) -> int:
    """Format the node's data dir if new, start its JVM; the log offset before the start."""
    java = _require_java()
    libs = ensure_kafka_libs(repo_root)
    data = kdir / "data"
    props = kdir / "server.properties"
    log4j = kdir / "log4j2.properties"
    kdir.mkdir(parents=True, exist_ok=True)
    write_atomic(props, props_text)
    write_atomic(log4j, _LOG4J2)
    # Extra JVM options, e.g. the test suite's (tests/conftest.py): a short-lived broker
    # spends most of its CPU compiling itself.
    extra = os.environ.get("LETHE_KAFKA_JAVA_OPTS", "").split()
    jvm = [java, *extra, f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*"]
    log = state_dir / "logs" / f"{name}.log"
    if not (data / "meta.properties").is_file():
        shutil.rmtree(data, ignore_errors=True)  # half-formatted leftovers
        format_cmd = ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)]
        run_logged([*jvm, *format_cmd], log, timeout=120)
    offset = log.stat().st_size if log.exists() else 0
    start_process(
        name,
        [
            java,
            "-Xms128m",
            "-Xmx512m",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={state_dir / 'logs'}",
            *jvm[1:],
            "kafka.Kafka",
            str(props),
        ],
        {},
        state_dir,
        cwd=kdir,
    )
    return offset


def wait_node_started(state_dir: Path, name: str, port: int, offset: int) -> None:
    log = state_dir / "logs" / f"{name}.log"

    def ready() -> bool:
        # The data-plane listener only opens once the broker is unfenced; the log line
        # confirms start-up completed rather than an older run's listener answering.
        if not api_versions_ok(port):
            return False
        with open(log, "rb") as fh:
            fh.seek(offset)
            return b"Kafka Server started" in fh.read()

    wait_ready(name, state_dir, ready, KAFKA_START_TIMEOUT, f"broker on {HOST}:{port}")


def start_kafka(state_dir: Path, repo_root: Path, port: int, controller_port: int) -> None:
    """The single-node broker of `make up` and the tests: process `kafka`, data in kafka/."""
    kdir = state_dir / "kafka"
    props = kafka_properties(kdir / "data", port, controller_port)
    offset = launch_node(state_dir, repo_root, "kafka", kdir, props, new_cluster_id())
    wait_node_started(state_dir, "kafka", port, offset)
