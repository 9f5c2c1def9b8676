"""The daemon's few error classes, each carrying the gRPC status code it becomes at the API edge.

Inside the daemon code raises these (or pyoci's errors); `to_wire` turns any exception into
`{"code", "message"}` once, where a reply is written, and `from_wire` turns it back in the client.
"""

from __future__ import annotations

from pyoci import errors as oci_errors

# gRPC status codes (google.golang.org/grpc/codes), as containerd's errdefs maps them.
OK = 0
CANCELED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
FAILED_PRECONDITION = 9
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
UNAUTHENTICATED = 16


class Error(oci_errors.OCIError):
    """Base class: a one-line message and the status code it travels as."""

    code = UNKNOWN


class Unknown(Error):
    code = UNKNOWN


class Canceled(Error):
    code = CANCELED


class InvalidArgument(Error):
    code = INVALID_ARGUMENT


class DeadlineExceeded(Error):
    code = DEADLINE_EXCEEDED


class NotFound(Error):
    code = NOT_FOUND


class AlreadyExists(Error):
    code = ALREADY_EXISTS


class PermissionDenied(Error):
    code = PERMISSION_DENIED


class FailedPrecondition(Error):
    code = FAILED_PRECONDITION


class Unimplemented(Error):
    code = UNIMPLEMENTED


class Internal(Error):
    code = INTERNAL


class Unavailable(Error):
    code = UNAVAILABLE


class Unauthenticated(Error):
    code = UNAUTHENTICATED


_BY_CODE: dict[int, type[Error]] = {
    cls.code: cls
    for cls in (Unknown, Canceled, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists, PermissionDenied,
                FailedPrecondition, Unimplemented, Internal, Unavailable, Unauthenticated)
}


def code_of(exc: BaseException) -> int:
    """The status code for any exception: ours carry it, pyoci's are mapped by kind, the rest are Unknown."""
    if isinstance(exc, Error):
        return exc.code
    if isinstance(exc, oci_errors.NotFound):
        return NOT_FOUND
    if isinstance(exc, (oci_errors.InvalidDigest, oci_errors.InvalidReference, oci_errors.InvalidDocument,
                        oci_errors.UnsafeArchive)):
        return INVALID_ARGUMENT
    if isinstance(exc, oci_errors.DigestMismatch):
        return FAILED_PRECONDITION
    if isinstance(exc, oci_errors.AuthError):
        return UNAUTHENTICATED if getattr(exc, "status", 0) == 401 else PERMISSION_DENIED
    if isinstance(exc, oci_errors.RegistryError):
        return NOT_FOUND if getattr(exc, "status", 0) == 404 else UNKNOWN
    if isinstance(exc, FileNotFoundError):
        return NOT_FOUND
    if isinstance(exc, FileExistsError):
        return ALREADY_EXISTS
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return UNAVAILABLE
    return UNKNOWN


def to_wire(exc: BaseException) -> dict:
    message = str(exc) or type(exc).__name__
    if not isinstance(exc, oci_errors.OCIError) and not isinstance(exc, OSError):
        message = f"{type(exc).__name__}: {message}"
    return {"code": code_of(exc), "message": message.splitlines()[0] if message else ""}


def from_wire(error: dict) -> Error:
    code = int(error.get("code", UNKNOWN))
    cls = _BY_CODE.get(code, Unknown)
    exc = cls(str(error.get("message", "")))
    exc.code = code  # keep codes we have no class for
    return exc


def is_not_found(exc: BaseException) -> bool:
    return code_of(exc) == NOT_FOUND


def is_already_exists(exc: BaseException) -> bool:
    return code_of(exc) == ALREADY_EXISTS
