"""Delivery's pooled HTTP clients (http.pooled_httpx_client): one per connector and settings per
process, connections kept alive between sends, replaced (and closed) when a setting changes;
probes keep using a fresh client and connection."""

from __future__ import annotations

import dataclasses
import socket
import threading
from typing import Any

import pytest

from connectors.backoffices import http
from connectors.backoffices.webhook import WebhookClient
from tests.fakes import webhook_receiver

from . import samples
from .test_webhook import hook_url, make_webhook

pytestmark = pytest.mark.django_db(transaction=True)


def change(dispatch_id: str) -> Any:
    return dataclasses.replace(samples.change(), dispatch_id=dispatch_id)


@pytest.fixture
def receiver():
    with webhook_receiver.make() as server:
        yield server


@pytest.fixture
def connects(monkeypatch) -> list[Any]:
    """Every TCP connection httpx opens (httpcore calls socket.create_connection)."""
    opened: list[Any] = []
    original = socket.create_connection

    def counting(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        opened.append(address)
        return original(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", counting)
    return opened


def test_sends_reuse_one_kept_alive_connection(receiver, connects):
    connector = make_webhook(hook_url(receiver))
    for n in range(3):
        assert WebhookClient(connector).send(change(f"msg_{n}")).status_code == 200
    assert len(receiver.state.deliveries) == 3
    assert len(connects) == 1


def test_each_send_records_its_own_request_when_threads_share_the_client(receiver):
    connector = make_webhook(hook_url(receiver))
    results: dict[str, str] = {}

    def send(n: int) -> None:
        result = WebhookClient(connector).send(change(f"msg_{n}"))
        assert result.request is not None
        results[f"msg_{n}"] = result.request.headers["webhook-id"]

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {key: key for key in (f"msg_{n}" for n in range(8))}
    assert len(receiver.state.deliveries) == 8


def test_a_changed_setting_replaces_the_client_and_closes_the_old_one(receiver, connects):
    connector = make_webhook(hook_url(receiver), timeout_s=10)
    with http.pooled_httpx_client(connector) as first:
        pass
    with http.pooled_httpx_client(connector) as again:
        assert again is first
    connector.timeout_s = 5
    with http.pooled_httpx_client(connector) as second:
        assert second is not first and first.is_closed
        assert second.timeout.read == 5
    connector.auth_type, connector.login, connector.password = "basic", "ann", "secret"
    with http.pooled_httpx_client(connector) as third:
        assert third is not second and second.is_closed


def test_a_client_in_use_is_closed_only_when_its_request_ends(receiver):
    connector = make_webhook(hook_url(receiver), timeout_s=10)
    with http.pooled_httpx_client(connector) as first:
        connector.timeout_s = 5
        with http.pooled_httpx_client(connector) as second:
            assert second is not first
        assert not first.is_closed  # still in use here
    assert first.is_closed


def test_a_changed_ca_bundle_replaces_the_client(receiver, ca_bundle):
    connector = make_webhook(hook_url(receiver))
    with http.pooled_httpx_client(connector) as trusted:
        pass
    http._ssl_context.cache_clear()  # a new TLS context (as after a changed HTTP_CA_BUNDLE)
    with http.pooled_httpx_client(connector) as renewed:
        assert renewed is not trusted and trusted.is_closed


def test_the_pooled_client_follows_no_redirect_and_keeps_the_seam_timeouts(receiver):
    connector = make_webhook(hook_url(receiver), timeout_s=7)
    with http.pooled_httpx_client(connector) as client:
        assert client.follow_redirects is False
        assert client.timeout.connect == http.CONNECT_TIMEOUT_S
        assert client.timeout.read == 7
        assert client.headers["User-Agent"] == http.USER_AGENT


def test_the_probe_opens_a_fresh_connection_each_time(receiver, connects):
    connector = make_webhook(hook_url(receiver))
    receiver.state.secrets = [connector.signing_secret]
    WebhookClient(connector).probe()
    WebhookClient(connector).probe()
    assert len(connects) == 2
    assert connector.pk not in http._pool


def test_the_least_recently_used_client_goes_beyond_the_pool_size(receiver, monkeypatch):
    monkeypatch.setattr(http, "POOL_SIZE", 1)
    first = make_webhook(hook_url(receiver))
    second = make_webhook(hook_url(receiver), name="Second hook")
    with http.pooled_httpx_client(first) as client:
        pass
    with http.pooled_httpx_client(second):
        pass
    assert client.is_closed and list(http._pool) == [second.pk]


def test_a_forked_child_forgets_its_parents_clients(receiver):
    connector = make_webhook(hook_url(receiver))
    with http.pooled_httpx_client(connector) as client:
        pass
    http._forget_pool_after_fork()  # what os.register_at_fork runs in the child
    assert http._pool == {} and not client.is_closed
    client.close()
