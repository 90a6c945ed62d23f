"""The forms staff fill in on the supervisor pages."""

from __future__ import annotations

from typing import Any

from django import forms

from supervisors.enums import SupervisorStatus
from supervisors.forms import StorableForm, StorableJSONField, UUIDListFormField
from supervisors.models import SupervisorState
from supervisors.services.state import state_version

#: The fields staff may correct before restoring; the conversation is not edited here.
CORRECTABLE_FIELDS = (
    "state",
    "phase",
    "progress",
    "current_activity",
    "error_message",
    "spawned_task_ids",
    "pending_task_ids",
    "pending_questions",
)


class CorrectionForm(StorableForm):
    """Correct a supervisor's fields through ``update_supervisor_detailed_state``.

    Only the fields that differ from what the page showed are sent, with the
    version the page was rendered from: if the daemon wrote meanwhile, the
    service refuses (PreconditionFailed) instead of overwriting its write.
    """

    version = forms.CharField(widget=forms.HiddenInput)
    state = forms.ChoiceField(choices=SupervisorStatus.choices)
    phase = forms.CharField(max_length=50)
    progress = forms.IntegerField(min_value=0, max_value=100)
    current_activity = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 80}))
    error_message = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}))
    spawned_task_ids = UUIDListFormField(required=False, help_text="One task id per line.")
    pending_task_ids = UUIDListFormField(
        required=False, help_text="One task id per line; each must be among the spawned tasks."
    )
    pending_questions = StorableJSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
        help_text="A JSON array of PendingQuestion objects (camelCase).",
    )

    def __init__(self, *args: Any, supervisor: SupervisorState, **kwargs: Any) -> None:
        kwargs.setdefault("initial", self.initial_for(supervisor))
        super().__init__(*args, **kwargs)
        if supervisor.state not in SupervisorStatus.values:
            # Let staff see (and replace) a value the model does not know.
            self.fields["state"].choices = [
                (supervisor.state, f"{supervisor.state} (unknown)"),
                *SupervisorStatus.choices,
            ]

    @staticmethod
    def initial_for(supervisor: SupervisorState) -> dict[str, Any]:
        initial = {name: getattr(supervisor, name) for name in CORRECTABLE_FIELDS}
        initial["version"] = state_version(supervisor)
        return initial

    def changes(self) -> dict[str, Any]:
        """The corrected fields only, normalised as the service stores them."""
        changed: dict[str, Any] = {}
        for name in CORRECTABLE_FIELDS:
            value = self.cleaned_data.get(name)
            if name in ("current_activity", "error_message"):
                value = value or None
            if name == "pending_questions" and value is None:
                value = []
            if value != self.initial.get(name):
                changed[name] = value
        return changed


class AnswerForm(StorableForm):
    """Answer one pending question: a choice, or a typed answer (which wins when both are given)."""

    contract_id = forms.UUIDField(widget=forms.HiddenInput)
    question_id = forms.UUIDField(widget=forms.HiddenInput)
    choice = forms.CharField(required=False)
    answer = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))
    next = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        text = (data.get("answer") or "").strip() or (data.get("choice") or "").strip()
        if not text:
            raise forms.ValidationError("Pick a choice or type an answer.")
        data["text"] = text
        return data
