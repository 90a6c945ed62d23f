from django.apps import AppConfig


class SupervisorsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "supervisors"
    verbose_name = "Supervisors"

    def ready(self) -> None:
        from supervisors import checks  # noqa: F401  (registers the system checks)
