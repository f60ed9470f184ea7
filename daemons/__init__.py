"""The wildfire air-quality query service: one codebase for all six daemons.

Where everything lives, lowest layer first (a module imports only from layers above it here):

- `storage/`: the AirNow row schema (`columns`), the CSV loader (`csvload`), partitions held
  column-wise in memory and cached on disk (`partition`).
- `query/`: request validation and row selection (`filter`), aggregates (`aggregate`), the
  columnar wire format (`wire`), chunks as CSV or JSON lines text (`text`) and as Arrow record
  batches (`arrow`).
- `fanout/`: routes and partition fates (`routes`, pure), fair merging of streams (`merge`), the
  threads producing answers at once, bounded (`slots`), the `Child` protocol and its gRPC
  implementation (`children`), scanning and forwarding (`engine`).
- `health/`: the status enum (`status`) and state machine (`state`, pure), the probe transport
  and clock seams (`transport`, `clock`), health datagrams (`datagram`) sealed with the cluster
  key (`seal`, pure) and HTTP/2 PINGs
  (`h2ping`), busy or hung (`liveness`, pure, applied by `pings`), the prober's own slowness
  (`awareness`, pure), deadlines judged after late timers (`timers`), the monitor (`monitor`),
  watchers falling silent (`watchers`, pure),
  its event loop (`loop`) and the process that runs it beside the daemon (`process`), the
  gateway's cluster view (`view`), probe and transition counts (`tally`, pure).
- `planning/`: choosing copies (`paths`), which copies agree (`replicas`), one request's
  failover plan (`failover`) and where copies live for a host layout (`placement`), pure.
- `security/`: the cluster's certificates (`certs`; `gencerts` is `bin/gen-certs`), who may call
  what (`identity`, pure), the interceptor applying it to every call (`authorization`), and
  failed TLS handshakes read from gRPC's core into the event log (`handshakes`).
- `servicers/`: the gRPC services (`node`, `gateway`, `health`; `legacy`: the original system's
  contract, translated onto them), every request's lifecycle
  (`requests`), idle readers cut off and memory returned (`housekeeping`), method handlers
  (`handlers`), the gateway's replica catalog kept current
  (`replicas`), signed resume tokens (`tokens`), the event logs over gRPC (`logstream`).
- `web/`: the bounded HTTP server for what is shown to tools and browsers (`server`); `metrics`:
  the Prometheus metrics; `dashboard/`: the gateway's live page (`picture`, pure; `live`; `static/`).
- `server`: one daemon process, wiring the above from its config; `config`: configs validated into
  typed objects; `events`/`eventlog`: every event defined once, written as JSON lines.
- Shared small concepts: `deadline` (one deadline), `cancel` (one cancellation), `errors` (one
  error describer), `channels` (gRPC channel options), `locking` (one file lock), `quoting` (client
  values shown cut short in errors), `wakeup` (the main thread hears every signal), `companions` (a daemon's helper processes),
  `mac` (HMAC tags made without letting go of the interpreter lock), `affinity` (the CPUs a daemon's
  threads run on, as its load changes).
- Tools: `client` (the Python client), `cli/` (`bin/query`), `healthlog/` (`bin/healthlog`),
  `deploy/` (`bin/start|stop --layout --host`: layouts, and each host's derived configs),
  `datagen/` (the embedded data set's generator), `rpc/` (generated from proto/).
"""
