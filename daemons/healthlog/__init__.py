"""bin/healthlog: the cluster's health history from the daemons' event logs, and its live status."""
