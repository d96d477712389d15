"""A Business Central API page: the Dime.Scheduler staging API, as a real server answers it.

    with bc_rest.make(auth=AuthPolicy("basic", "svc", "pw")) as server:
        uri = bc_rest.entity_set_url(server)   # …/api/dimeSoftware/dimeScheduler/v1.0/
                                               #   companies(<COMPANY_ID>)/appointments
        server.state.records                   # what POSTs stored

Routes under any prefix (on-prem `/BC/api/…`, online `/v2.0/<tenant>/<env>/api/…`):
`$metadata` (a small CSDL), `companies`, `companies(<id>)/appointments` (GET honours `$top`;
POST validates like the page does and answers 201 with `id` and `@odata.etag`). Anything else
is 404 `BadRequest_NotFound`; a bad login is 401 `Authentication_InvalidCredentials`; error
bodies have Business Central's shape, `{"error": {"code", "message"}}` with a CorrelationId
(see the shared fixtures). `allow_get=False` makes the entity set insert-only (GET → 405).

Run alone: python -m tests.fakes.bc_rest --port 8081 [--auth basic --login L --password P |
--auth bearer]
"""

from __future__ import annotations

import argparse
import base64
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import auth_args
from .auth_gate import AuthPolicy, gate
from .server import FakeHandler, FakeServer, serve_main

API_PATH = "/api/dimeSoftware/dimeScheduler/v1.0"
ON_PREM_PREFIX = "/BC"
COMPANY_ID = "5c8b5c5e-6f1d-ef11-9f88-6045bdc8c1a2"
COMPANY_NAME = "CRONUS International Ltd."
ENTITY_SET = "appointments"

# The page's fields (DESIGN.md, Business Central REST) with their EDM types, and the ones it
# insists on. appointmentResources is the lines part (a deep insert).
FIELD_TYPES: dict[str, str] = {
    "sourceApp": "Edm.String", "sourceType": "Edm.String", "databaseAction": "Edm.String",
    "jobNo": "Edm.String", "taskNo": "Edm.String", "appointmentId": "Edm.Int32",
    "appointmentGuid": "Edm.Guid", "subject": "Edm.String", "body": "Edm.String",
    "start": "Edm.DateTimeOffset", "end": "Edm.DateTimeOffset", "isAllDayEvent": "Edm.Boolean",
    "category": "Edm.String", "timeMarker": "Edm.String", "importance": "Edm.Int32",
    "planningQuantity": "Edm.Decimal", "planningUOM": "Edm.String", "backofficeId": "Edm.String",
}
FIELDS = frozenset(FIELD_TYPES) | {"appointmentResources"}
REQUIRED = ("sourceApp", "appointmentGuid")
DATABASE_ACTIONS = ("I", "U", "D")

_ROUTE = re.compile(
    rf"^(?P<prefix>.*){re.escape(API_PATH)}/(?P<rest>.*)$"
)
_ENTITY_SET = re.compile(rf"^companies\((?P<company>[^)]*)\)/{ENTITY_SET}/?$")

CSDL = f"""<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="Microsoft.NAV" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="company">
        <Key><PropertyRef Name="id" /></Key>
        <Property Name="id" Type="Edm.Guid" Nullable="false" />
        <Property Name="name" Type="Edm.String" MaxLength="30" />
      </EntityType>
      <EntityType Name="appointment">
        <Key><PropertyRef Name="id" /></Key>
        <Property Name="id" Type="Edm.Guid" Nullable="false" />
{"".join(f'        <Property Name="{name}" Type="{edm}" />{chr(10)}'
         for name, edm in FIELD_TYPES.items())}\
        <NavigationProperty Name="appointmentResources"
          Type="Collection(Microsoft.NAV.appointmentResource)" ContainsTarget="true" />
      </EntityType>
      <EntityType Name="appointmentResource">
        <Key><PropertyRef Name="id" /></Key>
        <Property Name="id" Type="Edm.Guid" Nullable="false" />
        <Property Name="resourceNo" Type="Edm.String" MaxLength="20" />
      </EntityType>
      <EntityContainer Name="NAV">
        <EntitySet Name="companies" EntityType="Microsoft.NAV.company">
          <NavigationPropertyBinding Path="{ENTITY_SET}" Target="{ENTITY_SET}" />
        </EntitySet>
        <EntitySet Name="{ENTITY_SET}" EntityType="Microsoft.NAV.appointment" />
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
"""


def odata_error(code: str, message: str) -> dict[str, Any]:
    """Business Central's error body: the message ends in a CorrelationId, as real ones do."""
    return {"error": {"code": code, "message": f"{message}  CorrelationId:  {uuid.uuid4()}."}}


@dataclass
class BcState:
    auth: AuthPolicy = field(default_factory=AuthPolicy)
    companies: dict[str, str] = field(default_factory=lambda: {COMPANY_ID: COMPANY_NAME})
    records: list[dict[str, Any]] = field(default_factory=list)
    allow_get: bool = True  # False: the entity set is insert-only (GET answers 405)


