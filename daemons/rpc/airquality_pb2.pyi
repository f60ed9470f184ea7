from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RowEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROW_ENCODING_COLUMNS: _ClassVar[RowEncoding]
    ROW_ENCODING_MEASUREMENTS: _ClassVar[RowEncoding]
ROW_ENCODING_COLUMNS: RowEncoding
ROW_ENCODING_MEASUREMENTS: RowEncoding

class FireMeasurement(_message.Message):
    __slots__ = ("latitude", "longitude", "datetime", "parameter", "concentration", "unit", "raw_concentration", "aqi", "category", "site_name", "agency_name", "aqs_code", "full_aqs_code")
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    DATETIME_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_FIELD_NUMBER: _ClassVar[int]
    CONCENTRATION_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    RAW_CONCENTRATION_FIELD_NUMBER: _ClassVar[int]
    AQI_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SITE_NAME_FIELD_NUMBER: _ClassVar[int]
    AGENCY_NAME_FIELD_NUMBER: _ClassVar[int]
    AQS_CODE_FIELD_NUMBER: _ClassVar[int]
    FULL_AQS_CODE_FIELD_NUMBER: _ClassVar[int]
    latitude: float
    longitude: float
    datetime: str
    parameter: str
    concentration: float
    unit: str
    raw_concentration: float
    aqi: int
    category: int
    site_name: str
    agency_name: str
    aqs_code: str
    full_aqs_code: str
    def __init__(self, latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., datetime: _Optional[str] = ..., parameter: _Optional[str] = ..., concentration: _Optional[float] = ..., unit: _Optional[str] = ..., raw_concentration: _Optional[float] = ..., aqi: _Optional[int] = ..., category: _Optional[int] = ..., site_name: _Optional[str] = ..., agency_name: _Optional[str] = ..., aqs_code: _Optional[str] = ..., full_aqs_code: _Optional[str] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("min_latitude", "min_longitude", "max_latitude", "max_longitude")
    MIN_LATITUDE_FIELD_NUMBER: _ClassVar[int]
    MIN_LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    MAX_LATITUDE_FIELD_NUMBER: _ClassVar[int]
    MAX_LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    min_latitude: float
    min_longitude: float
    max_latitude: float
    max_longitude: float
    def __init__(self, min_latitude: _Optional[float] = ..., min_longitude: _Optional[float] = ..., max_latitude: _Optional[float] = ..., max_longitude: _Optional[float] = ...) -> None: ...

class QueryFilter(_message.Message):
    __slots__ = ("parameters", "site_names", "agency_names", "aqs_codes", "bbox", "datetime_from", "datetime_to", "min_concentration", "max_concentration", "min_aqi", "max_aqi")
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SITE_NAMES_FIELD_NUMBER: _ClassVar[int]
    AGENCY_NAMES_FIELD_NUMBER: _ClassVar[int]
    AQS_CODES_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    DATETIME_FROM_FIELD_NUMBER: _ClassVar[int]
    DATETIME_TO_FIELD_NUMBER: _ClassVar[int]
    MIN_CONCENTRATION_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCENTRATION_FIELD_NUMBER: _ClassVar[int]
    MIN_AQI_FIELD_NUMBER: _ClassVar[int]
    MAX_AQI_FIELD_NUMBER: _ClassVar[int]
    parameters: _containers.RepeatedScalarFieldContainer[str]
    site_names: _containers.RepeatedScalarFieldContainer[str]
    agency_names: _containers.RepeatedScalarFieldContainer[str]
    aqs_codes: _containers.RepeatedScalarFieldContainer[str]
    bbox: BoundingBox
    datetime_from: str
    datetime_to: str
    min_concentration: float
    max_concentration: float
    min_aqi: float
    max_aqi: float
    def __init__(self, parameters: _Optional[_Iterable[str]] = ..., site_names: _Optional[_Iterable[str]] = ..., agency_names: _Optional[_Iterable[str]] = ..., aqs_codes: _Optional[_Iterable[str]] = ..., bbox: _Optional[_Union[BoundingBox, _Mapping]] = ..., datetime_from: _Optional[str] = ..., datetime_to: _Optional[str] = ..., min_concentration: _Optional[float] = ..., max_concentration: _Optional[float] = ..., min_aqi: _Optional[float] = ..., max_aqi: _Optional[float] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("request_id", "filter", "chunk_size", "encoding", "resume_token")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    filter: QueryFilter
    chunk_size: int
    encoding: RowEncoding
    resume_token: bytes
    def __init__(self, request_id: _Optional[str] = ..., filter: _Optional[_Union[QueryFilter, _Mapping]] = ..., chunk_size: _Optional[int] = ..., encoding: _Optional[_Union[RowEncoding, str]] = ..., resume_token: _Optional[bytes] = ...) -> None: ...

class DictionaryColumn(_message.Message):
    __slots__ = ("values", "codes", "first_index")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    FIRST_INDEX_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    codes: bytes
    first_index: int
    def __init__(self, values: _Optional[_Iterable[str]] = ..., codes: _Optional[bytes] = ..., first_index: _Optional[int] = ...) -> None: ...

class RowColumns(_message.Message):
    __slots__ = ("row_count", "latitude", "longitude", "datetime", "parameter", "concentration", "unit", "raw_concentration", "aqi", "category", "site_name", "agency_name", "aqs_code", "full_aqs_code")
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    DATETIME_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_FIELD_NUMBER: _ClassVar[int]
    CONCENTRATION_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    RAW_CONCENTRATION_FIELD_NUMBER: _ClassVar[int]
    AQI_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SITE_NAME_FIELD_NUMBER: _ClassVar[int]
    AGENCY_NAME_FIELD_NUMBER: _ClassVar[int]
    AQS_CODE_FIELD_NUMBER: _ClassVar[int]
    FULL_AQS_CODE_FIELD_NUMBER: _ClassVar[int]
    row_count: int
    latitude: bytes
    longitude: bytes
    datetime: bytes
    parameter: DictionaryColumn
    concentration: bytes
    unit: DictionaryColumn
    raw_concentration: bytes
    aqi: bytes
    category: bytes
    site_name: DictionaryColumn
    agency_name: DictionaryColumn
    aqs_code: DictionaryColumn
    full_aqs_code: DictionaryColumn
    def __init__(self, row_count: _Optional[int] = ..., latitude: _Optional[bytes] = ..., longitude: _Optional[bytes] = ..., datetime: _Optional[bytes] = ..., parameter: _Optional[_Union[DictionaryColumn, _Mapping]] = ..., concentration: _Optional[bytes] = ..., unit: _Optional[_Union[DictionaryColumn, _Mapping]] = ..., raw_concentration: _Optional[bytes] = ..., aqi: _Optional[bytes] = ..., category: _Optional[bytes] = ..., site_name: _Optional[_Union[DictionaryColumn, _Mapping]] = ..., agency_name: _Optional[_Union[DictionaryColumn, _Mapping]] = ..., aqs_code: _Optional[_Union[DictionaryColumn, _Mapping]] = ..., full_aqs_code: _Optional[_Union[DictionaryColumn, _Mapping]] = ...) -> None: ...

class PartitionStatus(_message.Message):
    __slots__ = ("partition", "complete", "rows", "served_by", "error", "fingerprint", "gaps", "pruned")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    GAPS_FIELD_NUMBER: _ClassVar[int]
    PRUNED_FIELD_NUMBER: _ClassVar[int]
    partition: str
    complete: bool
    rows: int
    served_by: str
    error: str
    fingerprint: str
    gaps: _containers.RepeatedScalarFieldContainer[str]
    pruned: bool
    def __init__(self, partition: _Optional[str] = ..., complete: _Optional[bool] = ..., rows: _Optional[int] = ..., served_by: _Optional[str] = ..., error: _Optional[str] = ..., fingerprint: _Optional[str] = ..., gaps: _Optional[_Iterable[str]] = ..., pruned: _Optional[bool] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("request_id", "chunk_number", "is_last_chunk", "total_results", "columns", "measurements", "partition", "partition_offset", "partitions", "complete", "missing_partitions", "resume_token", "fingerprint")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    IS_LAST_CHUNK_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RESULTS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    PARTITION_OFFSET_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    MISSING_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    chunk_number: int
    is_last_chunk: bool
    total_results: int
    columns: RowColumns
    measurements: _containers.RepeatedCompositeFieldContainer[FireMeasurement]
    partition: str
    partition_offset: int
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionStatus]
    complete: bool
    missing_partitions: _containers.RepeatedScalarFieldContainer[str]
    resume_token: bytes
    fingerprint: str
    def __init__(self, request_id: _Optional[str] = ..., chunk_number: _Optional[int] = ..., is_last_chunk: _Optional[bool] = ..., total_results: _Optional[int] = ..., columns: _Optional[_Union[RowColumns, _Mapping]] = ..., measurements: _Optional[_Iterable[_Union[FireMeasurement, _Mapping]]] = ..., partition: _Optional[str] = ..., partition_offset: _Optional[int] = ..., partitions: _Optional[_Iterable[_Union[PartitionStatus, _Mapping]]] = ..., complete: _Optional[bool] = ..., missing_partitions: _Optional[_Iterable[str]] = ..., resume_token: _Optional[bytes] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class ResumeToken(_message.Message):
    __slots__ = ("filter_digest", "chunks", "delivered", "complete", "fingerprints")
    class DeliveredEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class FingerprintsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FILTER_DIGEST_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINTS_FIELD_NUMBER: _ClassVar[int]
    filter_digest: bytes
    chunks: int
    delivered: _containers.ScalarMap[str, int]
    complete: _containers.RepeatedScalarFieldContainer[str]
    fingerprints: _containers.ScalarMap[str, str]
    def __init__(self, filter_digest: _Optional[bytes] = ..., chunks: _Optional[int] = ..., delivered: _Optional[_Mapping[str, int]] = ..., complete: _Optional[_Iterable[str]] = ..., fingerprints: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AggregateRequest(_message.Message):
    __slots__ = ("request_id", "filter", "group_by")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    filter: QueryFilter
    group_by: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., filter: _Optional[_Union[QueryFilter, _Mapping]] = ..., group_by: _Optional[_Iterable[str]] = ...) -> None: ...

class ColumnStats(_message.Message):
    __slots__ = ("count", "sum", "min", "max", "mean")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    count: int
    sum: float
    min: float
    max: float
    mean: float
    def __init__(self, count: _Optional[int] = ..., sum: _Optional[float] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., mean: _Optional[float] = ...) -> None: ...

class AggregateGroup(_message.Message):
    __slots__ = ("key", "rows", "concentration", "aqi")
    KEY_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    CONCENTRATION_FIELD_NUMBER: _ClassVar[int]
    AQI_FIELD_NUMBER: _ClassVar[int]
    key: _containers.RepeatedScalarFieldContainer[str]
    rows: int
    concentration: ColumnStats
    aqi: ColumnStats
    def __init__(self, key: _Optional[_Iterable[str]] = ..., rows: _Optional[int] = ..., concentration: _Optional[_Union[ColumnStats, _Mapping]] = ..., aqi: _Optional[_Union[ColumnStats, _Mapping]] = ...) -> None: ...

class AggregateResponse(_message.Message):
    __slots__ = ("request_id", "groups", "complete", "partitions", "missing_partitions")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    MISSING_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    groups: _containers.RepeatedCompositeFieldContainer[AggregateGroup]
    complete: bool
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionStatus]
    missing_partitions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., groups: _Optional[_Iterable[_Union[AggregateGroup, _Mapping]]] = ..., complete: _Optional[bool] = ..., partitions: _Optional[_Iterable[_Union[PartitionStatus, _Mapping]]] = ..., missing_partitions: _Optional[_Iterable[str]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: bool
    def __init__(self, cancelled: _Optional[bool] = ...) -> None: ...

class LogPosition(_message.Message):
    __slots__ = ("daemon", "file_id", "offset", "head")
    DAEMON_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    daemon: str
    file_id: int
    offset: int
    head: bytes
    def __init__(self, daemon: _Optional[str] = ..., file_id: _Optional[int] = ..., offset: _Optional[int] = ..., head: _Optional[bytes] = ...) -> None: ...

class EventsRequest(_message.Message):
    __slots__ = ("follow", "event_names", "resume")
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    EVENT_NAMES_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    follow: bool
    event_names: _containers.RepeatedScalarFieldContainer[str]
    resume: _containers.RepeatedCompositeFieldContainer[LogPosition]
    def __init__(self, follow: _Optional[bool] = ..., event_names: _Optional[_Iterable[str]] = ..., resume: _Optional[_Iterable[_Union[LogPosition, _Mapping]]] = ...) -> None: ...

class Hearing(_message.Message):
    __slots__ = ("heard", "unheard")
    HEARD_FIELD_NUMBER: _ClassVar[int]
    UNHEARD_FIELD_NUMBER: _ClassVar[int]
    heard: _containers.RepeatedScalarFieldContainer[str]
    unheard: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, heard: _Optional[_Iterable[str]] = ..., unheard: _Optional[_Iterable[str]] = ...) -> None: ...

class EventsResponse(_message.Message):
    __slots__ = ("daemon", "lines", "position", "hearing")
    DAEMON_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    HEARING_FIELD_NUMBER: _ClassVar[int]
    daemon: str
    lines: _containers.RepeatedScalarFieldContainer[str]
    position: LogPosition
    hearing: Hearing
    def __init__(self, daemon: _Optional[str] = ..., lines: _Optional[_Iterable[str]] = ..., position: _Optional[_Union[LogPosition, _Mapping]] = ..., hearing: _Optional[_Union[Hearing, _Mapping]] = ...) -> None: ...

class PartitionRoute(_message.Message):
    __slots__ = ("partition", "path", "skip_rows", "fingerprint")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SKIP_ROWS_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    partition: str
    path: _containers.RepeatedScalarFieldContainer[str]
    skip_rows: int
    fingerprint: str
    def __init__(self, partition: _Optional[str] = ..., path: _Optional[_Iterable[str]] = ..., skip_rows: _Optional[int] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class ScanRequest(_message.Message):
    __slots__ = ("request_id", "filter", "chunk_size", "group_by", "routes")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    filter: QueryFilter
    chunk_size: int
    group_by: _containers.RepeatedScalarFieldContainer[str]
    routes: _containers.RepeatedCompositeFieldContainer[PartitionRoute]
    def __init__(self, request_id: _Optional[str] = ..., filter: _Optional[_Union[QueryFilter, _Mapping]] = ..., chunk_size: _Optional[int] = ..., group_by: _Optional[_Iterable[str]] = ..., routes: _Optional[_Iterable[_Union[PartitionRoute, _Mapping]]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: bool
    def __init__(self, cluster: _Optional[bool] = ...) -> None: ...

class PartitionInfo(_message.Message):
    __slots__ = ("name", "days", "rows", "skipped_lines", "loaded_from", "fingerprint", "gaps", "daemon", "first_minute", "last_minute", "process_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_LINES_FIELD_NUMBER: _ClassVar[int]
    LOADED_FROM_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    GAPS_FIELD_NUMBER: _ClassVar[int]
    DAEMON_FIELD_NUMBER: _ClassVar[int]
    FIRST_MINUTE_FIELD_NUMBER: _ClassVar[int]
    LAST_MINUTE_FIELD_NUMBER: _ClassVar[int]
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    days: _containers.RepeatedScalarFieldContainer[str]
    rows: int
    skipped_lines: int
    loaded_from: str
    fingerprint: str
    gaps: _containers.RepeatedScalarFieldContainer[str]
    daemon: str
    first_minute: int
    last_minute: int
    process_id: int
    def __init__(self, name: _Optional[str] = ..., days: _Optional[_Iterable[str]] = ..., rows: _Optional[int] = ..., skipped_lines: _Optional[int] = ..., loaded_from: _Optional[str] = ..., fingerprint: _Optional[str] = ..., gaps: _Optional[_Iterable[str]] = ..., daemon: _Optional[str] = ..., first_minute: _Optional[int] = ..., last_minute: _Optional[int] = ..., process_id: _Optional[int] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("daemon", "role", "process_id", "uptime_seconds", "serving", "partitions", "children", "active_requests", "health_checks_by_requester", "copies_below", "unreachable_below", "datagrams_dropped")
    class HealthChecksByRequesterEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class DatagramsDroppedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DAEMON_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_CHECKS_BY_REQUESTER_FIELD_NUMBER: _ClassVar[int]
    COPIES_BELOW_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_BELOW_FIELD_NUMBER: _ClassVar[int]
    DATAGRAMS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    daemon: str
    role: str
    process_id: int
    uptime_seconds: float
    serving: bool
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionInfo]
    children: _containers.RepeatedScalarFieldContainer[str]
    active_requests: int
    health_checks_by_requester: _containers.ScalarMap[str, int]
    copies_below: _containers.RepeatedCompositeFieldContainer[PartitionInfo]
    unreachable_below: _containers.RepeatedScalarFieldContainer[str]
    datagrams_dropped: _containers.ScalarMap[str, int]
    def __init__(self, daemon: _Optional[str] = ..., role: _Optional[str] = ..., process_id: _Optional[int] = ..., uptime_seconds: _Optional[float] = ..., serving: _Optional[bool] = ..., partitions: _Optional[_Iterable[_Union[PartitionInfo, _Mapping]]] = ..., children: _Optional[_Iterable[str]] = ..., active_requests: _Optional[int] = ..., health_checks_by_requester: _Optional[_Mapping[str, int]] = ..., copies_below: _Optional[_Iterable[_Union[PartitionInfo, _Mapping]]] = ..., unreachable_below: _Optional[_Iterable[str]] = ..., datagrams_dropped: _Optional[_Mapping[str, int]] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ("requester_id", "timestamp", "gasp_port", "gasp_token", "target")
    REQUESTER_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    GASP_PORT_FIELD_NUMBER: _ClassVar[int]
    GASP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    requester_id: str
    timestamp: int
    gasp_port: int
    gasp_token: bytes
    target: str
    def __init__(self, requester_id: _Optional[str] = ..., timestamp: _Optional[int] = ..., gasp_port: _Optional[int] = ..., gasp_token: _Optional[bytes] = ..., target: _Optional[str] = ...) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("healthy", "status", "timestamp", "process_id", "role", "daemon", "request_timestamp", "gasp_token")
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    DAEMON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    GASP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    healthy: bool
    status: str
    timestamp: int
    process_id: int
    role: str
    daemon: str
    request_timestamp: int
    gasp_token: bytes
    def __init__(self, healthy: _Optional[bool] = ..., status: _Optional[str] = ..., timestamp: _Optional[int] = ..., process_id: _Optional[int] = ..., role: _Optional[str] = ..., daemon: _Optional[str] = ..., request_timestamp: _Optional[int] = ..., gasp_token: _Optional[bytes] = ...) -> None: ...

class HealthStatusRequest(_message.Message):
    __slots__ = ("cluster",)
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    cluster: bool
    def __init__(self, cluster: _Optional[bool] = ...) -> None: ...

class NeighborHealth(_message.Message):
    __slots__ = ("observer", "neighbor", "status", "since", "consecutive_failures", "last_latency_ms", "success_rate", "probes_in_window", "window_seconds", "last_reason", "datagrams_dropped", "process_id")
    class DatagramsDroppedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    OBSERVER_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    LAST_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    PROBES_IN_WINDOW_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_REASON_FIELD_NUMBER: _ClassVar[int]
    DATAGRAMS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    observer: str
    neighbor: str
    status: str
    since: str
    consecutive_failures: int
    last_latency_ms: float
    success_rate: float
    probes_in_window: int
    window_seconds: float
    last_reason: str
    datagrams_dropped: _containers.ScalarMap[str, int]
    process_id: int
    def __init__(self, observer: _Optional[str] = ..., neighbor: _Optional[str] = ..., status: _Optional[str] = ..., since: _Optional[str] = ..., consecutive_failures: _Optional[int] = ..., last_latency_ms: _Optional[float] = ..., success_rate: _Optional[float] = ..., probes_in_window: _Optional[int] = ..., window_seconds: _Optional[float] = ..., last_reason: _Optional[str] = ..., datagrams_dropped: _Optional[_Mapping[str, int]] = ..., process_id: _Optional[int] = ...) -> None: ...

class HealthStatusResponse(_message.Message):
    __slots__ = ("daemon", "neighbors", "unreachable_observers")
    DAEMON_FIELD_NUMBER: _ClassVar[int]
    NEIGHBORS_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_OBSERVERS_FIELD_NUMBER: _ClassVar[int]
    daemon: str
    neighbors: _containers.RepeatedCompositeFieldContainer[NeighborHealth]
    unreachable_observers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, daemon: _Optional[str] = ..., neighbors: _Optional[_Iterable[_Union[NeighborHealth, _Mapping]]] = ..., unreachable_observers: _Optional[_Iterable[str]] = ...) -> None: ...
