"""Who may call what: signed bearer tokens with roles, checked by one server interceptor.

A token is a JWT (``iss`` "fluid", ``sub``, ``roles``, ``iat``, ``exp``) signed with an
Ed25519 key (EdDSA) or an HS256 secret, sent as ``authorization: Bearer <token>``. Every
RPC of ``fluid.scheduler.v1`` needs one role (``METHOD_ROLES``); ``admin`` may call them all.
Auth is on when a process has verification keys (``FLUID_AUTH_KEY_FILES``).

Key files, one key each, told apart by their content:

- a PEM Ed25519 private key (``BEGIN PRIVATE KEY``) signs and verifies;
- a PEM Ed25519 public key (``BEGIN PUBLIC KEY``) only verifies;
- anything else is an HS256 secret: the file's bytes, surrounding whitespace removed, at
  least 32 of them.

A key's id (the ``kid`` header of the tokens it signs) is derived from the key, so a token
signed with a private key names the public key file a server holds. Several files at once
are several keys, which is how keys rotate: add the new one, move the signers, drop the old.
"""

from __future__ import annotations

import contextvars
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, cast

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from fluid.scheduler.v1 import dispatcher_pb2, history_pb2, scheduler_pb2

from .call_metadata import (
    ServerInterceptorBase,
    UnaryStreamInterceptor,
    UnaryUnaryInterceptor,
    with_metadata,
)
from .settings import FluidBaseSettings

ISSUER = "fluid"
HEADER = "authorization"
# Clocks of different machines drift: a token is taken this long past its expiry.
LEEWAY_SECONDS = 30
MIN_SECRET_BYTES = 32
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIXES = (
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


class Role(StrEnum):
    read = "read"
    queue = "queue"
    operate = "operate"
    worker = "worker"
    ingest = "ingest"
    admin = "admin"


_DISPATCHER = dispatcher_pb2.DESCRIPTOR.services_by_name["DispatcherService"].full_name
_HISTORY = history_pb2.DESCRIPTOR.services_by_name["HistoryService"].full_name
_SCHEDULER = scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name

_ROLE_METHODS: dict[Role, dict[str, tuple[str, ...]]] = {
    Role.read: {
        _DISPATCHER: (
            "GetRun",
            "WatchRun",
            "WatchRuns",
            "ListTasks",
            "GetQueueStatus",
            "ListDeadLetters",
        ),
        _HISTORY: ("ListRuns", "GetRun"),
        _SCHEDULER: ("ListSchedules",),
    },
    Role.queue: {_DISPATCHER: ("QueueRun", "QueueRuns")},
    Role.operate: {
        _DISPATCHER: ("AbortRun", "SetTaskEnabled", "RetryDeadLetters", "DropDeadLetters")
    },
    Role.worker: {
        _DISPATCHER: ("RegisterWorker", "LeaseRuns", "Heartbeat", "ReportRuns", "ReleaseRuns")
    },
    Role.ingest: {_HISTORY: ("RecordRuns",)},
}

METHOD_ROLES: Mapping[str, Role] = {
    f"/{service}/{method}": role
    for role, services in _ROLE_METHODS.items()
    for service, methods in services.items()
    for method in methods
}
"""The role each RPC needs, by full method name; a test holds it to the descriptors."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Whom a verified token names."""

    subject: str
    roles: frozenset[Role]

    def may(self, role: Role) -> bool:
        return role in self.roles or Role.admin in self.roles


# The caller of the RPC being served; None when auth is off (everyone may call).
current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "fluid_current_caller", default=None
)


class AuthError(Exception):
    """A token that does not authenticate its caller; the message says why."""


@dataclass(frozen=True, slots=True)
class Key:
    """One key file's key: verifies tokens, and signs them when it is a private key."""

    kid: str
    algorithm: str
    verifying: Any  # an Ed25519PublicKey or the HS256 secret
    signing: Any = None  # an Ed25519PrivateKey, the HS256 secret, or None


def _kid(material: bytes) -> str:
    return hashlib.sha256(material).hexdigest()[:16]


def _ed25519(public: Ed25519PublicKey, private: Ed25519PrivateKey | None) -> Key:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Key(kid=_kid(raw), algorithm="EdDSA", verifying=public, signing=private)


