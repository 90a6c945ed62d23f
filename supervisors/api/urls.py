"""The daemons' API, under /api/v1/."""

from __future__ import annotations

from django.urls import path

from .views import claims, daemons, questions, resume, supervisor, world

SUPERVISOR = "contracts/<str:contractId>/supervisor/"

urlpatterns = [
    path(SUPERVISOR, supervisor.SupervisorView.as_view(), name="supervisor"),
    path(f"{SUPERVISOR}conversation/", supervisor.ConversationView.as_view(), name="supervisor-conversation"),
    path(f"{SUPERVISOR}heartbeat/", supervisor.HeartbeatView.as_view(), name="supervisor-heartbeat"),
    path(f"{SUPERVISOR}spawned-tasks/", supervisor.SpawnedTaskView.as_view(), name="supervisor-spawned-tasks"),
    path(f"{SUPERVISOR}phase/", supervisor.PhaseView.as_view(), name="supervisor-phase"),
    path(f"{SUPERVISOR}questions/", questions.QuestionsView.as_view(), name="supervisor-questions"),
    path(f"{SUPERVISOR}questions/<str:questionId>/", questions.QuestionView.as_view(), name="supervisor-question"),
    path(
        f"{SUPERVISOR}questions/<str:questionId>/answer/",
        questions.AnswerView.as_view(),
        name="supervisor-question-answer",
    ),
    path(f"{SUPERVISOR}answers/", questions.AnswersView.as_view(), name="supervisor-answers"),
    path(f"{SUPERVISOR}answers/<str:questionId>/ack/", questions.AnswerAckView.as_view(), name="supervisor-answer-ack"),
    path(f"{SUPERVISOR}resume/", resume.ResumeView.as_view(), name="supervisor-resume"),
    path(f"{SUPERVISOR}validation/", supervisor.ValidationView.as_view(), name="supervisor-validation"),
    path("daemons/me/", daemons.DaemonMeView.as_view(), name="daemon-me"),
    path("daemons/me/heartbeat/", daemons.DaemonHeartbeatView.as_view(), name="daemon-heartbeat"),
    path("supervisors/", world.SupervisorsView.as_view(), name="supervisors"),
    path("supervisors/claim/", claims.ClaimView.as_view(), name="supervisors-claim"),
    path("supervisors/pending-questions/", world.PendingQuestionsView.as_view(), name="pending-questions"),
    path("contracts/", world.ContractsView.as_view(), name="contracts"),
    path("contracts/<str:contractId>/", world.ContractView.as_view(), name="contract"),
    path("tasks/", world.TasksView.as_view(), name="tasks"),
    path("tasks/<str:taskId>/", world.TaskView.as_view(), name="task"),
    path("tasks/<str:taskId>/status/", world.TaskStatusView.as_view(), name="task-status"),
]
