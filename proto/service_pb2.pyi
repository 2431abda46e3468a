from proto import bitstream_pb2 as _bitstream_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestRequest(_message.Message):
    __slots__ = ("frame",)
    FRAME_FIELD_NUMBER: _ClassVar[int]
    frame: _bitstream_pb2.EncodedFrame
    def __init__(self, frame: _Optional[_Union[_bitstream_pb2.EncodedFrame, _Mapping]] = ...) -> None: ...

class IngestAck(_message.Message):
    __slots__ = ("stream_id", "frame_index", "status", "error", "stored_bytes", "next_frame_index")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STORED: _ClassVar[IngestAck.Status]
        DUPLICATE: _ClassVar[IngestAck.Status]
        REJECTED: _ClassVar[IngestAck.Status]
        CONFLICT: _ClassVar[IngestAck.Status]
    STORED: IngestAck.Status
    DUPLICATE: IngestAck.Status
    REJECTED: IngestAck.Status
    CONFLICT: IngestAck.Status
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    NEXT_FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    frame_index: int
    status: IngestAck.Status
    error: str
    stored_bytes: int
    next_frame_index: int
    def __init__(self, stream_id: _Optional[str] = ..., frame_index: _Optional[int] = ..., status: _Optional[_Union[IngestAck.Status, str]] = ..., error: _Optional[str] = ..., stored_bytes: _Optional[int] = ..., next_frame_index: _Optional[int] = ...) -> None: ...

class StreamPositionRequest(_message.Message):
    __slots__ = ("stream_id",)
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    def __init__(self, stream_id: _Optional[str] = ...) -> None: ...

class StreamPositionResponse(_message.Message):
    __slots__ = ("stream_id", "next_frame_index", "frames")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    NEXT_FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    next_frame_index: int
    frames: int
    def __init__(self, stream_id: _Optional[str] = ..., next_frame_index: _Optional[int] = ..., frames: _Optional[int] = ...) -> None: ...

