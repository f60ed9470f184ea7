"""The gRPC services a daemon serves: thin translations between gRPC and the layers below.

node.py (airquality.v1.Node, every daemon), gateway.py (airquality.v1.AirQuality, the gateway),
health.py (HealthCheck, GetHealthStatus and the standard health service's status), requests.py
(every request's admission, deadline, cancellation and query_finished event), handlers.py (method
handlers built from the contract's descriptor).
"""
