"""Which requests are daemons' API calls: the one rule the browser layers, the daemons' stack and the handler share.

Health probes take the daemons' short path too (:func:`takes_short_path`): a
load balancer asks for them every few seconds per instance, they need no
session, user, message or CSRF layer, and their answer is the service's floor.

Imports nothing that needs settings: wsgi.py loads the handler before Django is set up.
"""

from __future__ import annotations

from typing import Any

DAEMON_API_PREFIX = "/api/v1/"


def is_daemon_call(path_info: str, meta: dict[str, Any]) -> bool:
    """A call to the daemons' API with a Bearer key (valid or not: the view decides)."""
    return path_info.startswith(DAEMON_API_PREFIX) and meta.get("HTTP_AUTHORIZATION", "")[:7].lower() == "bearer "


#: Load balancers' and orchestrators' probes (no auth, no cookies): served by the daemons' short stack.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


def takes_short_path(path_info: str, meta: dict[str, Any]) -> bool:
    """A daemon's API call or a health probe (GET or HEAD): the requests the daemons' stack and handler serve.

    Another method on a probe's path keeps the whole chain, so it is answered as before (the CSRF layer's
    403 for a POST comes before the view's 405).
    """
    if path_info in PROBE_PATHS:
        return meta.get("REQUEST_METHOD") in ("GET", "HEAD")
    return is_daemon_call(path_info, meta)
