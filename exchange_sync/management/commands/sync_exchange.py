"""`manage.py sync_exchange [--resource R] [--full]`: push everything that qualifies to Outlook."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q, QuerySet

from dimeconnect.progress import ProgressBar
from exchange_sync.graph import GraphClient, GraphError
from exchange_sync.models import ExchangeSettings, LinkOrigin, Resource
from exchange_sync.outbound import mark_pending
from exchange_sync.outbound.push import PushSummary, push_all
from exchange_sync.outbound.reconcile import appointments_to_push, reconcile_mailbox
from exchange_sync.resources import synced

COMMAND_BUDGET_S = 6 * 3600.0


class Command(BaseCommand):
    help = (
        "Push every appointment that qualifies to its resources' Outlook calendars (create, "
        "update, delete), or reconcile one resource. --full also rewrites unchanged events and "
        "compares each mailbox with the stored links."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--resource", metavar="R", help="Only this resource (resource no).")
        parser.add_argument("--source-app", metavar="APP",
                            help="The resource's source app, when its number exists in several.")
        parser.add_argument("--full", action="store_true",
                            help="Rewrite every event and reconcile the mailboxes with the links.")

    def handle(self, *args: Any, resource: str | None, source_app: str | None, full: bool,
               **options: Any) -> None:
        exchange = ExchangeSettings.load()
        if not exchange.configured:
            raise CommandError(
                "Exchange sync is off or incomplete: in the admin's Exchange settings turn it on "
                "and set the tenant ID, client ID and client secret."
            )
        resources = self._resources(resource, source_app)
        if full:
            self._reconcile(exchange, resources)
        ids = appointments_to_push(resources, exchange)
        mark_pending(ids, force=full)
        bar = ProgressBar(self.stdout, "Pushing to Outlook", len(ids))

        def progress(total: PushSummary) -> None:
            bar.advance(total.claimed - bar.done)

        summary = push_all(budget_s=COMMAND_BUDGET_S, progress=progress)
        bar.close()
        line = f"{len(ids)} appointment(s) checked; {summary}."
        if summary.failed or summary.retrying:
            raise CommandError(f"{line} Some changes did not reach Outlook: see the sync log "
                               "(admin → Exchange sync → Sync log); retries are automatic.")
        self.stdout.write(self.style.SUCCESS(line))

    def _resources(self, number: str | None, source_app: str | None) -> list[Resource]:
        if number is None:
            if source_app:
                raise CommandError("--source-app only goes with --resource.")
            with_links = Q(links__origin=LinkOrigin.PLANNER) & ~Q(links__event_id="")
            query: QuerySet[Resource] = Resource.objects.filter(
                Q(sync_enabled=True) | with_links).distinct()
            return list(query)
        matches = Resource.objects.filter(resource_no=number)
        if source_app:
            matches = matches.filter(source_app=source_app)
        found = list(matches)
        if not found:
            where = f" in source app {source_app}" if source_app else ""
            raise CommandError(f"No resource {number!r}{where}: check the resource no "
                               "(admin → Exchange sync → Resources).")
        if len(found) > 1:
            apps = ", ".join(sorted(r.source_app for r in found))
            raise CommandError(f"Resource {number!r} exists in source apps {apps}: add "
                               "--source-app.")
        return found

    def _reconcile(self, exchange: ExchangeSettings, resources: list[Resource]) -> None:
        with GraphClient.from_settings(exchange) as client:
            for resource in synced(resources):
                try:
                    result = reconcile_mailbox(client, resource, exchange)
                except GraphError as exc:
                    raise CommandError(f"Reading the mailbox of {resource} failed: "
                                       f"{exc.message} {exc.hint}".strip()) from None
                self.stdout.write(f"{resource}: {result}")
