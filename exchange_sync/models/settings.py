"""The Exchange connection (one row): which Entra application, which window, which defaults."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from connectors.fields import EncryptedTextField, MultipleChoiceField


class ShowAs(models.TextChoices):
    """Graph `event.showAs` values a resource may share (`unknown` is never shared)."""

    FREE = "free", "Free"
    TENTATIVE = "tentative", "Tentative"
    BUSY = "busy", "Busy"
    OOF = "oof", "Away (out of office)"
    WORKING_ELSEWHERE = "workingElsewhere", "Working elsewhere"


class Sensitivity(models.TextChoices):
    """Graph `event.sensitivity`. Private and confidential events, when shared, arrive in the
    planner as busy blocks without subject, body or location."""

    NORMAL = "normal", "Normal"
    PERSONAL = "personal", "Personal"
    PRIVATE = "private", "Private"
    CONFIDENTIAL = "confidential", "Confidential"


def default_shared_show_as() -> list[str]:
    # A "free" event does not take the resource's time: not shared unless asked for.
    return [ShowAs.TENTATIVE, ShowAs.BUSY, ShowAs.OOF, ShowAs.WORKING_ELSEWHERE]


def default_shared_sensitivities() -> list[str]:
    return list(Sensitivity.values)


SINGLETON_PK = 1


class ExchangeSettings(models.Model):
    """The one Exchange configuration (pk 1). `ExchangeSettings.load()` reads or creates it."""

    # Connection
    enabled = models.BooleanField(
        default=False,
        help_text="When off, nothing is read from or written to any mailbox.",
    )
    tenant_id = models.CharField("tenant ID", max_length=100, blank=True)
    client_id = models.CharField("client ID", max_length=200, blank=True)
    client_secret = EncryptedTextField(blank=True)
    test_mailbox = models.EmailField(
        blank=True,
        help_text="A mailbox \"test connection\" reads (e.g. one resource's). Blank: the first "
        "resource with sync on.",
    )
    timeout_s = models.PositiveSmallIntegerField(
        "timeout (seconds)", default=15, validators=[MinValueValidator(1), MaxValueValidator(30)]
    )

    # Window
    window_past_days = models.PositiveSmallIntegerField(
        "sync window: days back", default=30, validators=[MaxValueValidator(365)],
    )
    window_future_days = models.PositiveSmallIntegerField(
        "sync window: days ahead", default=180, validators=[MinValueValidator(1),
                                                            MaxValueValidator(730)],
    )

    # Privacy (the global default; a resource may override it)
    shared_show_as = MultipleChoiceField(
        "shared show-as values", choices=ShowAs.choices, default=default_shared_show_as,
        blank=True,
        help_text="Outlook events with these show-as values are shared with the planner.",
    )
    shared_sensitivities = MultipleChoiceField(
        choices=Sensitivity.choices, default=default_shared_sensitivities, blank=True,
        help_text="Outlook events with these sensitivities are shared with the planner "
        "(private and confidential ones as busy blocks without details).",
    )

    # Inbound timing and safety
    debounce_s = models.PositiveSmallIntegerField(
        "debounce (seconds)", default=5, validators=[MaxValueValidator(300)],
        help_text="Notifications for one mailbox within this time make one delta round.",
    )
    safety_round_minutes = models.PositiveSmallIntegerField(
        "safety round (minutes)", default=15, validators=[MinValueValidator(1)],
        help_text="Every mailbox gets a delta round at least this often, in case "
        "notifications were lost.",
    )
    mass_delete_percent = models.PositiveSmallIntegerField(
        "mass deletion guard (%)", default=50,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="A round that would delete more than this share of a mailbox's linked "
        "appointments is held for an administrator to confirm.",
    )
    mass_delete_minimum = models.PositiveSmallIntegerField(
        "mass deletion guard: minimum", default=5,
        help_text="Rounds deleting fewer appointments than this are never held.",
    )

    # Status (written by "test connection"; read-only in the admin)
    last_test_ok = models.BooleanField(null=True, editable=False)
    last_tested_at = models.DateTimeField(null=True, editable=False)
    last_test_message = models.TextField(blank=True, editable=False)
    last_test_result = models.JSONField(default=dict, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Exchange settings"
        verbose_name_plural = "Exchange settings"

    def __str__(self) -> str:
        return "Exchange settings"

    @classmethod
    def load(cls) -> ExchangeSettings:
        """The configuration row, created with the defaults when missing."""
        settings, _ = cls.objects.get_or_create(pk=SINGLETON_PK)
        return settings

    @property
    def configured(self) -> bool:
        """Enabled and with every credential set."""
        return bool(self.enabled and self.tenant_id and self.client_id and self.client_secret)
