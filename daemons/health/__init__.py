"""Health: the monitoring of a daemon's neighbours (what a daemon answers is daemons/servicers/health.py).

Decisions, pure: state.py (a neighbour's status from probe results), liveness.py (whether a
probe that ran out of time met a hung process or a busy one), awareness.py (how slow this prober
itself is, and how much that stretches its deadlines); status.py is the one status enum and
view.py the gateway's picture of the cluster. Around them: monitor.py probes one neighbour and
feeds them, pings.py sends its datagram probes and judges those that time out, timers.py times
its deadlines, loop.py runs every monitor of a daemon on one thread, and process.py runs that
thread in a process of its own, started (and restarted) by the daemon, which mirrors its views;
the network is transport.py's, over datagram.py (UDP probes, and the responder that answers
them), h2ping.py (HTTP/2 PINGs) and gRPC; time is clock.py's.
"""
