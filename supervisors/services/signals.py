"""Django signals for integrators: a question was asked, a question was answered, state was saved.

They are sent after the transaction commits (``transaction.on_commit``), so a
receiver never announces a change that was rolled back, and with
``send_robust``, so a failing receiver (a chat webhook that is down) cannot
break the save. Hook a notification with::

    from django.dispatch import receiver
    from supervisors.services.signals import question_asked

    @receiver(question_asked)
    def tell_the_team(sender, *, contract_id, supervisor_id, question, **kwargs):
        ...

Keyword arguments:
* ``question_asked``: contract_id, supervisor_id, question (the PendingQuestion dict)
* ``question_answered``: contract_id, supervisor_id, question_id, question, answer,
  answered_by (the actor's label), actor (the :class:`~supervisors.services.actors.Actor`)
* ``state_saved``: contract_id, supervisor_id, reason (a SavePoint value), state
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal, receiver

logger = logging.getLogger("supervisors.events")

question_asked = Signal()
question_answered = Signal()
state_saved = Signal()


def send_on_commit(signal: Signal, **kwargs: Any) -> None:
    """Send ``signal`` once the current transaction commits (at once outside a transaction)."""

    def send() -> None:
        for receiver_fn, result in signal.send_robust(sender=signal, **kwargs):
            if isinstance(result, Exception):
                logger.error("Receiver %r of a supervisor signal failed: %r", receiver_fn, result)

    transaction.on_commit(send)


@receiver(question_asked, dispatch_uid="supervisors.log_question_asked")
def log_question_asked(sender: Any, *, contract_id: Any, question: dict[str, Any], **kwargs: Any) -> None:
    # The question's text is conversation content: it never goes to the logs (docs/operations.md).
    logger.info("question asked contract=%s question=%s", contract_id, question.get("id"))


@receiver(question_answered, dispatch_uid="supervisors.log_question_answered")
def log_question_answered(
    sender: Any, *, contract_id: Any, question_id: Any, answered_by: str = "", **kwargs: Any
) -> None:
    logger.info("question answered contract=%s question=%s by=%s", contract_id, question_id, answered_by)


@receiver(state_saved, dispatch_uid="supervisors.log_state_saved")
def log_state_saved(sender: Any, *, contract_id: Any, reason: str, state: str = "", **kwargs: Any) -> None:
    logger.info("state saved contract=%s reason=%s state=%s", contract_id, reason, state)
