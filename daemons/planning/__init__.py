"""Planning: which copy of each partition serves a request, decided by pure functions and objects.

paths.py chooses among a partition's candidate paths by the daemons' health; failover.py keeps one
request's plan and moves a partition to another copy when the one serving it fails.
"""
