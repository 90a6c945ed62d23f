"""The Django admin for staff: supervisors at a glance, restore with confirmation, answer questions.

Modules: ``supervisor`` (list and page), ``actions`` (restore, start fresh,
validate, re-deliver), ``questions`` (the pending-questions page),
``dashboard``, ``restore_jobs`` (restore jobs' pages, every supervisor of a
daemon), ``world`` (contracts, tasks, daemons, keys and the records the
services keep). Registration happens on import.
"""

from . import notifications, restore_jobs, supervisor, world  # noqa: F401
