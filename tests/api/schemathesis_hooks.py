"""schemathesis hooks for the live run (SCHEMATHESIS_HOOKS=tests.api.schemathesis_hooks).

The schema's links send a supervisor's ``restorationCount`` back as its
``Supervisor-Epoch`` header, as a daemon does. schemathesis 4.32 puts the value it
read from the JSON body (an integer) into the header as it is, and the HTTP
library refuses a header that is not text ("Network Error"). A header is text
on the wire: this hook writes such values as the decimal text a client sends.
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.headers:
        for name, value in list(case.headers.items()):
            if isinstance(value, int) and not isinstance(value, bool):
                case.headers[name] = str(value)
