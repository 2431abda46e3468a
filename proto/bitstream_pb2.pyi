from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FrameHeader(_message.Message):
    __slots__ = ("format_version", "weights_id", "width", "height", "stream_id", "frame_index", "timestamp_us", "group_ids", "encrypted_group_ids")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_ID_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_US_FIELD_NUMBER: _ClassVar[int]
    GROUP_IDS_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_GROUP_IDS_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    weights_id: str
    width: int
    height: int
    stream_id: str
    frame_index: int
    timestamp_us: int
    group_ids: _containers.RepeatedScalarFieldContainer[int]
    encrypted_group_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, format_version: _Optional[int] = ..., weights_id: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., stream_id: _Optional[str] = ..., frame_index: _Optional[int] = ..., timestamp_us: _Optional[int] = ..., group_ids: _Optional[_Iterable[int]] = ..., encrypted_group_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class BBox(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Encryption(_message.Message):
    __slots__ = ("algorithm", "key_id", "nonce")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    algorithm: str
    key_id: str
    nonce: bytes
    def __init__(self, algorithm: _Optional[str] = ..., key_id: _Optional[str] = ..., nonce: _Optional[bytes] = ...) -> None: ...

class Signature(_message.Message):
    __slots__ = ("key_id", "signature")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    signature: bytes
    def __init__(self, key_id: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class GroupRecord(_message.Message):
    __slots__ = ("group_id", "label", "score", "bbox", "block_runs", "quality", "payload", "crc32", "encryption", "scale_log2", "track_id", "signature")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    BLOCK_RUNS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CRC32_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTION_FIELD_NUMBER: _ClassVar[int]
    SCALE_LOG2_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    group_id: int
    label: str
    score: float
    bbox: BBox
    block_runs: _containers.RepeatedScalarFieldContainer[int]
    quality: int
    payload: bytes
    crc32: int
    encryption: Encryption
    scale_log2: int
    track_id: int
    signature: Signature
    def __init__(self, group_id: _Optional[int] = ..., label: _Optional[str] = ..., score: _Optional[float] = ..., bbox: _Optional[_Union[BBox, _Mapping]] = ..., block_runs: _Optional[_Iterable[int]] = ..., quality: _Optional[int] = ..., payload: _Optional[bytes] = ..., crc32: _Optional[int] = ..., encryption: _Optional[_Union[Encryption, _Mapping]] = ..., scale_log2: _Optional[int] = ..., track_id: _Optional[int] = ..., signature: _Optional[_Union[Signature, _Mapping]] = ...) -> None: ...

class EncodedFrame(_message.Message):
    __slots__ = ("header", "groups")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    header: FrameHeader
    groups: _containers.RepeatedCompositeFieldContainer[GroupRecord]
    def __init__(self, header: _Optional[_Union[FrameHeader, _Mapping]] = ..., groups: _Optional[_Iterable[_Union[GroupRecord, _Mapping]]] = ...) -> None: ...
