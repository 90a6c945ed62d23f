"""Which requests are daemons' API calls: the one rule the browser layers, the daemons' stack and the handler share.

Imports nothing that needs settings: wsgi.py loads the handler before Django is set up.
"""

from __future__ import annotations

from typing import Any

DAEMON_API_PREFIX = "/api/v1/"


def is_daemon_call(path_info: str, meta: dict[str, Any]) -> bool:
    """A call to the daemons' API with a Bearer key (valid or not: the view decides)."""
    return path_info.startswith(DAEMON_API_PREFIX) and meta.get("HTTP_AUTHORIZATION", "")[:7].lower() == "bearer "
