import os

# numpy's OpenBLAS starts a thread per core as it is imported, and those threads spin for a while:
# no daemon multiplies matrices, and importing the daemon took 0.06-0.24 s more CPU with them, at
# a start where six daemons and their monitors share the cores (measured 2026-12-01). Set here, in
# the daemon's entry point, before numpy is imported, and not in the package, which Python users
# import into programs that may want their BLAS threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from daemons.server import main

main()
