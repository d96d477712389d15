"""A Business Central / NAV SOAP page web service: the `Appointment` page.

`GET <any path>` (with or without `?wsdl`) serves tests/fakes/wsdl/appointment_page.wsdl with its
`soap:address` set to this server's own URL; `POST` answers SOAP 1.1 document/literal envelopes
for the ten page operations against an in-memory table (tests.fakes.soap_page), the way NAV does:
Create returns the record with its Key, Read takes the primary key (Entry_No), Update needs the
current Key, Delete takes the Key. Malformed envelopes and unknown actions get the faults WCF
sends. Authentication is the state's AuthPolicy, checked by tests.fakes.auth_gate.

    server = soap_server(policy=AuthPolicy("basic", "ann", "pw")).start()
    server.state.inject(NAV_BUSINESS_ERROR)       # next POST: a NAV business error (HTTP 500)
    server.state.inject(SERVER_FAULT, count=None) # every POST: an s:Server fault
    server.fail(status=503) / server.fail(hang=True)   # FakeServer's HTTP-level faults
    server.state.table.rows                       # what was stored, as the XML text received

Another WSDL can be served instead (`state.wsdl_text`, e.g. the real NAV samples), and the
published address overridden (`state.address`), as NAV behind a proxy publishes its own host name.

Run alone: `python -m tests.fakes.soap_server --port 7047 [--auth basic --login L --password P]`
and point a connector at `http://127.0.0.1:7047/BC/WS/CRONUS/Page/Appointment` (any path works).
"""

from __future__ import annotations

import argparse
import dataclasses
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from . import auth_args
from .auth_gate import CHECKS, AuthPolicy, gate
from .server import FakeHandler, FakeServer, serve_main
from .soap_page import (
    FIELDS,
    LINE_ELEMENT,
    LINE_FIELDS,
    LINES_PART,
    NAV_EXCEPTIONS,
    SERVICE_BROKER,
    AppointmentTable,
    PageFault,
    SoapFault,
    not_found,
    parse_key,
)

WSDL_FILE = Path(__file__).parent / "wsdl" / "appointment_page.wsdl"
PAGE_NS = "urn:microsoft-dynamics-schemas/page/appointment"
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
WCF_ADDRESSING_NS = "http://schemas.microsoft.com/ws/2005/05/addressing/none"
WCF_DISPATCHER_NS = "http://schemas.microsoft.com/net/2005/12/windowscommunicationfoundation/dispatcher"
XML_CONTENT_TYPE = "text/xml; charset=utf-8"

# Faults to inject, worded as NAV / Business Central (WCF) words them.
NAV_BUSINESS_ERROR = SoapFault(
    NAV_EXCEPTIONS + "NavCSideRecordNotFoundException",
    "The Job does not exist. Identification fields and values: No.='J-404'",
)
NAV_RECORD_LOCKED = SoapFault(
    NAV_EXCEPTIONS + "NavNCLDialogException",
    "We could not update the data right now.\\Please try again later.\\\\Technical details:\\"
    "A record in table Appointment was locked for use in another session.",
)
CLIENT_FAULT = SoapFault("s:Client", "The Appointment_Guid field must contain a GUID.")
SERVER_FAULT = SoapFault(
    "s:Server",
    "The server was unable to process the request due to an internal error.  For more "
    "information about the error, either turn on IncludeExceptionDetailInFaults on the server "
    "or turn on tracing and inspect the server trace logs.",
)


@dataclass
class SoapPageState:
    policy: AuthPolicy = field(default_factory=AuthPolicy)
    wsdl_text: str | None = None  # serve this WSDL instead of the Appointment page's
    address: str | None = None  # publish this soap:address instead of the request's URL
    table: AppointmentTable = field(default_factory=AppointmentTable)
    faults: list[SoapFault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, fault: SoapFault, *, count: int | None = 1) -> None:
        """The next `count` POSTs (None: all until clear_faults) get `fault`."""
        with self.lock:
            self.faults.append(dataclasses.replace(fault, count=count))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_fault(self) -> SoapFault | None:
        with self.lock:
            if not self.faults:
                return None
            fault = self.faults[0]
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.pop(0)
            return fault

    def records(self) -> list[dict[str, Any]]:
        """The stored records in Entry No. order."""
        return [self.table.rows[no] for no in sorted(self.table.rows)]

    def wsdl(self, address: str) -> str:
        text = self.wsdl_text if self.wsdl_text is not None else WSDL_FILE.read_text()
        root = etree.fromstring(text.encode())
        for node in root.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address"):
            node.set("location", self.address or address)
        return etree.tostring(root, xml_declaration=True, encoding="utf-8").decode()


