"""Security: the cluster's certificates (certs.py, bin/gen-certs) and who may call what (identity.py)."""
