""""Copy as cURL": the request an attempt recorded, as a POSIX shell command.

The recorded request (Attempt.request: method, url, headers, body) was redacted when it was
stored: credentials, signatures and tokens read "[redacted]", so the command shows which
headers to fill in and never what they held. It is redacted once more here with the
connector's Redactor, in case a secret slipped into a body. Every argument goes through
shlex.quote, so no URL, header or body (a JSON document, a SOAP envelope) can break out of
its quotes. The body is passed with --data-raw, which (unlike --data-binary) never reads a
file for a leading "@".
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.backoffices.redact import MASK, Redactor
from connectors.models import Attempt

# cURL works these out itself; copied, a stale Content-Length (the stored body is an excerpt of
# at most 20 kB) or an Accept-Encoding it cannot decode would break the command.
LEFT_OUT_HEADERS = frozenset(
    {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}
)
CUT_MARKER = "…[cut]"


@dataclass(frozen=True)
class Curl:
    command: str
    attempt: Attempt
    body_cut: bool  # the stored body is an excerpt: the command sends only part of it
    has_masked: bool  # some header or value reads "[redacted]": fill it in before running


def curl_command(request: Mapping[str, Any], redactor: Redactor) -> str | None:
    """The command for one recorded request, or None when it holds no URL."""
    url = str(request.get("url") or "")
    if not url:
        return None
    method = str(request.get("method") or "POST").upper()
    args = ["curl", "-X", method, url]
    headers = request.get("headers") or {}
    for name, value in headers.items() if isinstance(headers, Mapping) else ():
        if str(name).lower() not in LEFT_OUT_HEADERS:
            args += ["-H", f"{name}: {value}"]
    body = request.get("body") or ""
    if body:
        args += ["--data-raw", str(body)]
    redacted = (redactor.text(arg) for arg in args)
    return " \\\n  ".join(_lines(shlex.quote(arg) for arg in redacted))


def _lines(quoted: Iterable[str]) -> list[str]:
    """`curl -X POST URL` on the first line, then one option and its value per line."""
    parts = list(quoted)
    lines = [" ".join(parts[:4])]
    lines += [f"{option} {value}" for option, value in zip(parts[4::2], parts[5::2], strict=True)]
    return lines


def latest_curl(attempts: list[Attempt], redactor: Redactor) -> Curl | None:
    """The command for the newest attempt that recorded a request, or None."""
    for attempt in reversed(attempts):
        command = curl_command(attempt.request or {}, redactor)
        if command is not None:
            body = str((attempt.request or {}).get("body") or "")
            return Curl(command, attempt, body.endswith(CUT_MARKER), MASK in command)
    return None
