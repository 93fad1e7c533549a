"""Typed errors shared by the SDK and the services.

Domain code raises these without importing grpc; servers map ``code`` to a gRPC status
and the client maps a status back to the same class, so callers catch one type.
"""

from __future__ import annotations

from typing import ClassVar


class FluidError(Exception):
    """Base of fluid's errors; ``code`` is the gRPC status name it travels as."""

    code: ClassVar[str] = "INTERNAL"


class NotFoundError(FluidError):
    """The named task or run does not exist (for a task: no worker has registered it)."""

    code = "NOT_FOUND"


class InvalidArgumentError(FluidError):
    """The request itself is wrong (bad params, a value over a limit); sending it again fails."""

    code = "INVALID_ARGUMENT"


class FailedPreconditionError(FluidError):
    """The request is well formed but the system is not in a state to accept it (e.g. an
    unregistered worker, a task whose params schema cannot be checked)."""

    code = "FAILED_PRECONDITION"


class UnavailableError(FluidError):
    """A store or service the call needs cannot be reached now; the call may be retried."""

    code = "UNAVAILABLE"


class AlreadyExistsError(FluidError):
    """A caller-chosen id or key already belongs to something else."""

    code = "ALREADY_EXISTS"


class ResourceExhaustedError(FluidError):
    """A documented limit was reached (a queue's ``max_queued``, a full store)."""

    code = "RESOURCE_EXHAUSTED"


class UnimplementedError(FluidError):
    """The server at that address does not serve the called service (e.g. no scheduler)."""

    code = "UNIMPLEMENTED"


class UnauthenticatedError(FluidError):
    """The call carried no valid token (none, garbled, expired or of an unknown key)."""

    code = "UNAUTHENTICATED"


class PermissionDeniedError(FluidError):
    """The caller's token lacks the role the call needs; the message names it."""

    code = "PERMISSION_DENIED"


class RunTimeoutError(FluidError, TimeoutError):
    """``queue_and_wait`` gave up before the run finished (the run goes on)."""

    code = "DEADLINE_EXCEEDED"


ERRORS_BY_CODE: dict[str, type[FluidError]] = {
    cls.code: cls
    for cls in (
        NotFoundError,
        InvalidArgumentError,
        FailedPreconditionError,
        UnavailableError,
        AlreadyExistsError,
        ResourceExhaustedError,
        UnimplementedError,
        UnauthenticatedError,
        PermissionDeniedError,
        RunTimeoutError,
    )
}
