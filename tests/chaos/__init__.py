"""bin/chaos: a soak that injects faults into a private cluster while clients check every answer.

- `layout.py`: which day folders make up each partition, read from the cluster's configs.
- `expected.py`: the oracle's answers, per partition, computed once before the soak.
- `workloads.py`: the requests the clients send, and the client loops that send them.
- `verdicts.py`: one answer classified against the oracle (pure).
- `faults.py`: one fault injected into one daemon, and the wait for it to serve again.
- `transitions.py`: health transitions explained by the injected faults (pure).
- `tally.py`: what the soak counted, as text or JSON.
- `soak.py`: one run: cluster, oracle, clients, faults, tally; `__main__.py` its command line.
"""
