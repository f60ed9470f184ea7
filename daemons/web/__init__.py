"""What a daemon serves over HTTP: Prometheus metrics, and at the gateway the live dashboard."""
