"""Loading a NAV / Business Central page web service's WSDL through the seam, and caching it.

zeep fetches the WSDL (and any schema it imports) through `SeamTransport`, so every byte passes
`http.requests_call`: the connector's auth, TLS trust and total deadline, library errors turned
into BackOfficeError. Only http(s) is fetched: a WSDL cannot make zeep read local files.

The parsed WSDL is cached in process memory per connector, keyed by its primary key plus a
fingerprint (SHA-256) of the URI and every auth setting and secret, so a changed URI or secret
loads it again; entries also expire after WSDL_TTL_S, so a page republished with new fields is
picked up without a restart. Failures are never cached. Two threads missing the cache at once
may both load it; the last one wins, which is harmless.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
import zeep
from django.conf import settings
from lxml import etree  # type: ignore[import-untyped]  # no stubs installed; zeep's parser
from zeep.wsdl import Document
from zeep.wsdl.bindings.soap import SoapBinding

from . import auth, errors, http
from .base import BackOfficeError, RequestRecord
from .redact import Redactor

if TYPE_CHECKING:
    from connectors.models import Connector

WSDL_TTL_S = 3600.0
MAX_CACHED = 500
# No DTDs, entities or external references in anything zeep parses.
ZEEP_SETTINGS = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True,
                              forbid_external=True, xml_huge_tree=False)
AUTH_SETTINGS = ("auth_type", "login", "password", "tenant_id", "client_id", "client_secret",
                 "token_url", "scope")
PAGE_URI_EXAMPLE = "http://<server>:7047/<instance>/WS/<company>/Page/Appointment"


@dataclass(frozen=True)
class PageService:
    """What a loaded page WSDL offers."""

    document: Any  # zeep.wsdl.Document
    binding: Any  # the SOAP binding of the first port (zeep SoapBinding)
    address: str  # where operations are posted: the connector's URI
    service_name: str
    operations: tuple[str, ...]
    record_element: str  # the element Create takes (the page's record, e.g. "Appointment")
    record_fields: tuple[str, ...]  # that record's child elements


def service_address(uri: str) -> str:
    """The connector's URI without a `wsdl` query parameter (other parameters, such as an
    on-prem `?tenant=…`, stay)."""
    parts = urlsplit(uri)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(k.lower() == "wsdl" for k, _ in pairs):
        return uri  # untouched, encoding and all
    query = urlencode([(k, v) for k, v in pairs if k.lower() != "wsdl"])
    return urlunsplit(parts._replace(query=query))


def is_soap_fault(content: bytes) -> bool:
    """Whether the body is a SOAP envelope holding a Fault (what a 500 must carry to be read
    as SOAP; an IIS or proxy error page is an HTTP error instead)."""
    try:
        # a parser per call: lxml parsers must not be shared between threads
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.fromstring(content, parser)
    except (etree.LxmlError, ValueError):
        return False
    if etree.QName(root).localname != "Envelope":
        return False
    return any(etree.QName(node).localname == "Fault" for node in root.iter(etree.Element))


class SeamTransport(zeep.Transport):
    """zeep's transport with every request through http.requests_call, within one deadline.

    A transport serves one operation (one send or probe): it holds that operation's monotonic
    `deadline` and records what it sent (`sent`) and got (`answers`) for the dispatch log.
    An answer other than 2xx, or a 500 with a SOAP fault (the status faults come with), raises
    the classified BackOfficeError here, before zeep tries to read it as SOAP.
    """

    def __init__(self, connector: Connector, *, redactor: Redactor, deadline: float,
                 what: str) -> None:
        total = http.total_timeout(connector)
        session = http.requests_session(connector, auth=auth.requests_auth(connector))
        super().__init__(session=session, timeout=total, operation_timeout=total)
        self.session.adapters.pop("file://", None)  # zeep mounts one; we read no local files
        self.session.headers["User-Agent"] = http.USER_AGENT  # zeep set its own
        self.connector = connector
        self.redactor = redactor
        self.deadline = deadline
        self.what = what
        self.sent: list[RequestRecord] = []
        self.answers: list[http.HttpAnswer] = []

    def _call(self, method: str, url: str, **kwargs: Any) -> tuple[Any, http.HttpAnswer]:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise errors.error_for_exception(
                http.DeadlineExceeded(), url=url, redactor=self.redactor,
                timeout_s=http.total_timeout(self.connector),
            )
        # The socket timeouts are what is left of this operation's budget, so a WSDL load and
        # the call after it share the connector's timeout.
        kwargs["timeout"] = (min(http.CONNECT_TIMEOUT_S, left), left)
        response, answer = http.requests_call(
            self.session, method, url, connector=self.connector, redactor=self.redactor, **kwargs
        )
        self.answers.append(answer)
        if method == "POST":  # recorded before the answer is judged: a failure has one too
            self.sent.append(self._record(url, response.request, kwargs.get("data") or ""))
        status = answer.status_code
        if not (200 <= status < 300 or (method == "POST" and status == 500
                                        and is_soap_fault(answer.content))):
            error = errors.error_for_status(status, answer.headers, answer.text,
                                            redactor=self.redactor, what=self.what)
            if status == 401:  # say which credentials: login, service account, Windows, token
                error.hint = auth.unauthorized_hint(self.connector)
            if method == "POST":
                error.request = self.sent[-1]
            raise error
        return response, answer

    def _record(self, address: str, outgoing: Any, message: bytes | str) -> RequestRecord:
        """The POST as it went out (`outgoing`: after the auth added its header), redacted."""
        body = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        return RequestRecord(
            method="POST",
            url=self.redactor.text(address),
            headers=self.redactor.headers(dict(outgoing.headers.items())),
            body=self.redactor.excerpt(body),
        )

    def get(self, address: str, params: Any, headers: Any) -> Any:
        response, _ = self._call("GET", address, params=params, headers=headers)
        return response

    def post(self, address: str, message: bytes | str, headers: Any) -> Any:
        response, _ = self._call("POST", address, data=message, headers=headers)
        return response

    def load(self, url: str) -> bytes:
        """Fetch the WSDL or a schema it imports (http and https only)."""
        if urlsplit(url).scheme not in ("http", "https"):
            raise BackOfficeError(
                f"The WSDL refers to {self.redactor.text(url)}, which is not an http(s) "
                "address; DimeConnect loads nothing else.",
                permanent=True,
                hint=f"Point the URI at the page web service itself ({PAGE_URI_EXAMPLE}).",
                error_class="NotAWsdl",
            )
        _, answer = self._call("GET", url)
        return answer.content


def fingerprint(connector: Connector) -> str:
    """A digest of everything the loaded WSDL depends on (the URI, auth settings, secrets)."""
    digest = hashlib.sha256()
    values = [connector.uri, *(str(getattr(connector, name) or "") for name in AUTH_SETTINGS),
              settings.BACKOFFICE_SERVICE_LOGIN, settings.BACKOFFICE_SERVICE_PASSWORD]
    for value in values:
        digest.update(str(value or "").encode() + b"\0")
    return digest.hexdigest()


_cache: dict[int, tuple[str, float, PageService]] = {}
_cache_lock = threading.Lock()


def cached_page(connector: Connector) -> PageService | None:
    if connector.pk is None:
        return None
    with _cache_lock:
        entry = _cache.get(connector.pk)
    if entry is None:
        return None
    digest, loaded_at, page = entry
    if digest != fingerprint(connector) or time.monotonic() - loaded_at > WSDL_TTL_S:
        return None
    return page


def remember(connector: Connector, page: PageService) -> None:
    if connector.pk is None:
        return
    with _cache_lock:
        _cache.pop(connector.pk, None)
        while len(_cache) >= MAX_CACHED:  # dicts keep insertion order: drop the oldest
            del _cache[next(iter(_cache))]
        _cache[connector.pk] = (fingerprint(connector), time.monotonic(), page)


def forget(connector: Connector | None = None) -> None:
    """Drop the cached WSDL of one connector (or of all)."""
    with _cache_lock:
        if connector is None:
            _cache.clear()
        elif connector.pk is not None:
            _cache.pop(connector.pk, None)


def _soap_ports(document: Any) -> Iterator[tuple[str, Any]]:
    for service in document.services.values():
        for port in service.ports.values():
            if isinstance(port.binding, SoapBinding):
                yield service.name, port.binding


def _record_of(binding: Any) -> tuple[str, tuple[str, ...]]:
    """The element the Create operation takes and that element's fields ("", ()) if none."""
    try:
        create = binding.get("Create")
        name, element = create.input.body.type.elements[0]
        return name, tuple(field for field, _ in element.type.elements)
    except (ValueError, AttributeError, IndexError, TypeError):
        return "", ()


