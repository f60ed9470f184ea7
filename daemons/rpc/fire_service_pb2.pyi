from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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

class QueryFilter(_message.Message):
    __slots__ = ("site_names", "aqs_codes", "agency_names", "parameters", "min_latitude", "max_latitude", "min_longitude", "max_longitude", "min_datetime", "max_datetime", "min_concentration", "max_concentration", "min_aqi", "max_aqi")
    SITE_NAMES_FIELD_NUMBER: _ClassVar[int]
    AQS_CODES_FIELD_NUMBER: _ClassVar[int]
    AGENCY_NAMES_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    MIN_LATITUDE_FIELD_NUMBER: _ClassVar[int]
    MAX_LATITUDE_FIELD_NUMBER: _ClassVar[int]
    MIN_LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    MAX_LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    MIN_DATETIME_FIELD_NUMBER: _ClassVar[int]
    MAX_DATETIME_FIELD_NUMBER: _ClassVar[int]
    MIN_CONCENTRATION_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCENTRATION_FIELD_NUMBER: _ClassVar[int]
    MIN_AQI_FIELD_NUMBER: _ClassVar[int]
    MAX_AQI_FIELD_NUMBER: _ClassVar[int]
    site_names: _containers.RepeatedScalarFieldContainer[str]
    aqs_codes: _containers.RepeatedScalarFieldContainer[str]
    agency_names: _containers.RepeatedScalarFieldContainer[str]
    parameters: _containers.RepeatedScalarFieldContainer[str]
    min_latitude: float
    max_latitude: float
    min_longitude: float
    max_longitude: float
    min_datetime: str
    max_datetime: str
    min_concentration: float
    max_concentration: float
    min_aqi: int
    max_aqi: int
    def __init__(self, site_names: _Optional[_Iterable[str]] = ..., aqs_codes: _Optional[_Iterable[str]] = ..., agency_names: _Optional[_Iterable[str]] = ..., parameters: _Optional[_Iterable[str]] = ..., min_latitude: _Optional[float] = ..., max_latitude: _Optional[float] = ..., min_longitude: _Optional[float] = ..., max_longitude: _Optional[float] = ..., min_datetime: _Optional[str] = ..., max_datetime: _Optional[str] = ..., min_concentration: _Optional[float] = ..., max_concentration: _Optional[float] = ..., min_aqi: _Optional[int] = ..., max_aqi: _Optional[int] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("request_id", "filter", "query_type", "require_chunked", "max_results_per_chunk")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    QUERY_TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_CHUNKED_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_PER_CHUNK_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    filter: QueryFilter
    query_type: str
    require_chunked: bool
    max_results_per_chunk: int
    def __init__(self, request_id: _Optional[int] = ..., filter: _Optional[_Union[QueryFilter, _Mapping]] = ..., query_type: _Optional[str] = ..., require_chunked: _Optional[bool] = ..., max_results_per_chunk: _Optional[int] = ...) -> None: ...

class QueryResponseChunk(_message.Message):
    __slots__ = ("request_id", "chunk_number", "is_last_chunk", "measurements", "total_chunks", "total_results")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    IS_LAST_CHUNK_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RESULTS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    chunk_number: int
    is_last_chunk: bool
    measurements: _containers.RepeatedCompositeFieldContainer[FireMeasurement]
    total_chunks: int
    total_results: int
    def __init__(self, request_id: _Optional[int] = ..., chunk_number: _Optional[int] = ..., is_last_chunk: _Optional[bool] = ..., measurements: _Optional[_Iterable[_Union[FireMeasurement, _Mapping]]] = ..., total_chunks: _Optional[int] = ..., total_results: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("request_id", "action")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    action: str
    def __init__(self, request_id: _Optional[int] = ..., action: _Optional[str] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("request_id", "status", "chunks_delivered", "total_chunks")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    status: str
    chunks_delivered: int
    total_chunks: int
    def __init__(self, request_id: _Optional[int] = ..., status: _Optional[str] = ..., chunks_delivered: _Optional[int] = ..., total_chunks: _Optional[int] = ...) -> None: ...

class InternalQueryRequest(_message.Message):
    __slots__ = ("request_id", "original_request_id", "filter", "query_type", "requesting_process")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    QUERY_TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUESTING_PROCESS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    original_request_id: int
    filter: QueryFilter
    query_type: str
    requesting_process: str
    def __init__(self, request_id: _Optional[int] = ..., original_request_id: _Optional[int] = ..., filter: _Optional[_Union[QueryFilter, _Mapping]] = ..., query_type: _Optional[str] = ..., requesting_process: _Optional[str] = ...) -> None: ...

class InternalQueryResponse(_message.Message):
    __slots__ = ("request_id", "original_request_id", "measurements", "is_complete", "responding_process")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    IS_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    RESPONDING_PROCESS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    original_request_id: int
    measurements: _containers.RepeatedCompositeFieldContainer[FireMeasurement]
    is_complete: bool
    responding_process: str
    def __init__(self, request_id: _Optional[int] = ..., original_request_id: _Optional[int] = ..., measurements: _Optional[_Iterable[_Union[FireMeasurement, _Mapping]]] = ..., is_complete: _Optional[bool] = ..., responding_process: _Optional[str] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ("requester_id", "timestamp")
    REQUESTER_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    requester_id: str
    timestamp: int
    def __init__(self, requester_id: _Optional[str] = ..., timestamp: _Optional[int] = ...) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("healthy", "status", "timestamp", "process_id", "role")
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    healthy: bool
    status: str
    timestamp: int
    process_id: str
    role: str
    def __init__(self, healthy: _Optional[bool] = ..., status: _Optional[str] = ..., timestamp: _Optional[int] = ..., process_id: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...
