"""Daily checks of a home: a broken config is an error; keys about to expire and agreements due for
review are warnings, raised early enough (30 days by default) for someone to act."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from borderx.config.loader import load_config
from borderx.config.models import DeploymentConfig
from borderx.errors import ConfigError

WARN_DAYS = 30


@dataclass(frozen=True)
class Finding:
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


@dataclass
class HealthReport:
    today: str
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {"today": self.today, "ok": self.ok, "errors": [str(f) for f in self.errors],
                "warnings": [str(f) for f in self.warnings]}


def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def key_warnings(config: DeploymentConfig, today: dt.date, warn_days: int = WARN_DAYS) -> list[Finding]:
    """Agency keys that expire within `warn_days` or have expired, and whether a successor is configured."""
    found = []
    for agency in sorted(config.agencies.values(), key=lambda a: a.id):
        for kind in ("age_recipients", "signing_keys"):
            keys = getattr(agency, kind)
            for i, key in enumerate(keys):
                if key.revoked or key.valid_to is None:
                    continue
                left = (key.valid_to - today).days
                if left > warn_days:
                    continue
                successor = any(
                    other is not key and not other.revoked and (other.valid_to is None or other.valid_to > key.valid_to)
                    for other in keys
                )
                when = (f"expired on {key.valid_to} ({_days(-left)} ago)" if left < 0
                        else f"expires on {key.valid_to} (in {_days(left)})")
                then = "" if successor else ("; no other key of this kind is valid after it: the agency should send"
                                             " a new one now (borderx keys request)")
                found.append(Finding(f"agency {agency.id}", f"{kind}.{i} {when}{then}"))
    return found


def review_warnings(config: DeploymentConfig, today: dt.date, warn_days: int = WARN_DAYS) -> list[Finding]:
    """Agreements, not terminated, whose review date is within `warn_days` or past."""
    found = []
    for agreement in sorted(config.agreements.values(), key=lambda a: a.id):
        if agreement.review_date is None or agreement.status.value == "terminated":
            continue
        left = (agreement.review_date - today).days
        if left < 0:
            found.append(Finding(f"agreement {agreement.id}",
                                 f"review was due on {agreement.review_date} ({_days(-left)} overdue)"))
        elif left <= warn_days:
            found.append(Finding(f"agreement {agreement.id}",
                                 f"review is due on {agreement.review_date} (in {_days(left)})"))
    return found


def daily_checks(home: str | os.PathLike, *, today: dt.date | None = None, warn_days: int = WARN_DAYS) -> HealthReport:
    today = today or dt.date.today()
    home = Path(home)
    report = HealthReport(today=today.isoformat())
    try:
        config = load_config(home, today=today)
    except ConfigError as exc:
        report.errors = [Finding(p.file, f"{p.field}: {p.message}") for p in exc.problems]
        return report
    report.warnings = key_warnings(config, today, warn_days) + review_warnings(config, today, warn_days)
    return report