# -- envelopes ------------------------------------------------------------------------------
def fault_envelope(fault: SoapFault) -> str:
    """The fault as NAV's WCF stack writes it (faultcode prefix bound on the element)."""
    declare = f" xmlns:a={quoteattr(fault.namespace)}" if fault.code.startswith("a:") else ""
    message = escape(fault.message)
    return (
        f'<s:Envelope xmlns:s="{SOAP_ENV_NS}"><s:Body><s:Fault>'
        f"<faultcode{declare}>{escape(fault.code)}</faultcode>"
        f'<faultstring xml:lang="en-US">{message}</faultstring>'
        f'<detail><string xmlns="http://schemas.microsoft.com/2003/10/Serialization/">'
        f"{message}</string></detail></s:Fault></s:Body></s:Envelope>"
    )


def _deserialize_error(operation: str) -> PageFault:
    return PageFault(SoapFault(
        "a:DeserializationFailed",
        f"The formatter threw an exception while trying to deserialize the message: Error in "
        f"deserializing body of request message for operation '{operation}'.",
        namespace=WCF_DISPATCHER_NS,
    ))


def _local(node: Any) -> str:
    return str(etree.QName(node).localname)


def _check_value(kind: str, text: str, operation: str) -> None:
    parse: dict[str, Callable[[str], Any]] = {
        "int": int,
        "decimal": Decimal,
        "dateTime": lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")),
        "boolean": lambda v: {"true": 1, "false": 0, "1": 1, "0": 0}[v],
    }
    try:
        if kind in parse:
            parse[kind](text)
    except (ValueError, KeyError, InvalidOperation):
        raise _deserialize_error(operation) from None


def parse_record(node: Any, operation: str) -> dict[str, Any]:
    """An <Appointment> element as {element name: text}, lines as a list of dicts; unknown
    elements or values that do not fit their XSD type are refused as WCF refuses them."""
    record: dict[str, Any] = {}
    for child in node:
        name = _local(child)
        if etree.QName(child).namespace != PAGE_NS:
            raise _deserialize_error(operation)
        if name == LINES_PART:
            record[name] = [
                {_local(f): f.text or "" for f in line if _local(f) in (*LINE_FIELDS, "Key")}
                for line in child if _local(line) == LINE_ELEMENT
            ]
        elif name == "Key" or name in FIELDS:
            text = child.text or ""
            _check_value(FIELDS.get(name, "string"), text, operation)
            record[name] = text
        else:
            raise _deserialize_error(operation)
    return record


def render_record(record: dict[str, Any], tag: str = "Appointment") -> str:
    parts = [f"<Key>{escape(record['Key'])}</Key>"]
    parts += [f"<{n}>{escape(str(record[n]))}</{n}>" for n in FIELDS if n in record]
    if record.get(LINES_PART):
        lines = "".join(
            f"<{LINE_ELEMENT}>" + "".join(
                f"<{n}>{escape(line[n])}</{n}>" for n in ("Key", *LINE_FIELDS) if n in line
            ) + f"</{LINE_ELEMENT}>"
            for line in record[LINES_PART]
        )
        parts.append(f"<{LINES_PART}>{lines}</{LINES_PART}>")
    return f"<{tag}>{''.join(parts)}</{tag}>"


def result_envelope(operation: str, inner: str) -> str:
    return (
        f'<Soap:Envelope xmlns:Soap="{SOAP_ENV_NS}"><Soap:Body>'
        f'<{operation}_Result xmlns="{PAGE_NS}">{inner}</{operation}_Result>'
        "</Soap:Body></Soap:Envelope>"
    )


# -- the page operations ----------------------------------------------------------------------
def _child(request: Any, name: str) -> Any:
    return request.find(f"{{{PAGE_NS}}}{name}")


def _text(request: Any, name: str) -> str:
    node = _child(request, name)
    return (node.text or "") if node is not None else ""


def _records(request: Any, operation: str) -> list[dict[str, Any]]:
    if operation.endswith("Multiple"):
        listing = _child(request, "Appointment_List")
        nodes = list(listing) if listing is not None else []
    else:
        nodes = [n for n in [_child(request, "Appointment")] if n is not None]
    if not nodes:
        raise PageFault(SoapFault(
            SERVICE_BROKER,
            f"Parameter Appointment in method {operation} in service Appointment is null!",
        ))
    return [parse_record(n, operation) for n in nodes]


def _read_one(table: AppointmentTable, entry_no: str) -> str:
    try:
        row = table.get(int(entry_no))
    except ValueError:
        raise _deserialize_error("Read") from None
    return render_record(row) if row else ""  # NAV answers an empty Read_Result when not found


