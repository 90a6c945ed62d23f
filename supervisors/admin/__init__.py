"""Admin registrations. Every model is visible to staff; the supervisor pages are richer."""

from django.contrib import admin

from supervisors import models

for _model in (
    models.Contract,
    models.Daemon,
    models.Task,
    models.SupervisorState,
    models.SupervisorCheckpoint,
    models.ConversationSnapshot,
    models.QuestionAnswer,
    models.RestorationLog,
    models.DaemonApiKey,
    models.IdempotencyKey,
):
    admin.site.register(_model)
