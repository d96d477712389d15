"""Legacy "Multi back office" rows (seed connections-multi-backoffice.txt) as connector specs.

A row has a source application, a "send appointments" flag, a web service URI, a back office
type and a login and password. Each becomes a SOAP connector (the legacy multi back office wrote
through SOAP page web services) for all CRUD types, named after its source app; the login and
password decide the authentication:

- both blank: the service account (`none`);
- a tenant ID (GUID or domain) and `client_id=…&client_secret=…`: Microsoft Entra ID, the form
  the seed prescribes for Business Central online;
- `DOMAIN\\user` on NAV or Business Central on-prem: NTLM (Windows credentials);
- anything else: basic.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from connectors.compat import ApiType, AuthType, ConnectorType
from connectors.models import all_crud_types
from connectors.services import SPEC_FIELDS, ConnectorSpec

from .common import FieldError, InputError, Parsed, json_type, parse_json

COLUMNS: tuple[str, ...] = (
    "source_app", "send_appointments", "web_service", "back_office", "login", "password",
)
CAPTIONS: dict[str, str] = {
    "source_app": "Source Application",
    "send_appointments": "Send appointments to back office",
    "web_service": "Web Service",
    "back_office": "Back Office",
    "login": "Login",
    "password": "Password",
}
# Absent login/password columns mean blank credentials; the others must be there.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "source_app", "send_appointments", "web_service", "back_office",
)

_HEADERS: dict[str, str] = {
    **{column: column for column in COLUMNS},
    **{caption.lower(): column for column, caption in CAPTIONS.items()},
}

BACK_OFFICE_CODES: tuple[str, ...] = (
    ConnectorType.NAV, ConnectorType.BC_ONPREM, ConnectorType.BC_ONLINE,
)
_BACK_OFFICES: dict[str, str] = {
    "nav": ConnectorType.NAV,
    "microsoft dynamics nav": ConnectorType.NAV,
    "dynamics nav": ConnectorType.NAV,
    "bc_onprem": ConnectorType.BC_ONPREM,
    "business central on-prem": ConnectorType.BC_ONPREM,
    "business central on-premise": ConnectorType.BC_ONPREM,
    "business central on-premises": ConnectorType.BC_ONPREM,
    "bc on-prem": ConnectorType.BC_ONPREM,
    "bc_online": ConnectorType.BC_ONLINE,
    "business central online": ConnectorType.BC_ONLINE,
    "business central saas": ConnectorType.BC_ONLINE,
    "bc online": ConnectorType.BC_ONLINE,
    "bc saas": ConnectorType.BC_ONLINE,
}
_YES = {"true", "yes", "y", "1", "x"}
_NO = {"false", "no", "n", "0", ""}

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_DOMAIN = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.I)
_CLIENT_KEYS = {"client_id", "client_secret"}

# Model fields named in validation errors -> the legacy column the value came from.
FIELD_NAMES: dict[str, str] = {
    "name": "source_app",
    "type": "back_office",
    "enabled": "send_appointments",
    "uri": "web_service",
    "tenant_id": "login",
    "client_id": "password",
    "client_secret": "password",
}


class ColumnError(FieldError):
    """A value of one column is unusable."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


@dataclass
class Row:
    """One legacy row: where it is ("row 3" in a CSV, "entry 3" in JSON) and its cells."""

    position: int
    label: str
    cells: dict[str, Any] = field(default_factory=dict)
    problem: str = ""  # what makes the whole row unreadable, if anything


def parse(path: str, text: str) -> Parsed:
    """Specs for every row of a CSV or JSON file; raises InputError for an unusable file."""
    rows = _json_rows(text) if _is_json(path, text) else _csv_rows(text)
    if not rows:
        raise InputError(["the file has no rows"])
    parsed = Parsed()
    for row, name in zip(rows, _names(rows), strict=True):
        if row.problem:
            parsed.errors.append((row.position, f"{row.label}: {row.problem}"))
            continue
        values, errors = row_values(row.label, row.cells)
        parsed.errors.extend(
            (row.position, f"{row.label}: {column}: {message}") for column, message in errors
        )
        if not errors:
            values["name"] = name
            ordered = {key: values[key] for key in SPEC_FIELDS if key in values}
            parsed.specs.append((row.position, ConnectorSpec(label=row.label, values=ordered)))
    return parsed


