"""Deployment on one host or several: where each program runs (`layout`), and what a host's
supervisord runs, derived from the per-program configs and the layout (`render`)."""
