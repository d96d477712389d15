"""What the Exchange sync admin does and reads, kept out of the admin classes.

`resource_sync_set` is where turning sync on or off happens for the admin's bulk actions; the
mailbox subscriptions (inbound sync) hook in here when they are created and removed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone

from connectors.models import Appointment

from . import services
from .models import OutboundRule, Resource, RuleMatch
from .rules import evaluate, validate_rule

PREVIEW_LIMIT = 20
MAX_PREVIEW_RULES = 100  # rule rows read from a posted form


def resource_sync_set(*, queryset: QuerySet[Resource], enabled: bool) -> int:
    """Turn sync on or off for the resources; returns how many changed (those already so are
    left alone). Their appointments are pushed (events appear or go) and their mailbox
    subscriptions reconciled after commit (services.resources_changed)."""
    changing = list(queryset.exclude(sync_enabled=enabled))
    count = Resource.objects.filter(pk__in=[r.pk for r in changing]).update(
        sync_enabled=enabled, updated_at=timezone.now()
    )
    for resource in changing:
        resource.sync_enabled = enabled
    services.resources_changed(resources=changing)
    return count


def resource_recent_appointments(resource: Resource,
                                 limit: int = PREVIEW_LIMIT) -> list[Appointment]:
    """The most recently changed appointments of the resource's source app that were assigned
    to it (through the `AppointmentResource` index), deleted ones left out."""
    if not resource.source_app or not resource.resource_no:
        return []
    return list(
        Appointment.objects.filter(
            source_app=resource.source_app, deleted=False,
            resource_nos__resource_no=resource.resource_no,
        ).distinct().order_by("-state_at", "-id")[:limit]
    )


@dataclass
class PreviewRow:
    appointment: Appointment
    passed: bool
    reasons: list[str]


@dataclass
class RulesPreview:
    rows: list[PreviewRow] = field(default_factory=list)
    rules: list[OutboundRule] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # rules of the form that are not valid
    rule_match: str = RuleMatch.ALL


def rules_preview(resource: Resource, rules: Sequence[OutboundRule] | None = None,
                  limit: int = PREVIEW_LIMIT) -> RulesPreview:
    """The resource's recent appointments, each with whether it goes to Outlook and why.
    `rules`: the saved ones when None."""
    chosen = list(resource.rules.all()) if rules is None else list(rules)
    rows = []
    for appointment in resource_recent_appointments(resource, limit):
        outcome = evaluate(resource, appointment.data or {}, chosen)
        rows.append(PreviewRow(appointment, outcome.passed, outcome.reasons))
    return RulesPreview(rows=rows, rules=chosen, rule_match=resource.rule_match)


def posted_rules(data: Mapping[str, Any], prefix: str = "rules") -> tuple[list[OutboundRule],
                                                                          list[str]]:
    """The unsaved rules of a posted resource form (its inline rows, those not deleted or
    blank), ordered by position, and what is wrong with the invalid ones (left out)."""
    try:
        total = min(int(data.get(f"{prefix}-TOTAL_FORMS") or 0), MAX_PREVIEW_RULES)
    except ValueError:
        total = 0
    rules: list[tuple[int, int, OutboundRule]] = []
    errors = []
    for index in range(total):
        key = f"{prefix}-{index}-"
        name = str(data.get(key + "field") or "").strip()
        operator = str(data.get(key + "operator") or "")
        value = str(data.get(key + "value") or "")
        if data.get(key + "DELETE") or not (name or operator or value.strip()):
            continue
        try:
            validate_rule(name, operator, value)
        except ValidationError as exc:  # shown, and the rule left out
            errors.append(f"Rule {index + 1} ({name or 'no field'}): {' '.join(exc.messages)}")
            continue
        try:
            position = int(data.get(key + "position") or 0)
        except ValueError:
            position = 0
        rules.append((position, index, OutboundRule(field=name, operator=operator, value=value,
                                                    position=position)))
    return [rule for _, _, rule in sorted(rules, key=lambda item: item[:2])], errors


def draft_resource(data: Mapping[str, Any], saved: Resource | None) -> Resource:
    """An unsaved resource with the posted identity and rule_match (for a preview)."""
    draft = Resource(
        source_app=str(data.get("source_app") or (saved.source_app if saved else "")).strip(),
        resource_no=str(data.get("resource_no") or (saved.resource_no if saved else "")).strip(),
        rule_match=str(data.get("rule_match") or RuleMatch.ALL),
    )
    if draft.rule_match not in RuleMatch.values:
        draft.rule_match = RuleMatch.ALL
    return draft
