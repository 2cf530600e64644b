from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.auditor.keys import (
    SigningKeyMissing,
    generate_seed,
    key_id,
    public_raw,
    signing_key,
    trusted_public_keys,
)
from services.auditor.settings import AuditorSettings
from shared.auditchain import checkpoints
from shared.settings import UnsafeSecrets

pytestmark = pytest.mark.unit


def test_production_refuses_to_start_without_a_signing_key() -> None:
    s = AuditorSettings(env="production")
    with pytest.raises(SigningKeyMissing, match="LETHE_AUDIT_SIGNING_KEY"):
        signing_key(s)
    assert trusted_public_keys(s) == {}


def test_the_dev_key_only_goes_with_lethe_env_dev() -> None:
    key, dev = signing_key(AuditorSettings(env="dev"))
    assert dev
    assert trusted_public_keys(AuditorSettings(env="dev")) == {
        key_id(public_raw(key.public_key())): public_raw(key.public_key())
    }


def test_a_configured_key_from_env_or_file(tmp_path: Path) -> None:
    seed = generate_seed()
    s = AuditorSettings(env="production", audit_signing_key=seed)
    key, dev = signing_key(s)
    assert not dev
    (tmp_path / "k").write_text(seed + "\n")
    from_file, _ = signing_key(
        AuditorSettings(env="production", audit_signing_key_file=tmp_path / "k")
    )
    assert public_raw(from_file.public_key()) == public_raw(key.public_key())
    with pytest.raises(UnsafeSecrets, match="LETHE_AUDIT_SIGNING_KEY must be base64 of 32 bytes"):
        AuditorSettings(env="production", audit_signing_key="c2hvcnQ=")
    (tmp_path / "short").write_text("c2hvcnQ=\n")  # a file is read, and checked, at start
    with pytest.raises(SigningKeyMissing, match="32 bytes"):
        signing_key(AuditorSettings(env="production", audit_signing_key_file=tmp_path / "short"))


def test_retired_public_keys_stay_trusted() -> None:
    old = public_raw(Ed25519PrivateKey.generate().public_key())
    s = AuditorSettings(
        env="production",
        audit_signing_key=generate_seed(),
        audit_public_keys=base64.b64encode(old).decode(),
    )
    keys = trusted_public_keys(s)
    assert len(keys) == 2 and keys[key_id(old)] == old


def test_a_checkpoint_verifies_only_as_signed() -> None:
    key = Ed25519PrivateKey.generate()
    pub = public_raw(key.public_key())
    cp = checkpoints.sign(key, 7, "ab" * 32, datetime.now(UTC))
    assert checkpoints.check(cp, {cp.key_id: pub}) is None
    moved = dataclasses.replace(cp, head_hash="cd" * 32)
    assert checkpoints.check(moved, {cp.key_id: pub}) == "signature does not verify"
    assert "not a trusted key" in (checkpoints.check(cp, {}) or "")
