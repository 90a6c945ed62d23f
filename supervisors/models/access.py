"""How daemons prove who they are, and what a retried request already did."""

from __future__ import annotations

from django.db import models

from .supervisor import SupervisorState
from .world import Daemon


class DaemonApiKey(models.Model):
    """A daemon's API key. Only a SHA-256 of the key is stored; the key is shown once."""

    id = models.BigAutoField(primary_key=True)
    daemon = models.ForeignKey(Daemon, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=16, help_text="The key's first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "daemon_api_keys"
        verbose_name = "daemon API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.daemon})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class IdempotencyKey(models.Model):
    """The first answer to a request sent with an ``Idempotency-Key`` header, per daemon."""

    id = models.BigAutoField(primary_key=True)
    daemon = models.ForeignKey(Daemon, on_delete=models.CASCADE, related_name="idempotency_keys")
    key = models.CharField(max_length=255)
    supervisor = models.ForeignKey(SupervisorState, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    request_fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "idempotency_keys"
        constraints = [models.UniqueConstraint(fields=["daemon", "key"], name="idempotency_key_per_daemon")]

    def __str__(self) -> str:
        return f"{self.key} ({self.daemon_id})"


class RateCounter(models.Model):
    """One caller's request count in the current throttling window.

    Lives in the database so every process and instance counts the same
    requests; one UPSERT per request reads and bumps it atomically.
    """

    key = models.CharField(max_length=100, primary_key=True)
    window_start = models.BigIntegerField(help_text="Unix time at which the window opened.")
    count = models.IntegerField(default=0)

    class Meta:
        db_table = "api_rate_counters"

    def __str__(self) -> str:
        return f"{self.key}: {self.count} since {self.window_start}"
