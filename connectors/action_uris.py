"""Action URIs: placeholders, template validation, rendering and which templates apply
(DESIGN.md, Action URIs; docs/ACTION_URIS.md).

A template is an absolute http(s) URI with placeholders such as `#JOBNO#`. Each value is
percent-encoded as one opaque component (RFC 3986: everything but `A-Z a-z 0-9 - . _ ~`, UTF-8
first), so a value cannot add a path segment, a query parameter or a fragment. A `#` that does
not open a placeholder stays as it is (a fragment, e.g. `https://app/#/jobs/#JOBNO#`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils.dateparse import parse_datetime

from connectors.compat import CrudType
from connectors.models import ActionUri, Appointment, RequestType, UrlType

PLACEHOLDERS: tuple[str, ...] = (
    "SOURCEAPP", "SOURCETYPE", "JOBNO", "TASKNO", "APPOINTMENTID", "APPOINTMENTGUID",
    "RESOURCE", "START", "END", "DATABASEACTION",
)
KNOWN = " ".join(f"#{name}#" for name in PLACEHOLDERS)
DATABASE_ACTIONS: dict[str, str] = {
    CrudType.CREATE: "A", CrudType.UPDATE: "E", CrudType.DELETE: "D",
}

# The built-in sample appointment of validation and the admin preview.
SAMPLE_VALUES: dict[str, str] = {
    "SOURCEAPP": "BCPROD",
    "SOURCETYPE": "SERVICE",
    "JOBNO": "J-1001",
    "TASKNO": "T-10",
    "APPOINTMENTID": "123",
    "APPOINTMENTGUID": "6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
    "RESOURCE": "R1",
    "START": "2026-11-21T09:00:00Z",
    "END": "2026-11-21T11:00:00Z",
    "DATABASEACTION": "E",
}

_TOKEN = re.compile(r"#([A-Za-z][A-Za-z0-9_]*)#")
_WORD_AFTER = re.compile(r"#([A-Za-z][A-Za-z0-9_]*)")
_WORD_BEFORE = re.compile(r"(?<![A-Za-z0-9_])([A-Za-z][A-Za-z0-9_]*)$")
_HTTP_URI = URLValidator(schemes=["http", "https"])


@dataclass(frozen=True)
class RenderedActionUri:
    """One action URI filled in for one appointment.

    For POST, `uri` is the rendered URI without its query string, and `form_fields` holds that
    query string's fields (decoded) to send as an `application/x-www-form-urlencoded` body.
    """

    url_type: str
    url_type_label: str
    description: str
    uri: str
    request_type: str
    is_default: bool
    form_fields: dict[str, str] = field(default_factory=dict)
    action_uri_id: int | None = None  # the ActionUri it was rendered from

    @property
    def is_http(self) -> bool:
        """Safe to use as a link: http(s) only (saved templates are; a guard all the same)."""
        return self.uri.lower().startswith(("http://", "https://"))


# --- Parsing and validation ------------------------------------------------------------------


@dataclass
class _Parsed:
    pieces: list[tuple[bool, str]]  # (is a placeholder, literal text or placeholder name)
    unknown: list[str]
    errors: list[str]


def _parse(template: str) -> _Parsed:
    """Split a template into literals and placeholders, noting what looks like a mistake."""
    parsed = _Parsed([], [], [])
    pos = literal_from = 0
    while (at := template.find("#", pos)) != -1:
        token = _TOKEN.match(template, at)
        if token and token.group(1) in PLACEHOLDERS:
            parsed.pieces += [(False, template[literal_from:at]), (True, token.group(1))]
            pos = literal_from = token.end()
            continue
        # `#top#JOBNO#`: the second `#` opens a placeholder, so the first one is a literal.
        if token and not _opens_placeholder(template, token.end() - 1):
            parsed.unknown.append(token.group(0))
            pos = token.end()
            continue
        _check_stray(template, at, literal_from, parsed.errors)
        pos = at + 1
    parsed.pieces.append((False, template[literal_from:]))
    return parsed


def _opens_placeholder(template: str, at: int) -> bool:
    token = _TOKEN.match(template, at)
    return bool(token and token.group(1) in PLACEHOLDERS)


def _check_stray(template: str, at: int, literal_from: int, errors: list[str]) -> None:
    """A lone `#` is a literal, unless it is half of a placeholder (`#JOBNO`, `JOBNO#`)."""
    after = _WORD_AFTER.match(template, at)
    if after and after.group(1) in PLACEHOLDERS:
        errors.append(f"#{after.group(1)} is missing its closing #: write #{after.group(1)}#.")
        return
    before = _WORD_BEFORE.search(template[literal_from:at])
    if before and before.group(1) in PLACEHOLDERS:
        errors.append(f"{before.group(1)}# is missing its opening #: write #{before.group(1)}#.")


def _unknown_messages(unknown: list[str]) -> list[str]:
    messages, rest = [], []
    for token in dict.fromkeys(unknown):
        name = token.strip("#")
        if name.upper() in PLACEHOLDERS:
            messages.append(f"Placeholders are upper case: write #{name.upper()}#, not {token}.")
        else:
            rest.append(token)
    if rest:
        noun = "placeholder" if len(rest) == 1 else "placeholders"
        messages.append(f"Unknown {noun} {', '.join(rest)}. Known placeholders: {KNOWN}.")
    return messages


def template_errors(
    template: str, *, request_type: str = RequestType.GET, source_app: str = "",
    source_type: str = "",
) -> list[str]:
    """What is wrong with a template, as messages for an administrator ([] when it is valid).

    Checks the placeholders, then that the template filled in with the sample appointment (of
    this source app and type) is an absolute http(s) URI, and for POST that each form field
    is named once.
    """
    parsed = _parse(template)
    errors = _unknown_messages(parsed.unknown) + parsed.errors
    if errors:
        return errors
    uri = render_template(template, sample_values(source_app=source_app, source_type=source_type))
    try:
        _HTTP_URI(uri)
    except ValidationError:
        return [
            "The template must give an absolute http(s) URI (starting with https:// or "
            f"http://); with the sample appointment it gives “{uri}”."
        ]
    if request_type == RequestType.POST:
        names = [name for name, _ in parse_qsl(urlsplit(uri).query, keep_blank_values=True)]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            return [
                "A POST template names each form field once in its query string; given more "
                f"than once: {', '.join(twice)}."
            ]
    return []


def other_default_message(action_uri: ActionUri) -> str | None:
    """The message for a second default of (source app, source type, URL type), or None."""
    other = (
        ActionUri.objects.filter(
            source_app=action_uri.source_app,
            source_type=action_uri.source_type,
            url_type=action_uri.url_type,
            is_default=True,
        )
        .exclude(pk=action_uri.pk)
        .first()
    )
    if other is None:
        return None
    scope = (
        f"source type {action_uri.source_type}" if action_uri.source_type
        else "all source types"
    )
    return (
        f"“{other.label}” (#{other.pk}) is already the default "
        f"{action_uri.get_url_type_display().lower()} action URI of source app "
        f"{action_uri.source_app}, {scope}. Only one may be the default: untick “default” "
        "here, or on that one first."
    )


# --- Rendering -------------------------------------------------------------------------------


def render_template(template: str, values: Mapping[str, str]) -> str:
    """The template with each placeholder replaced by its percent-encoded value."""
    return "".join(
        quote(values.get(text, ""), safe="") if is_placeholder else text
        for is_placeholder, text in _parse(template).pieces
    )


def sample_values(*, source_app: str = "", source_type: str = "") -> dict[str, str]:
    values = dict(SAMPLE_VALUES)
    if source_app:
        values["SOURCEAPP"] = source_app
        values["SOURCETYPE"] = source_type
    return values


def _utc(value: Any) -> str:
    """A stored time as ISO 8601 UTC with Z ("" when there is none; naive means UTC)."""
    when = parse_datetime(value) if isinstance(value, str) else None
    if when is None:
        return ""
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _first_resource(data: Mapping[str, Any]) -> str:
    resources = data.get("resources") or []
    first = resources[0] if isinstance(resources, list) and resources else None
    return str(first.get("resource_no") or "") if isinstance(first, Mapping) else ""


def latest_action(appointment: Appointment) -> str:
    """The action of the newest event that set the appointment's state (create, update or
    delete); without one, delete for a deleted appointment, else update."""
    action = (
        appointment.events.filter(stale=False)
        .order_by("-occurred_at", "-id")
        .values_list("action", flat=True)
        .first()
    )
    if action in DATABASE_ACTIONS:
        return str(action)
    return CrudType.DELETE if appointment.deleted else CrudType.UPDATE


def appointment_values(appointment: Appointment, *, action: str | None = None) -> dict[str, str]:
    """Each placeholder's raw (not yet encoded) value for an appointment."""
    data = appointment.data if isinstance(appointment.data, Mapping) else {}
    return {
        "SOURCEAPP": appointment.source_app,
        "SOURCETYPE": appointment.source_type,
        "JOBNO": appointment.job_no,
        "TASKNO": appointment.task_no,
        "APPOINTMENTID": "" if appointment.appointment_id is None
        else str(appointment.appointment_id),
        "APPOINTMENTGUID": str(appointment.guid),
        "RESOURCE": _first_resource(data),
        "START": _utc(data.get("start")),
        "END": _utc(data.get("end")),
        "DATABASEACTION": DATABASE_ACTIONS[action or latest_action(appointment)],
    }


