"""Soak harness: many simulated daemons against the real service under gunicorn and PostgreSQL.

``python -m soak --help`` runs it; docs/soak.md explains the figures. The
pieces: ``server`` starts gunicorn, ``client`` speaks HTTP and records every
request, ``simulation`` plays daemons and a human, ``invariants`` checks the
database afterwards, ``report`` prints the table.
"""