class FrameRange(_message.Message):
    __slots__ = ("first", "last")
    FIRST_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    first: int
    last: int
    def __init__(self, first: _Optional[int] = ..., last: _Optional[int] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ("start_us", "end_us")
    START_US_FIELD_NUMBER: _ClassVar[int]
    END_US_FIELD_NUMBER: _ClassVar[int]
    start_us: int
    end_us: int
    def __init__(self, start_us: _Optional[int] = ..., end_us: _Optional[int] = ...) -> None: ...

class ListStreamsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StreamInfo(_message.Message):
    __slots__ = ("stream_id", "frames", "first_frame", "last_frame", "first_timestamp_us", "last_timestamp_us", "bytes")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    FIRST_FRAME_FIELD_NUMBER: _ClassVar[int]
    LAST_FRAME_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIMESTAMP_US_FIELD_NUMBER: _ClassVar[int]
    LAST_TIMESTAMP_US_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    frames: int
    first_frame: int
    last_frame: int
    first_timestamp_us: int
    last_timestamp_us: int
    bytes: int
    def __init__(self, stream_id: _Optional[str] = ..., frames: _Optional[int] = ..., first_frame: _Optional[int] = ..., last_frame: _Optional[int] = ..., first_timestamp_us: _Optional[int] = ..., last_timestamp_us: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class ListStreamsResponse(_message.Message):
    __slots__ = ("streams",)
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    streams: _containers.RepeatedCompositeFieldContainer[StreamInfo]
    def __init__(self, streams: _Optional[_Iterable[_Union[StreamInfo, _Mapping]]] = ...) -> None: ...

class ListFramesRequest(_message.Message):
    __slots__ = ("stream_id", "frames", "time", "limit")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    frames: FrameRange
    time: TimeRange
    limit: int
    def __init__(self, stream_id: _Optional[str] = ..., frames: _Optional[_Union[FrameRange, _Mapping]] = ..., time: _Optional[_Union[TimeRange, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class GroupInfo(_message.Message):
    __slots__ = ("group_id", "label", "score", "bbox", "quality", "bytes", "encrypted", "key_id", "track_id")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    group_id: int
    label: str
    score: float
    bbox: _bitstream_pb2.BBox
    quality: int
    bytes: int
    encrypted: bool
    key_id: str
    track_id: int
    def __init__(self, group_id: _Optional[int] = ..., label: _Optional[str] = ..., score: _Optional[float] = ..., bbox: _Optional[_Union[_bitstream_pb2.BBox, _Mapping]] = ..., quality: _Optional[int] = ..., bytes: _Optional[int] = ..., encrypted: _Optional[bool] = ..., key_id: _Optional[str] = ..., track_id: _Optional[int] = ...) -> None: ...

class FrameInfo(_message.Message):
    __slots__ = ("stream_id", "frame_index", "timestamp_us", "width", "height", "groups")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_US_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    frame_index: int
    timestamp_us: int
    width: int
    height: int
    groups: _containers.RepeatedCompositeFieldContainer[GroupInfo]
    def __init__(self, stream_id: _Optional[str] = ..., frame_index: _Optional[int] = ..., timestamp_us: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., groups: _Optional[_Iterable[_Union[GroupInfo, _Mapping]]] = ...) -> None: ...

class ListFramesResponse(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[FrameInfo]
    def __init__(self, frames: _Optional[_Iterable[_Union[FrameInfo, _Mapping]]] = ...) -> None: ...

class KeyMaterial(_message.Message):
    __slots__ = ("key_id", "key")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    key: bytes
    def __init__(self, key_id: _Optional[str] = ..., key: _Optional[bytes] = ...) -> None: ...

class RegionQuery(_message.Message):
    __slots__ = ("stream_id", "frames", "time", "labels", "group_ids", "intersects", "output", "include_background", "encrypted", "keys", "limit", "composite")
    class Output(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RECORDS: _ClassVar[RegionQuery.Output]
        PNG: _ClassVar[RegionQuery.Output]
        RAW_RGB: _ClassVar[RegionQuery.Output]
    RECORDS: RegionQuery.Output
    PNG: RegionQuery.Output
    RAW_RGB: RegionQuery.Output
    class Encrypted(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CIPHERTEXT: _ClassVar[RegionQuery.Encrypted]
        OMIT: _ClassVar[RegionQuery.Encrypted]
        DECRYPT: _ClassVar[RegionQuery.Encrypted]
    CIPHERTEXT: RegionQuery.Encrypted
    OMIT: RegionQuery.Encrypted
    DECRYPT: RegionQuery.Encrypted
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    GROUP_IDS_FIELD_NUMBER: _ClassVar[int]
    INTERSECTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    COMPOSITE_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    frames: FrameRange
    time: TimeRange
    labels: _containers.RepeatedScalarFieldContainer[str]
    group_ids: _containers.RepeatedScalarFieldContainer[int]
    intersects: _bitstream_pb2.BBox
    output: RegionQuery.Output
    include_background: bool
    encrypted: RegionQuery.Encrypted
    keys: _containers.RepeatedCompositeFieldContainer[KeyMaterial]
    limit: int
    composite: bool
    def __init__(self, stream_id: _Optional[str] = ..., frames: _Optional[_Union[FrameRange, _Mapping]] = ..., time: _Optional[_Union[TimeRange, _Mapping]] = ..., labels: _Optional[_Iterable[str]] = ..., group_ids: _Optional[_Iterable[int]] = ..., intersects: _Optional[_Union[_bitstream_pb2.BBox, _Mapping]] = ..., output: _Optional[_Union[RegionQuery.Output, str]] = ..., include_background: _Optional[bool] = ..., encrypted: _Optional[_Union[RegionQuery.Encrypted, str]] = ..., keys: _Optional[_Iterable[_Union[KeyMaterial, _Mapping]]] = ..., limit: _Optional[int] = ..., composite: _Optional[bool] = ...) -> None: ...

class Region(_message.Message):
    __slots__ = ("stream_id", "frame_index", "timestamp_us", "header", "record", "image", "mask", "width", "height", "encrypted")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_US_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    frame_index: int
    timestamp_us: int
    header: _bitstream_pb2.FrameHeader
    record: _bitstream_pb2.GroupRecord
    image: bytes
    mask: bytes
    width: int
    height: int
    encrypted: bool
    def __init__(self, stream_id: _Optional[str] = ..., frame_index: _Optional[int] = ..., timestamp_us: _Optional[int] = ..., header: _Optional[_Union[_bitstream_pb2.FrameHeader, _Mapping]] = ..., record: _Optional[_Union[_bitstream_pb2.GroupRecord, _Mapping]] = ..., image: _Optional[bytes] = ..., mask: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., encrypted: _Optional[bool] = ...) -> None: ...
