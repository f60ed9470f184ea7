"""What a first start cannot go below on this machine: the floor under the first-start figure.

A first start runs twelve interpreters at once: six daemons and their six monitor processes. Here
twelve bare ones stand in for them, all started together: every one imports the libraries its
counterpart cannot do without (gRPC and protobuf; numpy for a daemon), and one per partition of
the shipped configs also imports pyarrow and reads that partition's CSVs with Arrow's reader, as
the daemon that parses it does. Nothing else: no config, no event log, no metrics, no server, no
checks, no cache. On 2 cores their CPU, not their waiting, sets the wall time.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from daemons.config import load_config
from tests.cluster import ETC, PROGRAMS

MONITOR = "import grpc, grpc.aio, google.protobuf"
DAEMON = "import grpc, numpy, google.protobuf"
PARSER = """
import io, pathlib, sys
import grpc, numpy, google.protobuf
import pyarrow.csv as csv
days = sys.argv[2].split(",")
data = b"".join(path.read_bytes() for day in days for path in sorted(pathlib.Path(sys.argv[1], day).glob("*.csv")))
csv.read_csv(io.BytesIO(data), csv.ReadOptions(autogenerate_column_names=True, use_threads=False))
"""


def partitions() -> dict[str, tuple[str, ...]]:
    """Each partition of the shipped configs, with its days."""
    configs = [load_config(ETC / f"{program}.json") for program in PROGRAMS]
    return {spec.name: spec.days for config in configs if config.data is not None for spec in config.data.partitions}


def floor(data_root: Path, runs: int = 3) -> float:
    """Median seconds for the twelve stand-ins, started together, to have all ended."""
    shares = list(partitions().values())

    def once() -> float:
        started = time.perf_counter()
        parsers = [[sys.executable, "-c", PARSER, str(data_root), ",".join(share)] for share in shares]
        others = ([[sys.executable, "-c", DAEMON]] * (len(PROGRAMS) - len(parsers))
                  + [[sys.executable, "-c", MONITOR]] * len(PROGRAMS))
        # as the daemons' entry point does: numpy without OpenBLAS's spinning threads
        environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        processes = [subprocess.Popen(command, env=environment) for command in parsers + others]
        try:
            failed = [process.args for process in processes if process.wait(120) != 0]
        finally:
            for process in processes:  # any still running after a wait ran out
                process.kill()
        if failed:
            raise RuntimeError(f"a stand-in failed: {failed[0]}")
        return time.perf_counter() - started

    return statistics.median(once() for _ in range(runs))