def perform(table: AppointmentTable, operation: str, request: Any) -> str:
    """The inner XML of `<operation>_Result` for the request element."""
    if operation in ("Create", "CreateMultiple", "Update", "UpdateMultiple"):
        write = table.insert if operation.startswith("Create") else table.modify
        rows = [render_record(write(r)) for r in _records(request, operation)]
        if operation.endswith("Multiple"):
            return f"<Appointment_List>{''.join(rows)}</Appointment_List>"
        return rows[0]
    if operation == "Read":
        return _read_one(table, _text(request, "Entry_No"))
    if operation == "ReadByRecId":
        return _read_one(table, _text(request, "recId").rpartition(":")[2].strip())
    if operation == "ReadMultiple":
        filters = [(_text(f, "Field"), _text(f, "Criteria"))
                   for f in request.findall(f"{{{PAGE_NS}}}filter")]
        size = int(_text(request, "setSize") or 0)
        rows = table.select(filters, _text(request, "bookmarkKey"), size)
        body = "".join(render_record(r) for r in rows)
        return f"<ReadMultiple_Result>{body}</ReadMultiple_Result>" if rows else ""
    if operation == "IsUpdated":
        updated = table.is_updated(_text(request, "Key"))
        return f"<IsUpdated_Result>{str(updated).lower()}</IsUpdated_Result>"
    if operation == "GetRecIdFromKey":
        key = _text(request, "Key")
        parsed = parse_key(key)
        if parsed is None or table.get(parsed[0]) is None:
            raise not_found(key)
        return f"<GetRecIdFromKey_Result>Appointment: {parsed[0]}</GetRecIdFromKey_Result>"
    table.delete(_text(request, "Key"))  # Delete
    return "<Delete_Result>true</Delete_Result>"


OPERATIONS = (
    "Read", "ReadByRecId", "ReadMultiple", "IsUpdated", "GetRecIdFromKey",
    "Create", "CreateMultiple", "Update", "UpdateMultiple", "Delete",
)


def parse_envelope(body: bytes, soap_action: str) -> tuple[str, Any]:
    """(operation, request element) of a SOAP 1.1 request; PageFault when it is not one."""
    try:
        root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        root = None
    envelope_body = root.find(f"{{{SOAP_ENV_NS}}}Body") if root is not None else None
    if root is None or root.tag != f"{{{SOAP_ENV_NS}}}Envelope" or envelope_body is None \
            or len(envelope_body) != 1:
        raise PageFault(SoapFault("s:Client", "The request is not a SOAP 1.1 envelope with one "
                                              "body element."))
    request = envelope_body[0]
    action = soap_action.strip().strip('"')
    operation = action.rpartition(":")[2] if action.startswith(PAGE_NS + ":") else ""
    if operation not in OPERATIONS or request.tag != f"{{{PAGE_NS}}}{operation}":
        raise PageFault(SoapFault(
            "a:ActionNotSupported",
            f"The message with Action '{action}' cannot be processed at the receiver, due to a "
            "ContractFilter mismatch at the EndpointDispatcher.",
            namespace=WCF_ADDRESSING_NS,
        ))
    return operation, request


class SoapPageHandler(FakeHandler):
    def _state(self) -> SoapPageState:
        state: SoapPageState = self.server.state
        return state

    def _own_url(self) -> str:
        scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        return f"{scheme}://{host}{self.recorded.path}"

    def handle_GET(self) -> None:  # noqa: N802
        state = self._state()
        if gate(self, state.policy):
            self.reply(200, state.wsdl(self._own_url()), content_type=XML_CONTENT_TYPE)

    def handle_POST(self) -> None:  # noqa: N802
        state = self._state()
        if not gate(self, state.policy):
            return
        injected = state.take_fault()
        if injected is not None:
            if injected.delay_s and self.server.stopping.wait(injected.delay_s):
                return  # the server is stopping
            self._fault(injected)
            return
        try:
            operation, request = parse_envelope(self.body, self.headers.get("SOAPAction", ""))
            inner = perform(state.table, operation, request)
        except PageFault as exc:
            self._fault(exc.fault)
            return
        self.reply(200, result_envelope(operation, inner), content_type=XML_CONTENT_TYPE)

    def _fault(self, fault: SoapFault) -> None:
        self.reply(fault.status, fault_envelope(fault), content_type=XML_CONTENT_TYPE)


def soap_server(*, policy: AuthPolicy | None = None, port: int = 0,
                tls: ssl.SSLContext | None = None, **state: Any) -> FakeServer:
    """A SOAP page fake (not started yet); `state` fills SoapPageState (wsdl_text, address)."""
    return FakeServer(SoapPageHandler, port=port, tls=tls,
                      state=SoapPageState(policy=policy or AuthPolicy(), **state))


def build(args: argparse.Namespace) -> FakeServer:
    return soap_server(policy=auth_args.policy_from_args(args), port=args.port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Every scheme the gate knows (NTLM and Negotiate too, once it has them).
    auth_args.add_auth_arguments(parser, schemes=("none", *CHECKS))


build.add_arguments = add_arguments  # type: ignore[attr-defined]

if __name__ == "__main__":
    serve_main("soap_server", build)
