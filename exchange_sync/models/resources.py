"""Resources (whose Outlook calendar is synced) and their outbound rules."""

from __future__ import annotations

from django.db import models

from connectors.fields import MultipleChoiceField

from .settings import Sensitivity, ShowAs


class RuleMatch(models.TextChoices):
    ALL = "all", "All rules must pass"
    ANY = "any", "Any rule may pass"


class RuleOperator(models.TextChoices):
    """Operators of an outbound rule (exchange_sync/rules.py evaluates them; no `eval`)."""

    EQUALS = "equals", "equals"
    NOT_EQUALS = "not_equals", "does not equal"
    CONTAINS = "contains", "contains"
    NOT_CONTAINS = "not_contains", "does not contain"
    STARTS_WITH = "starts_with", "starts with"
    ENDS_WITH = "ends_with", "ends with"
    IN = "in", "is one of (comma-separated)"
    NOT_IN = "not_in", "is none of (comma-separated)"
    GREATER_THAN = "gt", "is greater than"
    GREATER_OR_EQUAL = "gte", "is greater than or equal to"
    LESS_THAN = "lt", "is less than"
    LESS_OR_EQUAL = "lte", "is less than or equal to"
    IS_EMPTY = "is_empty", "is empty"
    IS_NOT_EMPTY = "is_not_empty", "is not empty"


class Resource(models.Model):
    """A planner resource and its mailbox.

    Created by an administrator or from the `resources` of incoming appointment events
    (exchange_sync/services.py, `resources_upsert`); sync stays off until someone turns it on.
    """

    source_app = models.CharField(max_length=30, db_index=True)
    resource_no = models.CharField("resource no", max_length=50)
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(
        "mailbox email", blank=True,
        help_text="The Exchange Online mailbox (user principal name or primary SMTP address).",
    )
    sync_enabled = models.BooleanField(
        "sync enabled", default=False,
        help_text="Keep this resource's Outlook calendar in sync with the planner.",
    )
    graph_user_id = models.CharField(
        "Graph user ID", max_length=100, blank=True, editable=False,
        help_text="The mailbox's user id in Microsoft Graph, once looked up.",
    )

    # Inbound privacy filters (blank override: the global default of ExchangeSettings)
    privacy_override = models.BooleanField(
        "own privacy filters", default=False,
        help_text="Use the filters below instead of the global default.",
    )
    shared_show_as = MultipleChoiceField(
        "shared show-as values", choices=ShowAs.choices, blank=True, default=list,
    )
    shared_sensitivities = MultipleChoiceField(
        choices=Sensitivity.choices, blank=True, default=list,
    )

    # Outbound rules (OutboundRule rows) combine with:
    rule_match = models.CharField(
        "rules combine", max_length=3, choices=RuleMatch.choices, default=RuleMatch.ALL,
        help_text="No rules: every appointment of this resource goes to Outlook.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["source_app", "resource_no"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_app", "resource_no"], name="resource_unique_per_source_app"
            )
        ]

    def __str__(self) -> str:
        label = f"{self.source_app}/{self.resource_no}"
        return f"{label} ({self.name})" if self.name else label


class OutboundRule(models.Model):
    """One condition on an appointment field: `field operator value` (exchange_sync/rules.py)."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="rules")
    position = models.PositiveSmallIntegerField(default=0)
    field = models.CharField(
        max_length=100,
        help_text="An appointment field (subject, category, job_no, …) or field_values.<name>.",
    )
    operator = models.CharField(max_length=20, choices=RuleOperator.choices)
    value = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["resource", "position", "id"]

    def __str__(self) -> str:
        return f"{self.field} {self.get_operator_display()} {self.value}".strip()
