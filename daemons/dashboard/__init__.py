"""The gateway's live web dashboard: what it shows (picture.py), how it keeps it current and pushes
it to pages (live.py), and the page itself (static/: plain HTML, CSS and JavaScript, no build)."""
