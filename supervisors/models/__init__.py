"""The app's models, split by what they hold; import them from here."""

from .access import DaemonApiKey, IdempotencyKey, RateCounter
from .events import DaemonEvent, SupervisorEvent
from .history import ConversationSnapshot, QuestionAnswer, RestorationLog, SupervisorCheckpoint
from .jobs import PeriodicJob, RestoreJob, RestoreJobItem, WatchdogRun
from .metrics import MetricsSnapshot, SupervisorAttention
from .notifications import Delivery, Subscription
from .supervisor import HEARTBEAT_COLUMNS, HEAVY_COLUMNS, SupervisorState
from .world import Contract, Daemon, Task

__all__ = [
    "HEARTBEAT_COLUMNS",
    "HEAVY_COLUMNS",
    "Contract",
    "ConversationSnapshot",
    "Daemon",
    "DaemonApiKey",
    "DaemonEvent",
    "Delivery",
    "IdempotencyKey",
    "MetricsSnapshot",
    "PeriodicJob",
    "QuestionAnswer",
    "RateCounter",
    "RestorationLog",
    "RestoreJob",
    "RestoreJobItem",
    "Subscription",
    "SupervisorAttention",
    "SupervisorCheckpoint",
    "SupervisorEvent",
    "SupervisorState",
    "Task",
    "WatchdogRun",
]
