"""The Python client library for the gateway.

Rows arrive column-wise (`ColumnBatch`, numpy arrays) exactly as they travel, so a client that
works with columns pays no per-row cost. Calls ride out a gateway that is briefly unavailable
(supervisord restarts it within about a second) by retrying with backoff inside one total
deadline; a stream that breaks midway resumes from its last chunk's resume token, so no row is
delivered twice or skipped.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pyarrow as pa

from daemons.channels import CHANNEL_OPTIONS, ReadStream
from daemons.deadline import Deadline
from daemons.query.arrow import SCHEMA as ARROW_SCHEMA
from daemons.query.arrow import record_batch
from daemons.query.wire import ColumnBatch, RowDecoder
from daemons.rpc import airquality_pb2 as pb
from daemons.rpc import airquality_pb2_grpc as pb_grpc

DEFAULT_TARGET = "localhost:50051"
RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)
CANCEL_TIMEOUT_SECONDS = 2.0

T = TypeVar("T")


def make_filter(*, parameters: Iterable[str] = (), sites: Iterable[str] = (), agencies: Iterable[str] = (),
                aqs_codes: Iterable[str] = (), bbox: tuple[float, float, float, float] | None = None,
                datetime_from: str | None = None, datetime_to: str | None = None,
                min_concentration: float | None = None, max_concentration: float | None = None,
                min_aqi: float | None = None, max_aqi: float | None = None) -> pb.QueryFilter:
    """A QueryFilter in which every argument left as None stays unset (not zero)."""
    message = pb.QueryFilter(parameters=list(parameters), site_names=list(sites), agency_names=list(agencies),
                             aqs_codes=list(aqs_codes))
    if bbox is not None:
        message.bbox.CopyFrom(pb.BoundingBox(min_latitude=bbox[0], min_longitude=bbox[1],
                                             max_latitude=bbox[2], max_longitude=bbox[3]))
    for name, value in (("datetime_from", datetime_from), ("datetime_to", datetime_to),
                        ("min_concentration", min_concentration), ("max_concentration", max_concentration),
                        ("min_aqi", min_aqi), ("max_aqi", max_aqi)):
        if value is not None:
            setattr(message, name, value)
    return message


@dataclass
class Completeness:
    complete: bool = False
    total_results: int = 0
    missing_partitions: list[str] = field(default_factory=list)
    partitions: list[pb.PartitionStatus] = field(default_factory=list)

    def describe_missing(self) -> str:
        errors = {s.partition: s.error for s in self.partitions}
        return "; ".join(f"{p} ({errors.get(p) or 'no answer'})" for p in self.missing_partitions)


class QueryStream:
    """Iterates a query's ColumnBatches; `completeness` is filled in by the last chunk. An iteration
    dropped unfinished cancels its call at once (each iteration asks anew)."""

    def __init__(self, client: FireClient, request: pb.QueryRequest, deadline: Deadline):
        self._client = client
        self.request = request
        self._deadline = deadline
        self._call: Any = None  # the gRPC call in flight (grpc ships no types)
        self.completeness: Completeness | None = None

    def __iter__(self) -> Iterator[ColumnBatch]:
        stub = self._client.stub
        attempt = 0
        decoder = RowDecoder()  # a resumed answer scans its partitions again, and their dictionaries start again
        while True:
            self._call = stub.Query(self.request, timeout=self._deadline.timeout())
            try:
                for message in ReadStream(self._call):
                    # Each chunk says where the answer stands: after a gateway restart the request
                    # resumes from the last chunk received, with nothing repeated or left out.
                    self.request.resume_token = message.resume_token
                    if message.is_last_chunk:
                        self.completeness = Completeness(message.complete, message.total_results,
                                                         list(message.missing_partitions), list(message.partitions))
                    if message.HasField("columns"):
                        yield decoder.decode(message.columns, message.partition, message.partition_offset)
                return
            except grpc.RpcError as error:
                if not self._client.should_retry(error, attempt, self._deadline):
                    raise
                attempt += 1

    def record_batches(self) -> Iterator[pa.RecordBatch]:
        """The answer as Arrow record batches (daemons/query/arrow.py's SCHEMA), as they arrive."""
        return (record_batch(batch) for batch in self)

    def to_arrow(self) -> pa.Table:
        """The whole answer as a pyarrow Table: `.to_pandas()`, `polars.from_arrow(...)`, DuckDB's
        `duckdb.arrow(...)` take it from there. Check `completeness` after: a partial answer holds
        only the rows that came. Larger chunks (query(chunk_size=65536)) make fewer, longer batches."""
        batches = list(self)  # all first: then every batch of a stream shares its whole dictionary
        return pa.Table.from_batches([record_batch(batch) for batch in batches], schema=ARROW_SCHEMA)

    def cancel(self) -> bool:
        """Asks the gateway to stop the request (one short try), then cancels the local call."""
        try:
            return self._client.stub.Cancel(pb.CancelRequest(request_id=self.request.request_id),
                                            timeout=CANCEL_TIMEOUT_SECONDS).cancelled
        except grpc.RpcError:
            return False  # the gateway is away; cancelling the call below ends the request anyway
        finally:
            if self._call is not None:
                self._call.cancel()


TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


def client_channel(target: str, tls_dir: Path | str | None = None,
                   options: list[tuple[str, Any]] = CHANNEL_OPTIONS) -> grpc.Channel:
    """A channel to the gateway: mutual TLS with the CA, certificate and key in `tls_dir` (else in
    $FIRE_TLS_DIR when set: bin/gen-certs's DIR/client), plaintext without either. A file
    missing or unreadable raises TlsFilesError naming it."""
    folder = tls_dir if tls_dir is not None else os.environ.get("FIRE_TLS_DIR") or None
    if folder is None:
        return grpc.insecure_channel(target, options=options)
    ca, cert, key = read_tls_folder(Path(folder))
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(ca, key, cert), options=options)


