"""The in-memory table behind the fake `Appointment` page web service (tests.fakes.soap_server).

It behaves like a NAV/Business Central page over a staging table whose primary key is
`Entry No.` (an auto-increment the server assigns): every record carries a `Key` (a bookmark
plus a row version, in the shape NAV uses, e.g. `44;IAAAAAJ7…;3516637531;`) that changes on each
modify, so Update with an old Key fails the way NAV's concurrency check does. Values are kept as
the XML text received, which is what tests assert on.
"""

from __future__ import annotations

import base64
import itertools
import threading
from dataclasses import dataclass
from typing import Any

NAV_ERROR_NS = "urn:microsoft-dynamics-schemas/error"
NAV_EXCEPTIONS = "a:Microsoft.Dynamics.Nav.Types.Exceptions."
SERVICE_BROKER = "a:Microsoft.Dynamics.Nav.Service.WebServices.ServiceBrokerException"

# The page's fields in WSDL order (tests/fakes/wsdl/appointment_page.wsdl), with their XSD type.
FIELDS: dict[str, str] = {
    "Entry_No": "int",
    "Source_App": "string",
    "Source_Type": "string",
    "Database_Action": "string",
    "Job_No": "string",
    "Task_No": "string",
    "Appointment_Id": "int",
    "Appointment_Guid": "string",
    "Subject": "string",
    "Body": "string",
    "Start": "dateTime",
    "End": "dateTime",
    "Is_All_Day_Event": "boolean",
    "Category": "string",
    "Time_Marker": "string",
    "Importance": "int",
    "Planning_Quantity": "decimal",
    "Planning_UOM": "string",
    "Backoffice_Id": "string",
}
LINES_PART = "Appointment_Resources"
LINE_ELEMENT = "Appointment_Resource_Line"
LINE_FIELDS = ("Resource_No",)


@dataclass
class SoapFault:
    """A fault the server answers: `code` as it appears in <faultcode> (prefix `s:` is the SOAP
    envelope namespace, `a:` NAV's error namespace), `message` the <faultstring>."""

    code: str
    message: str
    status: int = 500  # SOAP 1.1 over HTTP sends faults with 500
    count: int | None = 1  # how many requests get it; None = all until cleared
    namespace: str = NAV_ERROR_NS  # what the `a:` prefix stands for
    delay_s: float = 0.0  # answer this late (a slow service tier)


class PageFault(Exception):
    def __init__(self, fault: SoapFault) -> None:
        super().__init__(fault.message)
        self.fault = fault


def business_error(message: str, exception: str = "NavNCLDialogException") -> PageFault:
    """A NAV business error as AL's Error() raises it (permanent for the client)."""
    return PageFault(SoapFault(NAV_EXCEPTIONS + exception, message))


def not_found(entry_no: int | str) -> PageFault:
    return business_error(
        f"The Appointment does not exist. Identification fields and values: "
        f"Entry No.='{entry_no}'",
        "NavCSideRecordNotFoundException",
    )


def make_key(entry_no: int, version: int, table: str = "Appointment") -> str:
    """A NAV-shaped Key: `<len>;<bookmark><len>;<row version>;`."""
    bookmark = base64.b64encode(f"{table}:{entry_no}".encode("utf-16-le")).decode()
    return f"{len(bookmark)};{bookmark}{len(str(version))};{version};"


def parse_key(key: str) -> tuple[int, int] | None:
    """(entry_no, version) of a Key made by make_key; None for anything else."""
    try:
        length, _, rest = key.partition(";")
        bookmark, rest = rest[: int(length)], rest[int(length):]
        _, _, version = rest.rstrip(";").partition(";")
        table_and_no = base64.b64decode(bookmark).decode("utf-16-le")
        return int(table_and_no.rpartition(":")[2]), int(version)
    except (ValueError, UnicodeDecodeError):
        return None


class AppointmentTable:
    """Rows by Entry No.; every method is thread-safe (the fake serves threads)."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._entry_nos = itertools.count(1)
        self._versions = itertools.count(3516637530)  # like a SQL rowversion

    def _stamp(self, entry_no: int, record: dict[str, Any]) -> dict[str, Any]:
        record["Key"] = make_key(entry_no, next(self._versions))
        record["Entry_No"] = str(entry_no)
        for number, line in enumerate(record.get(LINES_PART) or [], start=1):
            line["Key"] = make_key(entry_no * 10000 + number, next(self._versions),
                                   "Appointment Resource")
        return record

    def insert(self, record: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            entry_no = next(self._entry_nos)
            self.rows[entry_no] = self._stamp(entry_no, dict(record))
            return dict(self.rows[entry_no])

    def get(self, entry_no: int) -> dict[str, Any] | None:
        with self._lock:
            row = self.rows.get(entry_no)
            return dict(row) if row is not None else None

    def _current(self, key: str, *, method: str) -> int:
        parsed = parse_key(key) if key else None
        if parsed is None:
            raise PageFault(SoapFault(SERVICE_BROKER, f"Parameter Key in method {method} is not "
                                                      "valid"))
        entry_no, version = parsed
        row = self.rows.get(entry_no)
        if row is None:
            raise not_found(entry_no)
        if method == "Update" and parse_key(row["Key"]) != (entry_no, version):
            raise business_error(
                f'Other user has modified "Appointment" "Entry No.=CONST({entry_no})".'
            )
        return entry_no

    def modify(self, record: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            entry_no = self._current(record.get("Key", ""), method="Update")
            changes = {k: v for k, v in record.items() if k not in ("Key", "Entry_No")}
            self.rows[entry_no] = self._stamp(entry_no, {**self.rows[entry_no], **changes})
            return dict(self.rows[entry_no])

    def delete(self, key: str) -> None:
        with self._lock:
            del self.rows[self._current(key, method="Delete")]

    def is_updated(self, key: str) -> bool:
        with self._lock:
            entry_no = self._current(key, method="IsUpdated")
            return self.rows[entry_no]["Key"] != key

    def select(self, filters: list[tuple[str, str]], after: str, size: int) -> list[dict[str, Any]]:
        """ReadMultiple: rows whose fields equal every filter's criteria (NAV's simplest filter
        syntax), after the bookmark Key, at most `size` (0 = all)."""
        with self._lock:
            start = (parse_key(after) or (0, 0))[0] if after else 0
            found = [
                dict(row) for entry_no, row in sorted(self.rows.items())
                if entry_no > start and all(row.get(f) == c for f, c in filters)
            ]
        return found[:size] if size > 0 else found
