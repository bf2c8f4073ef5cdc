"""Size and count limits of Farcaster messages, in one place so validation, tests and clients agree.

Byte limits count UTF-8 bytes; character limits (usernames) count characters of ASCII-only names.
"""

from __future__ import annotations

from typing import Final

from protocols.proto import message_pb2 as pb

#: Largest accepted `data_bytes` (the serialised MessageData that is hashed and signed).
MAX_DATA_BYTES: Final = 2048
#: Length of a message hash and of the hash inside a CastId (BLAKE3 truncated to 160 bits).
MESSAGE_HASH_BYTES: Final = 20
ED25519_PUBLIC_KEY_BYTES: Final = 32
ED25519_SIGNATURE_BYTES: Final = 64

#: Cast text limits: a CAST holds at most 320 bytes; a LONG_CAST holds more than 320 and at most 1024.
MAX_CAST_TEXT_BYTES: Final = 320
MAX_LONG_CAST_TEXT_BYTES: Final = 1024
MAX_EMBEDS: Final = 2
MAX_MENTIONS: Final = 10
#: URLs (embeds, parent URLs, reaction targets) must be between 1 and 256 bytes.
MAX_URL_BYTES: Final = 256
#: Link types ("follow", ...) must be between 1 and 8 bytes.
MAX_LINK_TYPE_BYTES: Final = 8

#: USER_DATA_ADD value limits in bytes, for the free-form types.
MAX_PFP_BYTES: Final = 256
MAX_DISPLAY_BYTES: Final = 32
MAX_BIO_BYTES: Final = 256
MAX_USER_URL_BYTES: Final = 256
USER_DATA_VALUE_MAX_BYTES: Final[dict[int, int]] = {
    pb.USER_DATA_TYPE_PFP: MAX_PFP_BYTES,
    pb.USER_DATA_TYPE_DISPLAY: MAX_DISPLAY_BYTES,
    pb.USER_DATA_TYPE_BIO: MAX_BIO_BYTES,
    pb.USER_DATA_TYPE_URL: MAX_USER_URL_BYTES,
}
#: Username limits: an fname has at most 16 characters; an ENS name (label + ".eth") at most 20.
MAX_FNAME_CHARS: Final = 16
MAX_ENS_NAME_CHARS: Final = 20
MAX_TWITTER_CHARS: Final = 15
MAX_GITHUB_CHARS: Final = 38

#: Verification body sizes.
ETH_ADDRESS_BYTES: Final = 20
SOLANA_ADDRESS_BYTES: Final = 32
BLOCK_HASH_BYTES: Final = 32
#: An EOA claim signature is r || s || v. (Farcaster's 2048-byte cap for contract signatures is implied by
#: MAX_DATA_BYTES.)
EOA_CLAIM_SIGNATURE_BYTES: Final = 65