def describe(document: Any, address: str) -> PageService | None:
    """The page service of a parsed WSDL: the first SOAP port offering Create, else the first
    SOAP port; None when the document has no SOAP service at all."""
    ports = list(_soap_ports(document))
    if not ports:
        return None
    service_name, binding = next(
        ((s, b) for s, b in ports if "Create" in b.all()), ports[0]
    )
    record_element, record_fields = _record_of(binding)
    return PageService(
        document=document,
        binding=binding,
        address=address,
        service_name=service_name,
        operations=tuple(binding.all()),
        record_element=record_element,
        record_fields=record_fields,
    )


def not_a_wsdl(connector: Connector, transport: SeamTransport, what: str) -> BackOfficeError:
    answer = transport.answers[0] if transport.answers else None
    head = answer.text[:2048].lower() if answer else ""
    seen = ("an HTML page (a sign-in or error page?)"
            if "<html" in head or "<!doctype html" in head else "something that is not a WSDL")
    return BackOfficeError(
        f"{what} answered {seen} at {transport.redactor.text(connector.uri)}: the URI does "
        "not serve a WSDL.",
        permanent=True,
        hint=f"Use the SOAP URL of the published page web service ({PAGE_URI_EXAMPLE}; Business "
        "Central online: https://api.businesscentral.dynamics.com/v2.0/<tenant>/<environment>"
        "/WS/<company>/Page/Appointment), as the Web Services page in Business Central shows it.",
        error_class="NotAWsdl",
        status_code=answer.status_code if answer else None,
        response_excerpt=transport.redactor.excerpt(answer.text) if answer else "",
    )


def load_page(connector: Connector, *, redactor: Redactor, deadline: float, what: str,
              refresh: bool = False) -> PageService:
    """The page service at the connector's URI, from the cache unless `refresh`.

    Raises BackOfficeError: from the seam (network, timeout, HTTP status) or NotAWsdl.
    """
    page = None if refresh else cached_page(connector)
    if page is not None:
        return page
    transport = SeamTransport(connector, redactor=redactor, deadline=deadline, what=what)
    try:
        # zeep annotates `transport` as type[Transport] but means an instance
        document = Document(connector.uri, transport, settings=ZEEP_SETTINGS)  # type: ignore[arg-type]
    except BackOfficeError:
        raise
    except (zeep.exceptions.Error, etree.LxmlError, requests.RequestException, ValueError,
            KeyError, AttributeError) as exc:
        # zeep's parse errors (invalid XML, a DTD as HTML pages have), its WSDL errors and what
        # its parser trips over in an odd document all mean one thing to an administrator.
        raise not_a_wsdl(connector, transport, what) from exc
    finally:
        transport.session.close()
    page = describe(document, service_address(connector.uri))
    if page is None:
        raise not_a_wsdl(connector, transport, what)
    remember(connector, page)
    return page
