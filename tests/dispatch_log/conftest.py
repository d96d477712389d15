"""Fixtures of the dispatch log tests: users, a connector holding secrets, dispatches."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from connectors.models import Connector
from tests.connectors.pipeline_factories import ConnectorFactory

SUPPORT_PASSWORD = "a-long-support-password-4417"
PASSWORD = "basic-auth-password-Zq81"
CLIENT_SECRET = "oauth-client-secret-Hh27"
SIGNING_SECRET = "whsec_c2lnbmluZy1zZWNyZXQtZm9yLXRoZS1sb2c="
SECRETS = (PASSWORD, CLIENT_SECRET, SIGNING_SECRET)

support_migration = importlib.import_module("connectors.migrations.0005_support_group")


def ensure_support_group() -> Group:
    """The group as the data migration makes it (again: a transactional test's flush empties
    the tables after the migrations ran)."""
    support_migration.create_support_group(django_apps, None)
    return Group.objects.get(name=support_migration.GROUP)


@pytest.fixture
def support_user(db: Any) -> Any:
    """A staff user (the admin login admits staff only) in the Support group."""
    user = get_user_model().objects.create_user(
        "sam.support", "sam@example.test", SUPPORT_PASSWORD, is_staff=True
    )
    user.groups.add(ensure_support_group())
    return user


@pytest.fixture
def support_client(client: Any, support_user: Any) -> Any:
    client.force_login(support_user)
    return client


@pytest.fixture
def viewer_client(client: Any, db: Any) -> Any:
    """Logged in with view_dispatch only (no retry)."""
    user = get_user_model().objects.create_user("vera.viewer", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_dispatch"))
    client.force_login(user)
    return client


@pytest.fixture
def secret_connector(db: Any) -> Connector:
    """A webhook connector holding every kind of secret (saved around connector_prepare, which
    would drop the ones its auth type does not use)."""
    connector = ConnectorFactory(name="BC prod hook", auth_type="basic", login="svc",
                                 password=PASSWORD)
    connector.client_secret = CLIENT_SECRET
    connector.signing_secret = SIGNING_SECRET
    connector.save()
    return connector
