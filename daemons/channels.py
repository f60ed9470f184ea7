"""gRPC settings shared by every daemon-to-daemon link, the client library and the daemons' servers."""

from __future__ import annotations

import contextlib
from typing import Any

import grpc
import grpc.experimental

from daemons.config import TlsConfig

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# What a receiver lets a sender run ahead on one stream: about one full chunk (8192 rows are
# 500 KB on the wire). With gRPC's default BDP probing the window grows with the measured
# bandwidth instead, to megabytes per stream on loopback, all of it buffered by the receiver when
# nobody reads. Measured 2026-11-30 on the real data, 32 never-read full scans through the
# gateway: 56 MB each at the gateway and 13.5 MB at leader_e with probing; 5.1 and 6.3 MB with
# this window (6.7 and 7.3 MB with 1 MB), and one chunk per source in the merge. Paired against
# 1 MB, a full scan took 1 % longer and the PM2.5+PM10 query 3 %, within the noise.
STREAM_WINDOW_BYTES = 512 * 1024
FLOW_CONTROL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", STREAM_WINDOW_BYTES),
]
# How soon a channel tries a lost peer again: gRPC's default (1 s growing to 120 s) would hide a
# restarted daemon for minutes. The query channels' and the health channels' are the same: a
# monitor calls a restarted child healthy as soon as its health channel reconnects, and a query
# channel still waiting out a longer backoff failed its calls at once meanwhile (a partition was
# lost when the daemon holding its other copy was restarted next, 2026-11-30). A refused
# reconnection costs microseconds.
RECONNECT_OPTIONS: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 100),
]
# A streamed answer is read by the thread that iterates it, which waits on the call itself, instead
# of by the channel's own thread, which hands each message over through a condition variable:
# one thread switch less per message received. Every stream here has one reader (a merge's pump,
# a client's loop), which is what the option asks; cancelling from another thread still ends its
# wait. Measured 2026-12-01, one-site queries, paired with the commit before: CPU per query of
# the six daemons and the client 30-31 -> 19-23 ms, 16 clients 52-63 -> 79-95 queries/s. Such a
# stream must be read through `ReadStream`, or a cancelled one keeps its native state for good.
SINGLE_THREADED_STREAMS = (grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1)
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    SINGLE_THREADED_STREAMS,
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    *RECONNECT_OPTIONS,
    *FLOW_CONTROL_OPTIONS,
]
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    *FLOW_CONTROL_OPTIONS,
    # gRPC binds with SO_REUSEPORT by default, so a second daemon given a port already served
    # would share it and take half of its connections; without it the bind fails, and says so.
    ("grpc.so_reuseport", 0),
]
HEALTH_CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.use_local_subchannel_pool", 1),  # a connection of its own, apart from the query traffic
    *RECONNECT_OPTIONS,
]
NODE_SERVICE = "airquality.v1.Node"


def channel_credentials(tls: TlsConfig) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(tls.ca_pem, tls.key_pem, tls.cert_pem)


def _secured(options: list[tuple[str, Any]], peer: str) -> list[tuple[str, Any]]:
    # The certificate checked is the peer's program's, whatever address it is reached at: each
    # daemon's certificate names its program (daemons/security/certs.py).
    return [*options, ("grpc.ssl_target_name_override", peer)]


def daemon_channel(address: str, peer: str, tls: TlsConfig | None,
                   options: list[tuple[str, Any]] = CHANNEL_OPTIONS) -> grpc.Channel:
    """A channel to the daemon `peer` at `address`: mutual TLS when `tls` is set, else plaintext."""
    if tls is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, channel_credentials(tls), options=_secured(options, peer))


def daemon_aio_channel(address: str, peer: str, tls: TlsConfig | None,
                       options: list[tuple[str, Any]]) -> grpc.aio.Channel:
    """daemon_channel for an asyncio event loop (the monitors')."""
    if tls is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, channel_credentials(tls), options=_secured(options, peer))


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """Every caller must present a certificate the cluster CA signed."""
    return grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)], root_certificates=tls.ca_pem,
                                       require_client_auth=True)


class ReadStream:
    """The messages of a streaming call made on one of these channels, read on the iterating thread.

    Read so (SINGLE_THREADED_STREAMS), a call frees its native state only once its reader has taken
    every event the call is due, which a call cancelled, or left unread, never has: 21 KB kept for
    good per cancelled call, measured 2026-12-01 (grpcio 1.85). So however the reading ends (the
    last message, a failure, `close`, or the reader dropping it), the call is cancelled (nothing, if
    it has ended) and what it is still due is taken. Not a generator: one closed before its first
    message would never run its cleanup.
    """

    def __init__(self, call: Any):
        self._call = call
        self._closed = False

    def __iter__(self) -> ReadStream:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._call)
        except BaseException:
            self.close()
            raise

    def cancel(self) -> bool:
        """Cancels the call, from any thread: its reader's wait ends with CANCELLED."""
        cancelled: bool = self._call.cancel()
        return cancelled

    def close(self) -> None:
        """Stops reading: cancels the call unless it has ended, and takes what it is still due."""
        if self._closed:
            return
        self._closed = True
        self._call.cancel()
        # grpc's _SingleThreadedRendezvous; tests/unit/test_channels.py fails if these change
        due, consume = self._call._state.due, self._call._consume_next_event
        while due:
            consume()

    def __del__(self) -> None:  # the reader dropped it unfinished (a client breaking out of its loop)
        with contextlib.suppress(Exception):  # at interpreter exit gRPC may already be gone
            self.close()
