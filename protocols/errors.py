"""The one error type of the hub, with dotted codes in Farcaster's style.

Every failure a client can see is a `HubError`. Its code says what went wrong and whether a retry can
help; `node.rpc` maps codes to gRPC status codes in one function. Codes under
`bad_request.validation_failure.` narrow Farcaster's `bad_request.validation_failure`, so clients that
match on the Farcaster prefix keep working while ours can tell the cases apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """What a code means for a caller: `retryable` says whether sending the same request again can succeed."""

    retryable: bool
    summary: str


_VF: Final = "bad_request.validation_failure"

#: Every code the hub emits. Adding a code here is the only way to make it legal.
ERROR_CODES: Final[dict[str, ErrorKind]] = {
    "bad_request": ErrorKind(False, "the request cannot be served as sent"),
    "bad_request.parse_failure": ErrorKind(False, "bytes are not a valid protobuf of the expected type"),
    "bad_request.invalid_param": ErrorKind(False, "a request parameter is missing or out of range"),
    _VF: ErrorKind(False, "the message breaks a protocol rule"),
    f"{_VF}.hash": ErrorKind(False, "hash missing, wrong scheme, or not BLAKE3-160 of data_bytes"),
    f"{_VF}.signature": ErrorKind(False, "signature or signer malformed, wrong scheme, or does not verify"),
    f"{_VF}.network": ErrorKind(False, "message is for another network than this hub serves"),
    f"{_VF}.timestamp": ErrorKind(False, "timestamp more than 600 s in the future"),
    f"{_VF}.fid": ErrorKind(False, "fid missing or zero"),
    f"{_VF}.data_too_large": ErrorKind(False, "data_bytes larger than 2048 bytes"),
    f"{_VF}.message_type": ErrorKind(
        False, "unknown or unsupported message type, or body does not match type"
    ),
    f"{_VF}.text_too_long": ErrorKind(False, "cast text over its byte limit"),
    f"{_VF}.too_many_embeds": ErrorKind(False, "more than 2 embeds"),
    f"{_VF}.too_many_mentions": ErrorKind(False, "more than 10 mentions"),
    f"{_VF}.body": ErrorKind(False, "a body field is missing, malformed or over its limit"),
    f"{_VF}.claim_signature": ErrorKind(False, "the address verification claim signature does not verify"),
    "bad_request.unknown_fid": ErrorKind(False, "fid has no ID_REGISTER event on this hub"),
    "bad_request.unknown_signer": ErrorKind(False, "signer is not an active key of the fid"),
    "bad_request.no_storage": ErrorKind(False, "fid has no active storage units"),
    "bad_request.duplicate": ErrorKind(False, "the hub already has this message or event"),
    "bad_request.conflict": ErrorKind(False, "a message that wins the CRDT conflict is already stored"),
    "bad_request.prunable": ErrorKind(
        False, "the store is full and the message is older than everything kept"
    ),
    "bad_request.blob_corrupt": ErrorKind(
        False, "a blob block does not hash to its CID, or a DAG node's sizes contradict its children"
    ),
    "not_found": ErrorKind(False, "no such message, event or resource"),
    "unauthorized": ErrorKind(False, "the caller may not use this method"),
    "unavailable": ErrorKind(True, "the hub cannot serve this now; retry later"),
    "unavailable.storage_failure": ErrorKind(True, "the database failed to commit; nothing was stored"),
    "unavailable.overloaded": ErrorKind(True, "too many requests in flight; back off and retry"),
    "unavailable.shutting_down": ErrorKind(True, "the hub is stopping; retry against another hub or later"),
    "unavailable.storage_full": ErrorKind(
        True, "the blob store's quota is taken by pinned data; unpin or raise the quota, then retry"
    ),
    "unavailable.incomplete": ErrorKind(
        True, "this hub holds only part of the blob; Get without local_only fetches the rest from peers"
    ),
    "unavailable.not_found_on_network": ErrorKind(
        True, "no reachable peer serves (some blocks of) the blob; retry when a provider is online"
    ),
    "unknown": ErrorKind(True, "an unexpected internal error; reported in the hub log"),
}


class HubError(Exception):
    """A failure with a dotted `code` from `ERROR_CODES` and a human-readable message."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"undeclared hub error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later."""
        return ERROR_CODES[self.code].retryable

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"HubError({self.code!r}, {self.message!r})"


def validation_error(kind: str, message: str) -> HubError:
    """Shorthand for `HubError("bad_request.validation_failure.<kind>", message)`."""
    return HubError(f"{_VF}.{kind}", message)