class TlsFilesError(Exception):
    pass


def read_tls_folder(folder: Path) -> tuple[bytes, ...]:
    """The CA, certificate and key in `folder` (TLS_FILES), or TlsFilesError naming what is missing."""
    return tuple(_read_tls_file(folder / name) for name in TLS_FILES)


def _read_tls_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TlsFilesError(f"cannot read {path}: {error.strerror or error} (a TLS folder holds "
                            f"{', '.join(TLS_FILES)}: bin/gen-certs DIR makes DIR/client)") from None


class FireClient:
    def __init__(self, target: str = DEFAULT_TARGET, *, deadline_seconds: float = 300.0,
                 backoff_initial: float = 0.05, backoff_max: float = 1.0, tls_dir: Path | str | None = None):
        self.target = target
        self.deadline_seconds = deadline_seconds
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.channel = client_channel(target, tls_dir)
        self.stub = pb_grpc.AirQualityStub(self.channel)

    def __enter__(self) -> FireClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def should_retry(self, error: grpc.RpcError, attempt: int, deadline: Deadline) -> bool:
        """Sleeps a jittered exponential backoff and says True when the call may be tried again."""
        if error.code() not in RETRYABLE:
            return False
        pause = min(self.backoff_max, self.backoff_initial * 2 ** attempt) * random.uniform(0.5, 1.0)
        if deadline.expired(after=pause):
            return False
        time.sleep(pause)
        return True

    def _unary(self, call: Callable[..., T], request) -> T:
        deadline = Deadline.after(self.deadline_seconds)
        attempt = 0
        while True:
            try:
                return call(request, timeout=deadline.timeout())
            except grpc.RpcError as error:
                if not self.should_retry(error, attempt, deadline):
                    raise
                attempt += 1

    def query(self, query_filter: pb.QueryFilter | None = None, *, chunk_size: int | None = None,
              request_id: str | None = None) -> QueryStream:
        request = pb.QueryRequest(request_id=request_id or uuid.uuid4().hex, filter=query_filter or pb.QueryFilter())
        if chunk_size is not None:
            request.chunk_size = chunk_size
        return QueryStream(self, request, Deadline.after(self.deadline_seconds))

    def aggregate(self, query_filter: pb.QueryFilter | None = None, group_by: Iterable[str] = (),
                  request_id: str | None = None) -> pb.AggregateResponse:
        request = pb.AggregateRequest(request_id=request_id or uuid.uuid4().hex,
                                      filter=query_filter or pb.QueryFilter(), group_by=list(group_by))
        return self._unary(self.stub.Aggregate, request)

    def count(self, query_filter: pb.QueryFilter | None = None) -> tuple[int, pb.AggregateResponse]:
        """The number of matching rows, counted where the data lives, and the full answer."""
        answer = self.aggregate(query_filter)
        return sum(group.rows for group in answer.groups), answer

    def cancel(self, request_id: str) -> bool:
        return self._unary(self.stub.Cancel, pb.CancelRequest(request_id=request_id)).cancelled
