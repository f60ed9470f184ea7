"""Values from outside (a client's request, a config file) shown in error messages, cut short.

An error names the bad value so that its sender can find it, but never echoes it whole: a client's
1 MB datetime came back as `RESOURCE_EXHAUSTED: received metadata size exceeds hard limit` instead
of its INVALID_ARGUMENT, because gRPC sends an error's details as metadata and they quoted it all.
"""

from __future__ import annotations

# Enough to recognise a date, a name or an address; the full length is given after a longer one.
SHOWN_CHARACTERS = 40


def quoted(value: str) -> str:
    """`repr(value)`; of a longer value only its first SHOWN_CHARACTERS, followed by its length."""
    if len(value) <= SHOWN_CHARACTERS:
        return repr(value)
    return f"{value[:SHOWN_CHARACTERS]!r}… ({len(value):,} characters)"
