"""Every authentication method end to end: the real clients (httpx, requests, requests-ntlm,
pyspnego, msal) against loopback fakes (tests.fakes.protected, tests.fakes.token_server).

Connectors are built in memory (no database); the token cache is emptied around each test.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from requests_ntlm import HttpNtlmAuth

from connectors.backoffices import auth, errors, http
from connectors.backoffices.base import BackOfficeError
from connectors.backoffices.redact import redactor_for
from connectors.models import Connector
from tests.fakes.auth_gate import AuthPolicy
from tests.fakes.token_server import CLIENT_ID, CLIENT_SECRET, TENANT

from .conftest import clear_http_caches

ROOT = Path(__file__).resolve().parents[3]
LOGIN, PASSWORD = "svc-dime", "basic-Password-4471"
WINDOWS_LOGIN, WINDOWS_PASSWORD = "CRONUS\\alice", "Winter#2026-ntlm"
SERVICE_LOGIN, SERVICE_PASSWORD = "svc-account", "service-Password-9902"
OTHER_SCOPE = "api://some-other-api/.default"


def make_connector(**values: Any) -> Connector:
    fields: dict[str, Any] = {
        "name": "Auth test", "type": "bc_onprem", "api_type": "soap", "auth_type": "basic",
        "uri": "http://127.0.0.1/", "source_app": "BCPROD", "timeout_s": 5,
    }
    fields.update(values)
    return Connector(**fields)


def entra_connector(**values: Any) -> Connector:
    return make_connector(**{
        "type": "bc_online", "api_type": "rest", "auth_type": "entra_id", "tenant_id": TENANT,
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **values,
    })


def oauth2_connector(server, auth_type: str, **values: Any) -> Connector:
    return make_connector(**{
        "type": "webhook", "api_type": "rest", "auth_type": auth_type,
        "token_url": server.url + "/oauth2/token", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET, **values,
    })


def call_httpx(connector: Connector, url: str, method: str = "GET", **kwargs: Any):
    with http.httpx_client(connector, auth=auth.httpx_auth(connector)) as client:
        return http.httpx_request(client, method, url, connector=connector,
                                  redactor=redactor_for(connector), **kwargs)


def call_requests(connector: Connector, url: str, method: str = "GET", **kwargs: Any):
    with http.requests_session(connector, auth=auth.requests_auth(connector)) as session:
        _, answer = http.requests_call(session, method, url, connector=connector,
                                       redactor=redactor_for(connector), **kwargs)
    return answer


CLIENTS = {"httpx": call_httpx, "requests": call_requests}


def token_posts(server) -> list:
    return [r for r in server.requests if r.method == "POST"]


def header(answer, name: str) -> str:
    return {k.lower(): v for k, v in answer.headers.items()}.get(name.lower(), "")


def form_of(recorded) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(recorded.body.decode()).items()}


# --- credentials, none and basic ----------------------------------------------------------


def test_credentials_are_the_connectors_own_login_and_password(settings):
    settings.BACKOFFICE_SERVICE_LOGIN = SERVICE_LOGIN
    assert auth.credentials(make_connector(login=LOGIN, password=PASSWORD)) == (LOGIN, PASSWORD)


@pytest.mark.parametrize("values", [
    {"auth_type": "none"},
    {"auth_type": "none", "login": LOGIN, "password": PASSWORD},
    {"auth_type": "basic", "login": "", "password": ""},
])
def test_auth_type_none_or_a_blank_login_and_password_use_the_service_account(settings, values):
    settings.BACKOFFICE_SERVICE_LOGIN = SERVICE_LOGIN
    settings.BACKOFFICE_SERVICE_PASSWORD = SERVICE_PASSWORD
    assert auth.credentials(make_connector(**values)) == (SERVICE_LOGIN, SERVICE_PASSWORD)


@pytest.mark.parametrize("client", CLIENTS)
def test_basic_with_the_right_password_is_accepted(protected_server, client):
    server = protected_server(AuthPolicy("basic", LOGIN, PASSWORD))
    connector = make_connector(login=LOGIN, password=PASSWORD)

    answer = CLIENTS[client](connector, server.url + "/echo")

    assert answer.status_code == 200
    assert answer.json()["authorization"] == "Basic"


@pytest.mark.parametrize("client", CLIENTS)
def test_basic_with_a_wrong_password_gets_the_servers_401(protected_server, client):
    server = protected_server(AuthPolicy("basic", LOGIN, PASSWORD))
    connector = make_connector(login=LOGIN, password="not-the-password")

    answer = CLIENTS[client](connector, server.url + "/echo")

    assert answer.status_code == 401
    error = errors.error_for_status(401, answer.headers, answer.text,
                                    redactor=redactor_for(connector))
    assert error.permanent
    assert "The server has rejected the client credentials" in error.message
    assert "check the login and password" in error.hint


@pytest.mark.parametrize("client", CLIENTS)
def test_a_non_ascii_password_is_sent_as_utf8_by_both_clients(protected_server, client):
    password = "Pässwörd-€-Grüße"
    server = protected_server(AuthPolicy("basic", LOGIN, password))

    answer = CLIENTS[client](make_connector(login=LOGIN, password=password), server.url + "/echo")

    assert answer.status_code == 200


@pytest.mark.parametrize("client", CLIENTS)
def test_none_sends_the_service_account_as_basic_when_one_is_configured(
        settings, protected_server, client):
    settings.BACKOFFICE_SERVICE_LOGIN = SERVICE_LOGIN
    settings.BACKOFFICE_SERVICE_PASSWORD = SERVICE_PASSWORD
    server = protected_server(AuthPolicy("basic", SERVICE_LOGIN, SERVICE_PASSWORD))

    answer = CLIENTS[client](make_connector(auth_type="none"), server.url + "/echo")

    assert answer.status_code == 200


@pytest.mark.parametrize("client", CLIENTS)
def test_none_without_a_service_account_sends_no_authorization(settings, protected_server, client):
    settings.BACKOFFICE_SERVICE_LOGIN = ""
    server = protected_server(AuthPolicy("none"))
    connector = make_connector(auth_type="none")

    answer = CLIENTS[client](connector, server.url + "/echo")

    assert auth.httpx_auth(connector) is None and auth.requests_auth(connector) is None
    assert answer.status_code == 200
    assert server.requests[0].header("Authorization") is None


@pytest.mark.parametrize("auth_type", ["ntlm", "windows"])
def test_ntlm_and_windows_are_refused_for_rest_with_a_message_naming_soap(auth_type):
    connector = make_connector(auth_type=auth_type, login=WINDOWS_LOGIN, password=PASSWORD)

    with pytest.raises(BackOfficeError) as raised:
        auth.httpx_auth(connector)

    assert raised.value.permanent
    assert "works only with the SOAP API type" in raised.value.message


def test_basic_without_any_login_is_refused_with_a_hint(settings):
    settings.BACKOFFICE_SERVICE_LOGIN = ""
    with pytest.raises(BackOfficeError) as raised:
        auth.requests_auth(make_connector(login="", password=""))
    assert raised.value.permanent
    assert "BACKOFFICE_SERVICE_LOGIN" in raised.value.hint


# --- NTLM and Windows (Negotiate) ---------------------------------------------------------


def windows_connector(auth_type: str, password: str = WINDOWS_PASSWORD) -> Connector:
    return make_connector(auth_type=auth_type, login=WINDOWS_LOGIN, password=password)


def test_ntlm_via_requests_ntlm_completes_a_real_handshake_and_posts_the_body(protected_server):
    server = protected_server(AuthPolicy("ntlm", WINDOWS_LOGIN, WINDOWS_PASSWORD))

    answer = call_requests(windows_connector("ntlm"), server.url + "/echo", "POST",
                           data=b"<Create/>", headers={"Content-Type": "text/xml"})

    assert answer.status_code == 200
    assert answer.json() == {"method": "POST", "user": WINDOWS_LOGIN, "authorization": "NTLM",
                             "body": "<Create/>"}
    # negotiate (type 1), authenticate (type 3) after the challenge: three requests
    assert [r.header("Authorization")[:5] if r.header("Authorization") else None
            for r in server.requests] == [None, "NTLM ", "NTLM "]


def test_ntlm_with_a_wrong_password_gets_401(protected_server):
    server = protected_server(AuthPolicy("ntlm", WINDOWS_LOGIN, WINDOWS_PASSWORD))

    answer = call_requests(windows_connector("ntlm", "wrong-password"), server.url + "/echo")

    assert answer.status_code == 401
    assert server.state.passed == 0


def test_windows_negotiates_spnego_with_the_acceptor_and_checks_its_final_token(
        protected_server):
    server = protected_server(AuthPolicy("negotiate", WINDOWS_LOGIN, WINDOWS_PASSWORD))

    answer = call_requests(windows_connector("windows"), server.url + "/echo", "POST",
                           data=b"<Create/>")

    assert answer.status_code == 200
    assert answer.json()["user"] == WINDOWS_LOGIN
    assert answer.json()["authorization"] == "Negotiate"
    assert answer.json()["body"] == "<Create/>"
    # SPNEGO's accept-completed token came back on the 200 and the client verified it
    assert header(answer, "WWW-Authenticate").startswith("Negotiate ")
    legs = [base64.b64decode(r.header("Authorization")[10:]) for r in server.requests[1:]]
    assert legs[0][:1] == b"\x60"  # an RFC 2743 InitialContextToken: SPNEGO, not raw NTLM


def test_windows_with_a_wrong_password_gets_401(protected_server):
    server = protected_server(AuthPolicy("negotiate", WINDOWS_LOGIN, WINDOWS_PASSWORD))

    answer = call_requests(windows_connector("windows", "wrong-password"), server.url + "/echo")

    assert answer.status_code == 401
    assert header(answer, "WWW-Authenticate") == "Negotiate"
    assert server.state.passed == 0


@pytest.mark.parametrize("scheme", ["negotiate", "ntlm"])
def test_windows_and_ntlm_over_https_pass_extended_protection_which_refuses_no_bindings(
        protected_server, test_ca, ca_bundle, scheme):
    name = f"epa-{scheme}"
    tls = test_ca.server_context(name)
    policy = AuthPolicy(scheme, WINDOWS_LOGIN, WINDOWS_PASSWORD,
                        extended_protection_cert=str(Path(test_ca.directory) / f"{name}.pem"))
    server = protected_server(policy, tls=tls)
    connector = windows_connector("windows" if scheme == "negotiate" else "ntlm")
    url = server.url + "/echo"

    assert call_requests(connector, url).status_code == 200  # RFC 5929 bindings were sent
    with http.requests_session(connector, auth=HttpNtlmAuth(WINDOWS_LOGIN, WINDOWS_PASSWORD,
                                                            send_cbt=False)) as session:
        _, without = http.requests_call(session, "GET", url, connector=connector,
                                        redactor=redactor_for(connector))
    assert without.status_code == 401  # the fake really checks them


def test_a_connection_authenticated_once_serves_the_next_requests_without_a_handshake(
        protected_server):
    server = protected_server(AuthPolicy("negotiate", WINDOWS_LOGIN, WINDOWS_PASSWORD))
    connector = windows_connector("windows")

    with http.requests_session(connector, auth=auth.requests_auth(connector)) as session:
        for _ in range(3):
            _, answer = http.requests_call(session, "GET", server.url + "/echo",
                                           connector=connector, redactor=redactor_for(connector))
            assert answer.status_code == 200

    assert len(server.requests) == 3 + 2  # one handshake (3 requests), then one request each


# --- Microsoft Entra ID (msal) -------------------------------------------------------------


def test_an_entra_token_comes_from_msal_and_the_resource_accepts_it(entra, protected_server):
    resource = protected_server(AuthPolicy("bearer", audience=auth.BC_SCOPE))
    connector = entra_connector()

    answer = call_httpx(connector, resource.url + "/echo")

    assert answer.status_code == 200
    assert entra.state.issued == [{"client_id": CLIENT_ID, "scope": auth.BC_SCOPE,
                                   "tid": TENANT}]
    assert entra.state.client_auth == ["post"]  # msal puts the secret in the form


def test_msal_reads_only_the_tenants_openid_configuration_and_the_token_endpoint(entra):
    auth.fetch_token(entra_connector())

    assert [(r.method, r.path) for r in entra.requests] == [
        ("GET", f"/{TENANT}/v2.0/.well-known/openid-configuration"),
        ("POST", f"/{TENANT}/oauth2/v2.0/token"),
    ]


def test_a_second_fetch_is_served_from_the_cache_without_a_request(entra):
    connector = entra_connector()

    first = auth.fetch_token(connector)
    second = auth.fetch_token(connector)

    assert second is first
    assert entra.state.token_requests == 1
    assert first.token_type == "Bearer"
    assert 3500 < first.expires_at - time.time() <= 3600


def test_force_fetches_a_new_token_and_the_cache_keeps_the_new_one(entra):
    connector = entra_connector()
    first = auth.fetch_token(connector)

    forced = auth.fetch_token(connector, force=True)

    assert forced is not first
    assert auth.fetch_token(connector) is forced
    assert entra.state.token_requests == 2


def test_a_changed_secret_never_gets_the_cached_token(entra):
    connector = entra_connector()
    auth.fetch_token(connector)

    connector.client_secret = "a-new-but-wrong-secret"
    with pytest.raises(BackOfficeError) as raised:
        auth.fetch_token(connector)
    assert "AADSTS7000215" in raised.value.message

    entra.state.clients[CLIENT_ID] = "a-new-but-wrong-secret"  # now rotated on the tenant too
    assert auth.fetch_token(connector).access_token
    assert entra.state.token_requests == 3


def test_a_token_near_its_expiry_is_fetched_again(entra):
    entra.state.lifetime_s = 1  # refreshed when less than 10 % of its lifetime remains
    connector = entra_connector()
    first = auth.fetch_token(connector)

    time.sleep(0.95)

    assert auth.fetch_token(connector) is not first
    assert entra.state.token_requests == 2


def test_concurrent_callers_for_one_connector_share_one_fetch(entra):
    connector = entra_connector()
    tokens: list[auth.TokenInfo] = []
    threads = [threading.Thread(target=lambda: tokens.append(auth.fetch_token(connector)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(tokens) == 8 and all(token is tokens[0] for token in tokens)
    assert entra.state.token_requests == 1


@pytest.mark.parametrize("client", CLIENTS)
def test_a_refused_token_is_fetched_again_once_then_the_401_is_left_with_a_clear_error(
        entra, protected_server, client):
    resource = protected_server(AuthPolicy("bearer", audience=OTHER_SCOPE))
    connector = entra_connector()

    body = {"content" if client == "httpx" else "data": b"{}"}

    answer = CLIENTS[client](connector, resource.url + "/echo", "POST", **body)

    assert answer.status_code == 401
    assert entra.state.token_requests == 2  # the first token, then one forced refetch
    assert len(resource.requests) == 2  # sent, then resent once
    assert resource.requests[1].body == b"{}"
    error = errors.error_for_status(401, answer.headers, answer.text,
                                    redactor=redactor_for(connector))
    assert error.permanent
    assert error.message.startswith("The back office answered HTTP 401: "
                                    "Authentication_InvalidCredentials: The server has rejected")
    assert "scope" in auth.unauthorized_hint(connector)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_token_that_died_early_is_healed_by_the_one_refetch(entra, protected_server, client):
    entra.state.lifetime_s, entra.state.expires_in_s = 2, 3600  # dies long before we expect
    resource = protected_server(AuthPolicy("bearer", audience=auth.BC_SCOPE))
    connector = entra_connector()
    auth.fetch_token(connector)
    time.sleep(2.1)

    answer = CLIENTS[client](connector, resource.url + "/echo")

    assert answer.status_code == 200
    assert entra.state.token_requests == 2


def test_a_business_central_connector_defaults_to_the_bc_api_scope_a_webhook_oauth2_to_none():
    assert auth.default_scope(entra_connector()) == auth.BC_SCOPE
    assert auth.default_scope(entra_connector(type="bc_onprem")) == auth.BC_SCOPE
    assert auth.default_scope(entra_connector(scope=f"  {OTHER_SCOPE} ")) == OTHER_SCOPE
    assert auth.default_scope(entra_connector(auth_type="oauth2_basic")) == auth.BC_SCOPE
    assert auth.default_scope(entra_connector(type="webhook", auth_type="oauth2_post")) == ""


def test_a_webhook_with_entra_id_and_no_scope_is_refused_before_any_request(entra):
    with pytest.raises(BackOfficeError) as raised:
        auth.fetch_token(entra_connector(type="webhook"))

    assert raised.value.permanent
    assert "needs a scope" in raised.value.message
    assert "/.default" in raised.value.hint
    assert entra.requests == []


def test_a_malformed_tenant_id_is_refused_before_any_request(entra):
    with pytest.raises(BackOfficeError) as raised:
        auth.fetch_token(entra_connector(tenant_id="not a/tenant"))

    assert raised.value.permanent
    assert "tenant ID" in raised.value.hint
    assert entra.requests == []


# --- Entra and OAuth2 errors ---------------------------------------------------------------


def test_a_wrong_client_secret_is_permanent_with_the_aadsts7000215_hint(entra):
    with pytest.raises(BackOfficeError) as raised:
        auth.fetch_token(entra_connector(client_secret="the-secret-ID-not-its-value"))

    error = raised.value
    assert error.permanent and error.status_code == 401
    assert error.message.startswith(
        "Microsoft Entra ID answered HTTP 401: invalid_client: AADSTS7000215: Invalid client "
        "secret provided.")
    assert error.hint == errors.AADSTS_HINTS[7000215]


def test_an_unknown_tenant_is_permanent_with_the_aadsts90002_hint(entra):
    with pytest.raises(BackOfficeError) as raised:
        auth.fetch_token(entra_connector(tenant_id="00000000-0000-0000-0000-000000000000"))

    error = raised.value
    assert error.permanent and error.status_code == 400
    assert "invalid_tenant: AADSTS90002: Tenant '00000000-0000-0000-0000-000000000000' not " \
           "found" in error.message
    assert error.hint == errors.AADSTS_HINTS[90002]


def test_an_unknown_tenant_at_an_entra_token_url_used_with_oauth2_gets_the_same_hint(
        token_server, ca_bundle):
    connector = oauth2_connector(token_server, "oauth2_post", scope=auth.BC_SCOPE,
                                 token_url=token_server.url + "/nowhere/oauth2/v2.0/token")
    with pytest.raises(BackOfficeError) as raised:
        auth.fetch_token(connector)

    assert raised.value.permanent
    assert "invalid_request: AADSTS90002" in raised.value.message
    assert raised.value.hint == errors.AADSTS_HINTS[90002]


def test_an_unknown_client_id_is_permanent_with_the_aadsts700016_hint(entra):
    with pytest.raises(BackOfficeError) as raised:
        auth.fetch_token(entra_connector(client_id="11111111-2222-3333-4444-555555555555"))

    error = raised.value
    assert error.permanent and error.status_code == 400
    assert "unauthorized_client: AADSTS700016: Application with identifier" in error.message
    assert error.hint == errors.AADSTS_HINTS[700016]


def test_a_5xx_from_the_token_endpoint_is_transient(entra):
    entra.fail(status=503, path="/token")

    with pytest.raises(BackOfficeError) as raised:
        auth.fetch_token(entra_connector())

    assert not raised.value.permanent
    assert raised.value.status_code == 503


def test_an_untrusted_ca_is_a_tls_error_with_the_ca_hint(settings, token_server):
    settings.ENTRA_AUTHORITY_HOST = token_server.url
    settings.HTTP_CA_BUNDLE = ""
    clear_http_caches()
    for connector in (entra_connector(), oauth2_connector(token_server, "oauth2_basic")):
        with pytest.raises(BackOfficeError) as raised:
            auth.fetch_token(connector)

        assert raised.value.error_class == "TLSError"
        assert "HTTP_CA_BUNDLE" in raised.value.hint
    assert token_server.state.token_requests == 0


@pytest.mark.parametrize("kind", ["entra_id", "oauth2_basic"])
def test_a_hanging_token_endpoint_is_cut_at_the_connectors_timeout(entra, kind):
    entra.fail(hang=True, path="/token")  # msal's discovery still answers
    connector = (entra_connector(timeout_s=2) if kind == "entra_id"
                 else oauth2_connector(entra, kind, timeout_s=2))

    started = time.monotonic()
    with pytest.raises(BackOfficeError) as raised:
        auth.fetch_token(connector)
    elapsed = time.monotonic() - started

    assert elapsed < 2 + 1.5
    assert raised.value.error_class == "Timeout" and not raised.value.permanent
    assert "within 2 s" in raised.value.message


# --- OAuth2 client credentials (httpx) ----------------------------------------------------


def test_oauth2_basic_sends_the_client_credentials_in_the_basic_header_only(
        token_server, ca_bundle):
    token = auth.fetch_token(oauth2_connector(token_server, "oauth2_basic"))

    [post] = token_posts(token_server)
    assert token_server.state.client_auth == ["basic"]
    assert post.header("Authorization").startswith("Basic ")
    assert form_of(post) == {"grant_type": "client_credentials"}  # no scope when blank
    assert token.access_token


def test_oauth2_post_sends_the_client_credentials_in_the_body_only(token_server, ca_bundle):
    auth.fetch_token(oauth2_connector(token_server, "oauth2_post", scope="read write"))

    [post] = token_posts(token_server)
    assert token_server.state.client_auth == ["post"]
    assert post.header("Authorization") is None
    assert form_of(post) == {"grant_type": "client_credentials", "client_id": CLIENT_ID,
                             "client_secret": CLIENT_SECRET, "scope": "read write"}


def test_oauth2_basic_form_urlencodes_id_and_secret_before_base64(token_server, ca_bundle):
    secret = "a+b:c/d%e f€"  # RFC 6749 §2.3.1
    token_server.state.clients[CLIENT_ID] = secret

    auth.fetch_token(oauth2_connector(token_server, "oauth2_basic", client_secret=secret))

    [post] = token_posts(token_server)
    assert base64.b64decode(post.header("Authorization")[6:]).decode() == (
        f"{CLIENT_ID}:a%2Bb%3Ac%2Fd%25e+f%E2%82%AC")


@pytest.mark.parametrize("client", CLIENTS)
def test_an_oauth2_token_is_accepted_by_the_resource(token_server, ca_bundle, protected_server,
                                                     client):
    resource = protected_server(AuthPolicy("bearer", audience="dime.write"))
    connector = oauth2_connector(token_server, "oauth2_post", scope="dime.write")

    answer = CLIENTS[client](connector, resource.url + "/echo")

    assert answer.status_code == 200
    assert answer.json()["authorization"] == "Bearer"


@pytest.mark.parametrize("kind", ["oauth2_basic", "oauth2_post"])
def test_an_oauth2_wrong_secret_is_permanent_with_a_client_credentials_hint(
        token_server, ca_bundle, kind):
    with pytest.raises(BackOfficeError) as raised:
        auth.fetch_token(oauth2_connector(token_server, kind, client_secret="wrong-secret"))

    error = raised.value
    assert error.permanent and error.status_code == 401
    assert error.message == ("The authorization server 127.0.0.1 answered HTTP 401: "
                             "invalid_client: Client authentication failed.")
    assert "check the client ID and secret" in error.hint


def test_an_oauth2_token_url_without_https_is_refused(token_server):
    connector = oauth2_connector(token_server, "oauth2_basic",
                                 token_url="http://idp.example.com/oauth2/token")
    with pytest.raises(BackOfficeError) as raised:
        auth.fetch_token(connector)
    assert raised.value.permanent
    assert "https" in raised.value.hint


# --- secrets stay out of logs and messages ------------------------------------------------


def test_no_secret_or_token_reaches_the_logs_or_any_message(
        entra, protected_server, caplog, settings):
    caplog.set_level(logging.DEBUG)
    for name in ("msal", "urllib3", "httpx", "httpcore", "requests_ntlm", "spnego"):
        caplog.set_level(logging.DEBUG, logger=name)
    settings.BACKOFFICE_SERVICE_PASSWORD = SERVICE_PASSWORD
    wrong_secret = "wrong-Secret-value-31337"
    secrets = [CLIENT_SECRET, wrong_secret, WINDOWS_PASSWORD, PASSWORD, SERVICE_PASSWORD]
    texts: list[str] = []

    def attempt(action) -> Any:
        try:
            return action()
        except BackOfficeError as error:
            texts.extend([str(error), error.message, error.hint, error.response_excerpt])
            return None

    tokens = [
        attempt(lambda: auth.fetch_token(entra_connector())),
        attempt(lambda: auth.fetch_token(oauth2_connector(entra, "oauth2_basic"))),
        attempt(lambda: auth.fetch_token(oauth2_connector(entra, "oauth2_post"))),
    ]
    attempt(lambda: auth.fetch_token(entra_connector(client_secret=wrong_secret)))
    attempt(lambda: auth.fetch_token(oauth2_connector(entra, "oauth2_post",
                                                      client_secret=wrong_secret)))
    refusing = protected_server(AuthPolicy("bearer", audience=OTHER_SCOPE))
    answer = attempt(lambda: call_httpx(entra_connector(scope="x"), refusing.url + "/echo"))
    texts.append(str(errors.error_for_status(answer.status_code, answer.headers, answer.text,
                                             redactor=redactor_for(entra_connector()))))
    windows = protected_server(AuthPolicy("ntlm", WINDOWS_LOGIN, WINDOWS_PASSWORD))
    attempt(lambda: call_requests(windows_connector("ntlm", PASSWORD), windows.url + "/echo"))
    basic = protected_server(AuthPolicy("basic", LOGIN, PASSWORD))
    attempt(lambda: call_httpx(make_connector(login=LOGIN, password=PASSWORD), basic.url + "/"))
    entra.fail(hang=True, path="/token")
    attempt(lambda: auth.fetch_token(entra_connector(timeout_s=1, scope="y")))

    assert all(tokens)
    texts.extend(repr(token) for token in tokens)
    logged = caplog.text + "\n".join(texts)
    assert "Fetched a entra_id token" in caplog.text  # the logs were captured at all
    for secret in secrets + [token.access_token for token in tokens]:
        assert secret not in logged


# --- the fakes run alone ------------------------------------------------------------------


def _start_alone(module: str, *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", f"tests.fakes.{module}", "--port", "0", *args],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ},
    )
    lines: list[str] = []
    assert process.stdout is not None
    while not lines or "listening on" not in lines[-1]:
        line = process.stdout.readline()
        assert line, f"{module} ended early: {lines}"
        lines.append(line.strip())
    return process, lines


def test_the_token_server_runs_alone_and_msal_gets_a_token_from_it(settings):
    process, lines = _start_alone("token_server")
    try:
        values = dict(line.split("=", 1) for line in lines if line.startswith("HTTP_CA_BUNDLE"))
        settings.HTTP_CA_BUNDLE = values["HTTP_CA_BUNDLE"]
        settings.ENTRA_AUTHORITY_HOST = lines[-1].rsplit(" ", 1)[-1]
        clear_http_caches()

        token = auth.fetch_token(entra_connector())

        assert token.access_token
    finally:
        process.terminate()
        process.wait(timeout=10)
        clear_http_caches()


def test_the_protected_endpoint_runs_alone_behind_negotiate():
    process, lines = _start_alone("protected", "--auth", "negotiate", "--login", WINDOWS_LOGIN,
                                  "--password", WINDOWS_PASSWORD)
    try:
        url = lines[-1].rsplit(" ", 1)[-1]

        answer = call_requests(windows_connector("windows"), url + "/echo")

        assert answer.status_code == 200
        assert answer.json()["user"] == WINDOWS_LOGIN
    finally:
        process.terminate()
        process.wait(timeout=10)