def load_key(path: str | Path) -> Key:
    """The key in ``path`` (see the module's docstring for the formats)."""
    data = Path(path).read_bytes()
    if b"-----BEGIN PRIVATE KEY-----" in data:
        private = serialization.load_pem_private_key(data, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{path}: only Ed25519 private keys are supported")
        return _ed25519(private.public_key(), private)
    if b"-----BEGIN PUBLIC KEY-----" in data:
        public = serialization.load_pem_public_key(data)
        if not isinstance(public, Ed25519PublicKey):
            raise ValueError(f"{path}: only Ed25519 public keys are supported")
        return _ed25519(public, None)
    secret = data.strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"{path}: an HS256 secret needs at least {MIN_SECRET_BYTES} bytes")
    return Key(kid=_kid(secret), algorithm="HS256", verifying=secret, signing=secret)


def write_signing_key(path: Path) -> Key:
    """Create a new Ed25519 private key file at ``path``, readable by its owner only."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(pem)
    return load_key(path)


def mint_token(key: Key, subject: str, roles: Iterable[Role], ttl_seconds: float) -> str:
    """A token for ``subject`` with ``roles``, valid for ``ttl_seconds`` from now."""
    if key.signing is None:
        raise ValueError("a public key verifies tokens but cannot sign them")
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "roles": sorted(str(role) for role in set(roles)),
        "iat": now,
        "exp": now + int(ttl_seconds),
    }
    return jwt.encode(claims, key.signing, algorithm=key.algorithm, headers={"kid": key.kid})


@dataclass(frozen=True, slots=True)
class Verifier:
    """Checks tokens against every configured key (several at once during a rotation)."""

    keys: Sequence[Key]

    def verify(self, token: str) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise AuthError(f"malformed token: {error}") from None
        kid = header.get("kid")
        # A kid picks the key; a token without one is tried against every key.
        candidates = [key for key in self.keys if kid is None or key.kid == kid]
        candidates = [key for key in candidates if key.algorithm == header.get("alg")]
        if not candidates:
            raise AuthError("token signed by an unknown key")
        for key in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key.verifying,
                    algorithms=[key.algorithm],
                    issuer=ISSUER,
                    leeway=LEEWAY_SECONDS,
                    options={"require": ["exp", "iat", "sub", "iss"]},
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise AuthError("token expired") from None
            except jwt.InvalidTokenError as error:
                raise AuthError(f"invalid token: {error}") from None
            return _caller(claims)
        raise AuthError("token signed by an unknown key")


def _caller(claims: Mapping[str, Any]) -> Caller:
    roles = claims.get("roles")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise AuthError("invalid token: roles must be a list of role names")
    known = {role.value for role in Role}
    # A role this version does not know grants nothing here (a newer minter's role).
    return Caller(
        subject=str(claims["sub"]),
        roles=frozenset(Role(role) for role in roles if role in known),
    )


def parse_roles(text: str) -> list[Role]:
    """``read,queue`` as roles; ValueError naming an unknown one."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in Role.__members__]
    if unknown or not names:
        raise ValueError(
            f"unknown role(s) {', '.join(unknown) or '(none given)'}; "
            f"roles: {', '.join(Role.__members__)}"
        )
    return [Role(name) for name in names]


class AuthSettings(FluidBaseSettings):
    """Whether a server checks tokens, and with which keys (``FLUID_AUTH_KEY_FILES``).

    ``reflection`` (``FLUID_REFLECTION``) opens server reflection to anyone; unset, it is
    open when auth is off and closed when auth is on, since it lists every RPC. ``insecure``
    (``FLUID_INSECURE``) lets ``fluid serve`` listen beyond loopback without auth.
    """

    auth_key_files: Annotated[list[str], NoDecode] = Field(default_factory=list)
    reflection: bool | None = None
    insecure: bool = False

    @field_validator("auth_key_files", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.auth_key_files)

    @property
    def reflection_open(self) -> bool:
        return self.reflection if self.reflection is not None else not self.enabled

    def keys(self) -> list[Key]:
        return [load_key(path) for path in self.auth_key_files]

    def signing_key(self) -> Key | None:
        """The first configured key that can sign, if any."""
        return next((key for key in self.keys() if key.signing is not None), None)


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    for name, value in metadata or ():
        if name == HEADER:
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


