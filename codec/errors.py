"""The one documented exception family for bad streams.

Every problem with a stream or group record (unparseable bytes, truncation, failed CRC, weights
mismatch, failed decryption, missing key, a record over the decoder's limits, a payload that does
not decode) raises a `BitstreamError` subclass with a message that says what is wrong; callers
that only care that a stream is bad catch `BitstreamError`.
"""


class BitstreamError(ValueError):
    """A stream or group record cannot be decoded."""


class CorruptStreamError(BitstreamError):
    """The bytes are not a valid roistream frame or group (truncated, bit flips, random data)."""


class LimitError(BitstreamError):
    """The stream asks for more work or memory than the decoder's limits (codec.validate.DecodeLimits)
    or its own bytes allow: a frame too large, too many groups, a group whose payload is too short for
    the blocks it claims."""


class WeightsMismatchError(BitstreamError):
    """The stream was coded with other codec weights than the decoder holds."""


class DecryptionError(BitstreamError):
    """An encrypted group cannot be opened: no key with its key id, or authentication failed."""


class SignatureError(BitstreamError):
    """A reader that trusts edge keys got a record that is unsigned, signed by a key it does not
    trust, or whose signature does not match (codec.signing)."""