def render(action_uri: ActionUri, values: Mapping[str, str]) -> RenderedActionUri:
    uri = render_template(action_uri.template, values)
    form_fields: dict[str, str] = {}
    if action_uri.request_type == RequestType.POST:
        parts = urlsplit(uri)
        form_fields = dict(parse_qsl(parts.query, keep_blank_values=True))
        uri = urlunsplit(parts._replace(query=""))
    return RenderedActionUri(
        url_type=action_uri.url_type,
        url_type_label=action_uri.get_url_type_display(),
        description=action_uri.label,
        uri=uri,
        request_type=action_uri.request_type,
        is_default=action_uri.is_default,
        form_fields=form_fields,
        action_uri_id=action_uri.pk,
    )


# --- Which templates apply -------------------------------------------------------------------


def applicable_action_uris(source_app: str, source_type: str) -> list[ActionUri]:
    """Per URL type (in UrlType order), the templates of the source app and this source type,
    or, when there are none, those of the source app for every type; the default first, then
    by id."""
    rows = list(
        ActionUri.objects.filter(source_app=source_app, source_type__in={source_type, ""})
    )
    chosen: list[ActionUri] = []
    for url_type in UrlType.values:
        of_type = [row for row in rows if row.url_type == url_type]
        group = [row for row in of_type if row.source_type] or of_type
        chosen += sorted(group, key=lambda row: (not row.is_default, row.pk))
    return chosen