class AuthInterceptor(ServerInterceptorBase):
    """Ends a call UNAUTHENTICATED without a valid token and PERMISSION_DENIED without its
    role; lets an allowed call run with ``current_caller`` set. Health is always open,
    reflection when ``reflection_open``; an RPC missing from the table needs ``admin``."""

    def __init__(self, verifier: Verifier, *, reflection_open: bool) -> None:
        self.verifier = verifier
        self.open_prefixes = (HEALTH_PREFIX, *(REFLECTION_PREFIXES if reflection_open else ()))

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(self.open_prefixes):
            return handler
        decision = self._decide(method, handler_call_details.invocation_metadata)
        return _guarded(handler, decision)

    def _decide(
        self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None
    ) -> Caller | tuple[grpc.StatusCode, str]:
        token = bearer_token(metadata)
        if not token:
            return grpc.StatusCode.UNAUTHENTICATED, (
                "missing bearer token (authorization: Bearer <token>)"
                if token is None
                else "malformed authorization header: expected 'Bearer <token>'"
            )
        try:
            caller = self.verifier.verify(token)
        except AuthError as error:
            return grpc.StatusCode.UNAUTHENTICATED, str(error)
        role = METHOD_ROLES.get(method, Role.admin)
        if not caller.may(role):
            return grpc.StatusCode.PERMISSION_DENIED, (
                f"{method} needs the {role} role; the token of {caller.subject!r} has "
                f"{', '.join(sorted(caller.roles)) or 'none'}"
            )
        return caller


def _guarded(
    handler: grpc.RpcMethodHandler[Any, Any], decision: Caller | tuple[grpc.StatusCode, str]
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with each of its behaviours refused, or run as ``decision``'s caller."""
    replaced: dict[str, Any] = {}
    for kind in ("unary_unary", "stream_unary"):
        behaviour = getattr(handler, kind)
        if behaviour is not None:
            replaced[kind] = _single(behaviour, decision)
    for kind in ("unary_stream", "stream_stream"):
        behaviour = getattr(handler, kind)
        if behaviour is not None:
            replaced[kind] = _streamed(behaviour, decision)
    return handler._replace(**replaced)  # type: ignore[attr-defined,no-any-return]


def _single(
    behaviour: Callable[..., Awaitable[Any]], decision: Caller | tuple[grpc.StatusCode, str]
) -> Callable[..., Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if not isinstance(decision, Caller):
            await context.abort(*decision)
        # Each call runs in its own task: the variable is set for this call only.
        current_caller.set(decision)
        return await behaviour(request, context)

    return call


def _streamed(
    behaviour: Callable[..., Any], decision: Caller | tuple[grpc.StatusCode, str]
) -> Callable[..., Any]:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if not isinstance(decision, Caller):
            await context.abort(*decision)
        current_caller.set(decision)
        async for item in behaviour(request, context):
            yield item

    return call


def _with_token(details: Any, header: Iterable[str]) -> Any:
    pair = tuple(header)
    return with_metadata(details, [(pair[0], pair[1])] if pair else [])


# Two classes, not one with both methods: a channel files each interceptor under the first
# kind it is an instance of, so one object would never see the streams (WatchRun).
class _UnaryBearer(UnaryUnaryInterceptor):
    def __init__(self, header: Iterable[str]) -> None:
        self.header = header

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_token(client_call_details, self.header), request)


class _StreamBearer(UnaryStreamInterceptor):
    def __init__(self, header: Iterable[str]) -> None:
        self.header = header

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_token(client_call_details, self.header), request)


forwarded_token: contextvars.ContextVar[str] = contextvars.ContextVar(
    "fluid_forwarded_token", default=""
)
"""The bearer token of the caller a process acts for (the gateway: the HTTP request's),
which calls on forwarding channels send instead of any of the process's own."""


class _Forwarded:
    """The header of the caller's token, read per call (``forwarded_token``)."""

    def __iter__(self) -> Any:
        token = forwarded_token.get()
        return iter((HEADER, f"Bearer {token}") if token else ())


def bearer_interceptors(
    token: str, *, forwarding: bool = False
) -> list[grpc.aio.ClientInterceptor]:
    """The client interceptors that add ``token`` to every call (call credentials would
    need TLS); none for no token. ``forwarding``: each call sends the token of the caller
    it is made for (``forwarded_token``), and none without one, never ``token``."""
    if forwarding:
        header: tuple[str, str] | _Forwarded = _Forwarded()
    elif token:
        header = (HEADER, f"Bearer {token}")
    else:
        return []
    # The stubs type the list's items as a placeholder no class can satisfy.
    return [
        cast(grpc.aio.ClientInterceptor, _UnaryBearer(header)),
        cast(grpc.aio.ClientInterceptor, _StreamBearer(header)),
    ]
