"""`manage.py first_run`: the administrator account and demo data, once (called by `make run`)."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from dimeconnect import demo


class Command(BaseCommand):
    help = (
        "On the first run: create a superuser (password from DIMECONNECT_ADMIN_PASSWORD, or "
        "generated and printed once) and load the demo connectors and API client."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/admin/")
        parser.add_argument("--no-demo", action="store_true", help="Skip the demo data.")

    def handle(self, *args: Any, url: str, no_demo: bool, **options: Any) -> None:
        user_model = get_user_model()
        if user_model.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                f"Admin: {url} (log in with your account; "
                "`python manage.py changepassword USER` resets a password)."
            )
            return
        username = os.environ.get("DIMECONNECT_ADMIN_USER", "admin")
        password = os.environ.get("DIMECONNECT_ADMIN_PASSWORD", "")
        generated = not password
        password = password or secrets.token_urlsafe(12)
        with transaction.atomic():
            user_model.objects.create_superuser(username=username, email="", password=password)
            demo_key = None if no_demo else demo.load()
        self.stdout.write(self.style.SUCCESS(f"Admin: {url}"))
        if generated:
            self.stdout.write(
                f"  user {username}, password {password}  (shown once: write it down)"
            )
        else:
            self.stdout.write(f"  user {username}, password from DIMECONNECT_ADMIN_PASSWORD")
        if demo_key:
            self.stdout.write(
                f"Demo data loaded: {len(demo.CONNECTORS)} connectors (disabled) and the API "
                f"client {demo.API_CLIENT_NAME!r}, key (shown once):\n  {demo_key}"
            )
