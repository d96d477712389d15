"""Action URIs: URI templates that take a planner from an appointment to its back-office record
(DESIGN.md, Action URIs; docs/ACTION_URIS.md). Placeholders, rendering and which template wins
live in connectors/action_uris.py."""

from __future__ import annotations

from collections.abc import Collection

from django.core.exceptions import ValidationError
from django.db import models


class UrlType(models.TextChoices):
    PLANNING_BOARD = "planning_board", "Planning board"
    APPOINTMENT = "appointment", "Appointment"
    TASK = "task", "Task"
    MAP = "map", "Map"


class RequestType(models.TextChoices):
    GET = "GET", "GET"
    POST = "POST", "POST (the query string is sent as form fields)"


ONE_DEFAULT = "action_uri_one_default"


class ActionUri(models.Model):
    source_app = models.CharField(
        max_length=30, db_index=True, help_text="The source app code whose appointments use it."
    )
    source_type = models.CharField(
        max_length=10,
        blank=True,
        help_text="Blank: every source type of the source app. A template of the appointment's "
        "own source type wins over one for every type.",
    )
    url_type = models.CharField("URL type", max_length=20, choices=UrlType.choices)
    template = models.CharField(
        max_length=2000,
        help_text="An absolute http(s) URI with placeholders, e.g. "
        "https://bc.example.com/?page=50&job=#JOBNO#&task=#TASKNO#.",
    )
    description = models.CharField(
        max_length=200, blank=True, help_text="The link's text (blank: the URL type)."
    )
    is_default = models.BooleanField(
        "default",
        default=False,
        help_text="At most one default per source app, source type and URL type; it is listed "
        "first.",
    )
    request_type = models.CharField(
        max_length=4, choices=RequestType.choices, default=RequestType.GET
    )

    class Meta:
        ordering = ["source_app", "source_type", "url_type", "-is_default", "id"]
        verbose_name = "action URI"
        constraints = [
            # source_type is "" (never NULL) when blank, so (app, "", type) compares as equal.
            models.UniqueConstraint(
                fields=["source_app", "source_type", "url_type"],
                condition=models.Q(is_default=True),
                name=ONE_DEFAULT,
                violation_error_message="Only one action URI may be the default per source app, "
                "source type and URL type.",
            )
        ]

    def __str__(self) -> str:
        scope = f"{self.source_app}/{self.source_type}" if self.source_type else self.source_app
        return f"{scope} {self.get_url_type_display()}: {self.description or self.template}"

    @property
    def label(self) -> str:
        return self.description or self.get_url_type_display()

    def clean(self) -> None:
        # Imported here: connectors.action_uris imports this module.
        from connectors.action_uris import other_default_message, template_errors

        self.source_app = self.source_app.strip()
        self.source_type = self.source_type.strip()
        errors: dict[str, list[str]] = {}
        if self.template:
            messages = template_errors(
                self.template,
                request_type=self.request_type,
                source_app=self.source_app,
                source_type=self.source_type,
            )
            if messages:
                errors["template"] = messages
        if self.is_default and (message := other_default_message(self)):
            errors["is_default"] = [message]
        if errors:
            raise ValidationError(errors)

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        # clean() reports a second default with a message naming the first one; the database
        # constraint (ONE_DEFAULT) stays as the guard against races and would only repeat it.
        super().validate_constraints(exclude={*(exclude or ()), "is_default"})