def _is_json(path: str, text: str) -> bool:
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".json"):
        return suffix == ".json"
    return text.lstrip()[:1] in ("[", "{")


def _column(header: str) -> str | None:
    return _HEADERS.get(" ".join(header.split()).lower())


def _csv_rows(text: str) -> list[Row]:
    """Rows keyed by column; the position is the row's first line (the header is row 1)."""
    first_line = text.split("\n", 1)[0]
    delimiter = max((";", ",", "\t"), key=first_line.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    headers = [header for header in (reader.fieldnames or []) if header.strip()]
    if not headers:
        raise InputError([f"the file is empty; expected a header row with: {', '.join(COLUMNS)}"])
    _check_headers(headers)
    rows: list[Row] = []
    for record in reader:
        cells = [value for value in record.values() if isinstance(value, str)]
        extra = [value for value in record.get(None, []) if value.strip()]
        if not any(value.strip() for value in cells) and not extra:
            continue  # a blank line, or one of only delimiters
        # The row's first line: a quoted cell may span lines (reader.line_num is the last).
        line = reader.line_num - sum(value.count("\n") for value in cells + extra)
        row = Row(line, f"row {line}")
        if extra:
            row.problem = "has more fields than the header row"
        else:
            row.cells = {
                str(_column(header)): value or ""
                for header, value in record.items()
                if header and header.strip()
            }
        rows.append(row)
    return rows


def _check_headers(headers: list[str]) -> None:
    errors = []
    columns = [_column(header) for header in headers]
    for header, column in zip(headers, columns, strict=True):
        if column is None:
            errors.append(
                f"header: '{header.strip()}' is not a known column; expected "
                f"{', '.join(COLUMNS)} or the captions {', '.join(CAPTIONS.values())}"
            )
    for column, count in Counter(c for c in columns if c).items():
        if count > 1:
            errors.append(f"header: column {column} appears {count} times")
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        names = ", ".join(f"{column} ({CAPTIONS[column]})" for column in missing)
        errors.append(f"header: missing column{'s' if len(missing) > 1 else ''} {names}")
    if errors:
        raise InputError(errors)


def _json_rows(text: str) -> list[Row]:
    data = parse_json(text)
    if not isinstance(data, list):
        raise InputError([f"expected a JSON list of row objects, not {json_type(data)}"])
    rows: list[Row] = []
    for number, entry in enumerate(data, start=1):
        row = Row(number, f"entry {number}")
        if not isinstance(entry, dict):
            row.problem = f"expected an object, not {json_type(entry)}"
        else:
            for key, value in entry.items():
                column = _column(key) or key
                if column in row.cells:
                    row.problem = f"{column}: is given twice"
                row.cells[column] = value
        rows.append(row)
    return rows


def _names(rows: list[Row]) -> list[str]:
    """Connector names in row order: the source app, then "<APP> (2)", "<APP> (3)", …"""
    seen: Counter[str] = Counter()
    names = []
    for row in rows:
        app = row.cells.get("source_app")
        app = app.strip() if isinstance(app, str) else ""
        seen[app] += 1
        names.append(app if seen[app] == 1 else f"{app} ({seen[app]})")
    return names


def row_values(label: str, cells: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The connector values of one row (without its name), or (column, message) errors."""
    errors = [(key, "unknown column") for key in cells if key not in COLUMNS]
    errors += [(column, "is missing") for column in REQUIRED_COLUMNS if column not in cells]
    texts: dict[str, str] = {}
    for column in COLUMNS:
        try:
            texts[column] = _text(column, cells.get(column))
        except FieldError as exc:
            errors.append((column, str(exc)))
    if errors:
        return {}, errors
    values: dict[str, Any] = {
        "description": f"Imported from Multi back office ({label})",
        "api_type": ApiType.SOAP,
        "source_app": texts["source_app"].strip(),
        "uri": texts["web_service"].strip(),
        "crud_types": all_crud_types(),
    }
    if not values["source_app"]:
        errors.append(("source_app", "is blank"))
    for column, key, convert in (
        ("back_office", "type", back_office_type),
        ("send_appointments", "enabled", send_flag),
    ):
        try:
            values[key] = convert(texts[column])
        except FieldError as exc:
            errors.append((column, str(exc)))
    try:
        values.update(credentials(values.get("type", ""), texts["login"], texts["password"]))
    except ColumnError as exc:
        errors.append((exc.column, str(exc)))
    return values, errors


def _text(column: str, value: Any) -> str:
    """A cell as text: JSON booleans and 0/1 are accepted for send_appointments only."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if column == "send_appointments" and (isinstance(value, bool) or value in (0, 1)):
        return str(bool(value)).lower()
    raise FieldError(f"must be a string, not {json_type(value)}")


def back_office_type(text: str) -> str:
    """The connector type of a back office cell (code or readable name, any case)."""
    code = _BACK_OFFICES.get(" ".join(text.split()).lower())
    if code is None:
        shown = f"'{text.strip()}' is not a back office type" if text.strip() else "is blank"
        raise FieldError(f"{shown}; allowed: {', '.join(BACK_OFFICE_CODES)}")
    return code


def send_flag(text: str) -> bool:
    """The "send appointments" checkbox: true/false, yes/no, 1/0, y/n, x/blank (any case)."""
    value = text.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise FieldError(
        f"'{text.strip()}' is not a yes/no value; use true/false, yes/no, 1/0, y/n or x/blank"
    )


def credentials(connector_type: str, login: str, password: str) -> dict[str, Any]:
    """Every auth field of the connector (unused ones blank, so a re-import clears them).

    Raises ColumnError naming the login or password column; never with the password in it.
    """
    login = login.strip()
    blank = {key: "" for key in ("login", "password", "tenant_id", "client_id", "client_secret")}
    if not login and not password.strip():
        return {**blank, "auth_type": AuthType.NONE}
    if not password.strip():
        raise ColumnError("password", _ONE_BLANK.format(given="login"))
    if not login:
        raise ColumnError("login", _ONE_BLANK.format(given="password"))
    if _CLIENT_KEYS & set(parse_qs(password.strip(), keep_blank_values=True)):
        client_id, client_secret = _client_credentials(password.strip())
        if not is_tenant_id(login):
            raise ColumnError(
                "login",
                f"'{login}' is not a tenant ID (a GUID or a domain such as "
                "contoso.onmicrosoft.com), which a client_id=…&client_secret=… password needs",
            )
        return {
            **blank, "auth_type": AuthType.ENTRA_ID,
            "tenant_id": login, "client_id": client_id, "client_secret": client_secret,
        }
    windows = "\\" in login and connector_type in (ConnectorType.NAV, ConnectorType.BC_ONPREM)
    auth_type = AuthType.NTLM if windows else AuthType.BASIC
    return {**blank, "auth_type": auth_type, "login": login, "password": password}


_ONE_BLANK = "is blank but {given} is set; give both, or leave both blank for the service account"
_FORM = "client_id=…&client_secret=…"


def _client_credentials(password: str) -> tuple[str, str]:
    """(client_id, client_secret) from `client_id=…&client_secret=…`, in any order.

    Values are percent-decoded, but a `+` stays a `+`: older Entra client secrets contain `+`,
    and parse_qs would turn it into a space.
    """
    query = parse_qs(password.replace("+", "%2B"), keep_blank_values=True)
    if set(query) - _CLIENT_KEYS:
        # Never name the extra parts: they may be pieces of the secret.
        raise ColumnError(
            "password",
            f"{_FORM} has parts other than client_id and client_secret "
            "(write an & inside the secret as %26)",
        )
    for key in ("client_id", "client_secret"):
        if len(query.get(key, [])) > 1:
            raise ColumnError("password", f"{key} is given more than once in {_FORM}")
        if not query.get(key, [""])[0]:
            raise ColumnError("password", f"{key} is missing or blank in {_FORM}")
    return query["client_id"][0], query["client_secret"][0]


def is_tenant_id(login: str) -> bool:
    """A directory (tenant) ID: a GUID or a domain such as contoso.onmicrosoft.com."""
    return bool(_GUID.match(login) or _DOMAIN.match(login))
