"""Business Central / NAV SOAP client: the `Appointment` page web service through zeep.

The connector's URI is the page web service, e.g.
`http://nav:7047/DynamicsNAV90/WS/CRONUS/Page/Appointment` (on-prem, NAV) or
`https://api.businesscentral.dynamics.com/v2.0/<tenant>/<env>/WS/<company>/Page/Appointment`;
a GET of it answers the WSDL (soap_wsdl loads and caches it). Every change is one `Create` of the
page record in the page's element names (payloads.soap_record, Database_Action I/U/D).

Operations are posted to the connector's URI, not to the WSDL's `soap:address`: NAV writes its
own host name there (the real samples say `http://kenedy:7047/…`), which a proxy, NAT or a
load balancer in front of it makes unreachable.

SOAP faults (SOAP 1.1 §4.4.1; NAV sends them with HTTP 500): `Client` faults and NAV's business
exceptions (`a:Microsoft.Dynamics.Nav.Types.Exceptions.*`, AL's Error(), a record that does not
exist) are permanent; `Server` faults, WCF's InternalServiceFault and NAV's lock, deadlock and
timeout errors are transient. Any other status goes through errors.error_for_status.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import zeep
from zeep.exceptions import Fault, TransportError, ValidationError, XMLSyntaxError

from . import errors, http, payloads
from .base import AppointmentChange, BackOfficeClient, BackOfficeError, ProbeResult, SendResult
from .redact import Redactor, redactor_for
from .soap_wsdl import (
    PAGE_URI_EXAMPLE,
    ZEEP_SETTINGS,
    PageService,
    SeamTransport,
    forget,
    load_page,
)

if TYPE_CHECKING:
    from connectors.models import Connector

# NAV words lock and timeout errors like this (NAV 2016: "…was locked by another user. Please
# retry the activity.", "Your activity was deadlocked with another user…"; Business Central:
# "A record in table X was locked for use in another session."). "Blocked" (a blocked customer)
# and a locked appointment are business errors, so the words are matched in context.
TRANSIENT_MESSAGE = re.compile(
    r"locked (?:for use )?(?:by|in) another (?:user|session)|\bdeadlock|\btimed out\b|"
    r"\btimeout\b|being updated in a transaction done by another session",
    re.IGNORECASE,
)
TRANSIENT_NAME = re.compile(r"deadlock|locktimeout|timeout", re.IGNORECASE)
CLIENT_CODES = ("Client", "Sender", "VersionMismatch", "MustUnderstand")
SERVER_CODES = ("Server", "Receiver", "InternalServiceFault")
MESSAGE_LIMIT = errors.MESSAGE_LIMIT


def fault_name(code: str) -> str:
    """The faultcode without its namespace prefix ("s:Client" -> "Client")."""
    return code.strip().split(":", 1)[-1].rpartition("}")[2]


def is_transient_fault(code: str, message: str) -> bool:
    """Whether retrying can help, by the faultcode (and NAV's wording for locks and timeouts)."""
    name = fault_name(code)
    head = name.split(".")[0]
    if head in SERVER_CODES:
        return True
    if head in CLIENT_CODES:
        return False
    return bool(TRANSIENT_NAME.search(name) or TRANSIENT_MESSAGE.search(message))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def fault_error(fault: Fault, transport: SeamTransport, what: str) -> BackOfficeError:
    """The BackOfficeError for a SOAP fault; its message carries the faultstring."""
    redactor = transport.redactor
    code = str(fault.code or "")
    said = redactor.text(_short(str(fault.message or "")))
    short_code = fault_name(code).rpartition(".")[2] or "fault"
    answer = transport.answers[-1] if transport.answers else None
    transient = is_transient_fault(code, said)
    if transient and fault_name(code).split(".")[0] in SERVER_CODES:
        hint = ("The service tier failed on its side; DimeConnect retries. If it persists, look "
                "at the service tier's event log.")
    elif transient:
        hint = "A record was locked or a query timed out in the back office; DimeConnect retries."
    else:
        hint = ("The back office refused the record: fix what its message names there (e.g. a "
                "job, task or resource that does not exist) or in the planning data, then retry.")
    return BackOfficeError(
        f"{what} answered with a SOAP fault ({short_code}): {said}",
        permanent=not transient,
        hint=hint,
        error_class="SoapServerFault" if transient else "SoapClientFault",
        status_code=answer.status_code if answer else None,
        response_excerpt=redactor.excerpt(answer.text) if answer else "",
    )


def not_soap_error(exc: Exception, transport: SeamTransport, what: str) -> BackOfficeError:
    """An answer zeep cannot read as a SOAP envelope."""
    answer = transport.answers[-1] if transport.answers else None
    redactor = transport.redactor
    if answer is not None and answer.status_code >= 500:
        return errors.error_for_status(answer.status_code, answer.headers, answer.text,
                                       redactor=redactor, what=what)
    return BackOfficeError(
        f"{what} answered, but not with a SOAP envelope: {redactor.text(_short(str(exc)))}",
        permanent=True,
        hint=f"Check that the URI is the page's SOAP web service ({PAGE_URI_EXAMPLE}).",
        error_class="NotSoap",
        status_code=answer.status_code if answer else None,
        response_excerpt=redactor.excerpt(answer.text) if answer else "",
    )


def missing_fields_error(page: PageService, what: str) -> BackOfficeError | None:
    """Why the page cannot take the record DimeConnect sends, or None when it can."""
    operations = ", ".join(page.operations) or "none"
    if "Create" not in page.operations:
        return BackOfficeError(
            f"The web service {page.service_name} at this URI offers no Create operation; it "
            f"offers: {operations}.",
            permanent=True,
            hint="Point the URI at the Appointment page web service "
            f"({PAGE_URI_EXAMPLE}), not at a codeunit or another object, and check that the "
            "page is published in Web Services.",
            error_class="WrongService",
        )
    missing = [n for n in payloads.SOAP_RECORD_ELEMENTS if n not in page.record_fields]
    if not missing:
        return None
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return BackOfficeError(
        f"The web service {page.service_name} offers Create ({operations}), but its "
        f"{page.record_element or 'record'} has no {shown}: it is not the Appointment page.",
        permanent=True,
        hint=f"Point the URI at the Appointment page web service ({PAGE_URI_EXAMPLE}). If this "
        "customer's page names the fields differently, adapt SOAP_ELEMENTS in "
        "connectors/backoffices/payloads.py.",
        error_class="WrongService",
    )


class SoapClient(BackOfficeClient):
    """(bc_onprem | bc_online | nav, soap): one Create of the page record per change."""

    def __init__(self, connector: Connector) -> None:
        super().__init__(connector)
        self.redactor: Redactor = redactor_for(connector)
        self.what = connector.get_type_display() or "The back office"

    def _deadline(self) -> float:
        return time.monotonic() + http.total_timeout(self.connector)

    def send(self, change: AppointmentChange) -> SendResult:
        """Create the page record; returns the 200 answer, raises BackOfficeError otherwise.

        The WSDL comes from the cache when it can; after any failure it is dropped, so the next
        attempt loads it again (the page may have been republished or moved)."""
        started = time.monotonic()
        deadline = started + http.total_timeout(self.connector)
        transport: SeamTransport | None = None
        try:
            page = load_page(self.connector, redactor=self.redactor, deadline=deadline,
                             what=self.what)
            problem = missing_fields_error(page, self.what)
            if problem is not None:
                raise problem
            transport = SeamTransport(self.connector, redactor=self.redactor,
                                      deadline=deadline, what=self.what)
            with transport.session:
                self._create(page, transport, payloads.soap_record(change))
        except BackOfficeError as error:
            forget(self.connector)
            if error.request is None and transport is not None and transport.sent:
                error.request = transport.sent[-1]  # a fault: the envelope that caused it
            raise
        answer = transport.answers[-1]
        return SendResult(
            status_code=answer.status_code,
            response_excerpt=self.redactor.excerpt(answer.text),
            duration_ms=round((time.monotonic() - started) * 1000),
            request=transport.sent[-1] if transport.sent else None,
        )

    def _create(self, page: PageService, transport: SeamTransport, record: dict[str, Any]) -> None:
        client = zeep.Client(page.document, transport=transport, settings=ZEEP_SETTINGS)
        service = client.create_service(page.binding.name, page.address)
        try:
            service.Create(**{page.record_element: record})
        except Fault as fault:
            raise fault_error(fault, transport, self.what) from None
        except (TransportError, XMLSyntaxError) as exc:
            raise not_soap_error(exc, transport, self.what) from None
        except ValidationError as exc:
            raise BackOfficeError(
                f"The record does not fit the page's WSDL: {self.redactor.text(_short(str(exc)))}",
                permanent=True,
                hint="Check the field mapping (connectors/backoffices/payloads.py) against the "
                "page's fields and types.",
                error_class="MappingError",
            ) from None

    def probe(self) -> ProbeResult:
        """Load the WSDL afresh (no cache: this tests the URI and the credentials) and check the
        page offers Create with the fields DimeConnect sends. Writes nothing."""
        page = load_page(self.connector, redactor=self.redactor, deadline=self._deadline(),
                         what=self.what, refresh=True)
        problem = missing_fields_error(page, self.what)
        if problem is not None:
            forget(self.connector)
            raise problem
        return ProbeResult(
            detail=f"The WSDL of {page.service_name} offers Create with every field DimeConnect "
            f"sends (operations: {', '.join(page.operations)}); nothing written.",
            status_code=200,
        )
