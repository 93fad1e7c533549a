"""Tokens, keys and the RPC table of fluid.service.auth, without a server."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from fluid.scheduler import v1
from fluid.scheduler.v1 import dispatcher_pb2, history_pb2, run_pb2, scheduler_pb2, task_pb2
from fluid.service.auth import (
    METHOD_ROLES,
    AuthError,
    AuthSettings,
    Role,
    Verifier,
    bearer_token,
    load_key,
    mint_token,
    parse_roles,
    write_signing_key,
)


def test_every_rpc_of_every_service_has_exactly_one_role() -> None:
    modules = (dispatcher_pb2, history_pb2, run_pb2, scheduler_pb2, task_pb2)
    # A new proto module must be listed above, so a new service cannot go unnoticed.
    generated = {path.stem for path in Path(v1.__file__).parent.glob("*_pb2.py")}
    assert generated == {module.__name__.rpartition(".")[2] for module in modules}
    methods = {
        f"/{service.full_name}/{method.name}"
        for module in modules
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert set(METHOD_ROLES) == methods
    assert Role.admin not in METHOD_ROLES.values()


def test_a_private_key_signs_and_its_public_key_verifies(tmp_path: Path) -> None:
    private = write_signing_key(tmp_path / "signing.key")
    assert (tmp_path / "signing.key").stat().st_mode & 0o777 == 0o600
    public_file = tmp_path / "public.pem"
    public_file.write_bytes(
        private.verifying.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    public = load_key(public_file)
    assert public.kid == private.kid and public.signing is None
    token = mint_token(private, "ada", [Role.read, Role.queue], 60)
    caller = Verifier([public]).verify(token)
    assert caller.subject == "ada" and caller.roles == {Role.read, Role.queue}
    with pytest.raises(ValueError, match="cannot sign"):
        mint_token(public, "ada", [Role.read], 60)


def test_an_hs256_secret_file_signs_and_verifies(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(secrets.token_urlsafe(48) + "\n")
    key = load_key(tmp_path / "secret")
    assert key.algorithm == "HS256"
    assert Verifier([key]).verify(mint_token(key, "ci", [Role.worker], 60)).roles == {Role.worker}
    (tmp_path / "short").write_text("too short")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        load_key(tmp_path / "short")


def test_rotation_accepts_tokens_of_every_configured_key(tmp_path: Path) -> None:
    old = write_signing_key(tmp_path / "old.key")
    (tmp_path / "new.secret").write_text(secrets.token_hex(32))
    new = load_key(tmp_path / "new.secret")
    verifier = Verifier([old, new])
    for key in (old, new):
        assert verifier.verify(mint_token(key, key.kid, [Role.read], 60)).subject == key.kid
    # Without a kid the token is tried against every key of its algorithm.
    claims = {"iss": "fluid", "sub": "x", "roles": [], "iat": int(time.time())}
    unnamed = jwt.encode({**claims, "exp": int(time.time()) + 60}, old.signing, "EdDSA")
    assert verifier.verify(unnamed).subject == "x"


def test_tokens_that_do_not_authenticate_say_why(tmp_path: Path) -> None:
    key = write_signing_key(tmp_path / "a.key")
    stranger = write_signing_key(tmp_path / "b.key")
    verifier = Verifier([key])
    now = int(time.time())
    expired = jwt.encode(
        {"iss": "fluid", "sub": "x", "roles": ["admin"], "iat": now - 7200, "exp": now - 3600},
        key.signing,
        "EdDSA",
        headers={"kid": key.kid},
    )
    no_expiry = jwt.encode(
        {"iss": "fluid", "sub": "x", "roles": ["admin"], "iat": now}, key.signing, "EdDSA"
    )
    forged_kid = jwt.encode(
        {"iss": "fluid", "sub": "x", "roles": ["admin"], "iat": now, "exp": now + 60},
        stranger.signing,
        "EdDSA",
        headers={"kid": key.kid},
    )
    cases = {
        expired: "token expired",
        mint_token(stranger, "x", [Role.admin], 60): "unknown key",
        forged_kid: "unknown key",
        no_expiry: "exp",
        "not.a.jwt": "malformed",
    }
    for token, reason in cases.items():
        with pytest.raises(AuthError, match=reason):
            verifier.verify(token)


def test_settings_read_key_files_and_the_reflection_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not AuthSettings().enabled and AuthSettings().reflection_open
    write_signing_key(tmp_path / "a.key")
    monkeypatch.setenv("FLUID_AUTH_KEY_FILES", f"{tmp_path / 'a.key'}, ")
    settings = AuthSettings()
    assert settings.enabled and not settings.reflection_open
    assert settings.signing_key() is not None
    monkeypatch.setenv("FLUID_REFLECTION", "true")
    assert AuthSettings().reflection_open


def test_roles_and_headers_are_parsed_strictly() -> None:
    assert parse_roles("read, queue") == [Role.read, Role.queue]
    with pytest.raises(ValueError, match="unknown role"):
        parse_roles("read,root")
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) == ""
    assert bearer_token([("x-other", "1")]) is None


def test_the_readme_roles_table_is_the_code_table() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    table = readme.split("<!-- roles-table -->\n")[1].split("<!-- /roles-table -->")[0]
    rows = [
        f"| `{method.strip('/').removeprefix('fluid.scheduler.v1.')}` | {role} |"
        for method, role in METHOD_ROLES.items()
    ]
    assert table.splitlines()[2:] == rows