def action_uris_for(
    appointment: Appointment, *, action: str | None = None
) -> list[RenderedActionUri]:
    """The appointment's action URIs, rendered, most specific templates only (see
    applicable_action_uris).

    `action` (create, update or delete) fills #DATABASEACTION#; without it, the action of
    the appointment's latest applied event (latest_action). Raises ValueError for another
    action.
    """
    if action is not None and action not in DATABASE_ACTIONS:
        raise ValueError(f"Unknown action {action!r}: expected create, update or delete.")
    templates = applicable_action_uris(appointment.source_app, appointment.source_type)
    if not templates:
        return []
    values = appointment_values(appointment, action=action)
    return [render(action_uri, values) for action_uri in templates]


# --- The admin's preview ---------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """A template rendered before it is saved: `rendered`, or the `errors` that prevent it."""

    errors: list[str]
    appointment: str  # what it was rendered for, as the page says it
    rendered: RenderedActionUri | None = None


def find_appointment(reference: str, *, source_app: str = "") -> Appointment:
    """The stored appointment with this GUID or appointment no (the newest of several), of
    `source_app` when given. Raises ValidationError with the message an administrator sees."""
    reference = reference.strip()
    match: dict[str, Any]
    try:
        match = {"guid": uuid.UUID(reference)}
    except ValueError:
        match = {"appointment_no": reference}
    appointment = Appointment.objects.filter(**match).order_by("-updated_at", "-id").first()
    if appointment is None:
        raise ValidationError(
            f"No stored appointment has the GUID or appointment no “{reference}”."
        )
    if source_app and appointment.source_app != source_app:
        raise ValidationError(
            f"Appointment “{reference}” belongs to source app {appointment.source_app}, not "
            f"{source_app}: pick one of {source_app}, or leave it blank for the sample."
        )
    return appointment


def action_uri_preview(action_uri: ActionUri, *, appointment_reference: str = "") -> Preview:
    """Render an unsaved template for a stored appointment (by GUID or appointment no) or, when
    the reference is blank, for the built-in sample; the template is validated as on save."""
    source_app, source_type = action_uri.source_app.strip(), action_uri.source_type.strip()
    if not action_uri.template.strip():
        return Preview(["Enter a template to preview."], "")
    errors = template_errors(
        action_uri.template, request_type=action_uri.request_type, source_app=source_app,
        source_type=source_type,
    )
    if not appointment_reference.strip():
        values, label = sample_values(source_app=source_app, source_type=source_type), "sample"
    else:
        try:
            appointment = find_appointment(appointment_reference, source_app=source_app)
        except ValidationError as exc:
            return Preview([*errors, *exc.messages], "")
        values, label = appointment_values(appointment), str(appointment)
    if errors:
        return Preview(errors, label)
    return Preview([], label, render(action_uri, values))
