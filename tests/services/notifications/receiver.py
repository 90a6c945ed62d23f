"""The webhook receiver the tests start on 127.0.0.1 (shared with the soak: ``soak/webhook.py``)."""

from soak.webhook import Received, Receiver, documented_verify

__all__ = ["Received", "Receiver", "documented_verify"]
