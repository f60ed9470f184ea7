"""Health: the daemon's own serving status, and the monitoring of its neighbours.

state.py decides (pure: probe results and a clock in, transitions out); monitor.py probes and
watches over gRPC and feeds it; service.py answers other daemons' probes and status requests.
"""
