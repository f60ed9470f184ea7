"""`python -m daemons.health OBSERVER FD`: a daemon's monitor process (process.py), which its
daemon starts; the observer's name is there for `ps`."""

import sys

from daemons.health.process import main

sys.exit(main(sys.argv[1:]))
