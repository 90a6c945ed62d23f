from django.apps import AppConfig


class SupervisorsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "supervisors"
    verbose_name = "Supervisors"

    def ready(self) -> None:
        from django.db.models.signals import pre_migrate

        from supervisors import checks  # noqa: F401  (registers the system checks)
        from supervisors.makima_schema import check_before_migrate

        # Refuse to adopt a makima database that lacks something before migrate writes anything at all.
        pre_migrate.connect(check_before_migrate, sender=self, dispatch_uid="supervisors.makima_schema")
