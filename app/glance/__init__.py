"""Calls out to the cloud's Glance (v2): v1 writes carried out with the caller's own token.

Three rooms, kept apart (docs/api.md, "Writes"): gateway.py, the one HTTP
client for Glance (its address, the caller's token, timeouts, streaming);
translation.py, pure functions from v1 headers to v2 calls and back; and
the routes (app/images/writes.py), which apply each result to the catalogue
at once (app/loading/mirror.py's apply_images).
"""