def problems(record: Any) -> tuple[str, str] | None:
    """(code, message) of the first thing the page refuses in a POSTed record, or None."""
    if not isinstance(record, dict):
        return "BadRequest", "Invalid Request Body"
    for name in record:
        if name not in FIELDS:
            return "BadRequest", (
                f"The property '{name}' does not exist on type 'Microsoft.NAV.appointment'. "
                "Make sure to only use property names that are defined by the type."
            )
    for name in REQUIRED:
        if not record.get(name):
            return "Application_FieldValidationException", (
                f"{name} must have a value in Appointment Staging: Entry No.=0. "
                "It cannot be zero or empty."
            )
    for name, value in record.items():
        if not _fits(FIELD_TYPES.get(name, ""), value):
            return "BadRequest", (
                f"Cannot convert the literal '{value}' to the expected type "
                f"'{FIELD_TYPES[name]}' (property '{name}')."
            )
    lines = record.get("appointmentResources", [])
    if not isinstance(lines, list) or any(
        not isinstance(line, dict) or set(line) - {"resourceNo"} for line in lines
    ):
        return "BadRequest", "appointmentResources must be a list of {\"resourceNo\": …} lines."
    if record.get("databaseAction") not in DATABASE_ACTIONS:
        return "BadRequest", (
            f"Cannot convert the literal '{record.get('databaseAction')}' to the expected type "
            "'Microsoft.NAV.databaseAction' (allowed: I, U, D)."
        )
    return None


def _fits(edm: str, value: Any) -> bool:
    """Whether a JSON value converts to the EDM type, as OData's reader decides."""
    if edm == "Edm.Int32":
        return isinstance(value, int) and not isinstance(value, bool)
    if edm == "Edm.Decimal":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if edm == "Edm.Boolean":
        return isinstance(value, bool)
    if edm == "Edm.Guid":
        try:
            uuid.UUID(str(value))
        except ValueError:
            return False
        return True
    if edm == "Edm.DateTimeOffset":
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    return edm != "Edm.String" or isinstance(value, str)


class BcRestHandler(FakeHandler):
    def _route(self) -> tuple[str, str] | None:
        """("entity_set", company) | ("metadata"|"companies", "") | None, after the auth gate."""
        state: BcState = self.server.state
        if not gate(self, state.auth):
            return None
        match = _ROUTE.match(self.recorded.path)
        rest = match.group("rest") if match else ""
        if rest in ("$metadata", "companies"):
            return rest.lstrip("$"), ""
        entity = _ENTITY_SET.match(rest)
        if match and entity and entity.group("company") in state.companies:
            return "entity_set", entity.group("company")
        self.reply(404, odata_error(
            "BadRequest_NotFound",
            f"No HTTP resource was found that matches the request URI '{self.path}'.",
        ))
        return None

    def handle_GET(self) -> None:  # noqa: N802
        route = self._route()
        if route is None:
            return
        kind, company = route
        state: BcState = self.server.state
        if kind == "metadata":
            self.reply(200, CSDL, content_type="application/xml")
        elif kind == "companies":
            self.reply(200, {"value": [{"id": cid, "name": name}
                                       for cid, name in state.companies.items()]})
        elif not state.allow_get:
            self.reply(405, odata_error(
                "BadRequest_MethodNotAllowed",
                f"'GET' requests for '{ENTITY_SET}' of EdmType 'Entity' are not allowed "
                "within Dynamics 365 Business Central OData web services.",
            ))
        else:
            top = self.recorded.query.get("$top", [""])[0]
            with self.server.lock:
                rows = [r for r in state.records if r["_company"] == company]
            rows = rows[: int(top)] if top.isdigit() else rows
            self.reply(200, {"value": [_public(r) for r in rows]})

    def handle_POST(self) -> None:  # noqa: N802
        route = self._route()
        if route is None:
            return
        kind, company = route
        if kind != "entity_set":
            self.reply(405, odata_error("BadRequest_MethodNotAllowed",
                                        f"'POST' requests for '{kind}' are not allowed."))
            return
        try:
            record = self.recorded.json()
        except ValueError:
            record = None
        problem = problems(record)
        if problem:
            self.reply(400, odata_error(*problem))
            return
        stored = {**record, "id": str(uuid.uuid4()), "_company": company}
        stored["@odata.etag"] = 'W/"' + base64.b64encode(
            f"'{stored['id']}';1;".encode()).decode() + '"'  # opaque, like Business Central's
        with self.server.lock:
            self.server.state.records.append(stored)
        self.reply(201, _public(stored), headers={"OData-Version": "4.0"})


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def entity_set_url(server: FakeServer, *, company: str = COMPANY_ID,
                   prefix: str = ON_PREM_PREFIX) -> str:
    return f"{server.url}{prefix}{API_PATH}/companies({company})/{ENTITY_SET}"


def make(*, auth: AuthPolicy | None = None, allow_get: bool = True, port: int = 0) -> FakeServer:
    """A Business Central API; `with` starts and stops it."""
    state = BcState(auth=auth or AuthPolicy(), allow_get=allow_get)
    return FakeServer(BcRestHandler, port=port, state=state)


def build(args: argparse.Namespace) -> FakeServer:
    state = BcState(auth=auth_args.policy_from_args(args))
    server = FakeServer(BcRestHandler, port=args.port, state=state)
    print(f"entity set: {entity_set_url(server)}", flush=True)
    return server


build.add_arguments = auth_args.add_auth_arguments  # type: ignore[attr-defined]


if __name__ == "__main__":
    serve_main("bc_rest", build)
