"""The assets the DAGs are scheduled on, from one cheap read of the agencies' and agreements' YAML.

The scheduler parses DAG files often, so this reads the YAML without the full config check. A file that is
not a YAML mapping with an id raises ConfigError, naming it: the DAG then shows an import error instead of
quietly losing that agency's asset. The full check is `borderx check` and the daily checks DAG.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from airflow.sdk import Asset, AssetWatcher

from borderx.airflow.triggers import IntakeFolderTrigger
from borderx.config.loader import Problem, _read_yaml
from borderx.config.models import DEFAULT_PULL_SCHEDULE
from borderx.errors import ConfigError
from borderx.home import Home

POLL_SECONDS = float(os.environ.get("BORDERX_TRIGGER_POLL_SECONDS", "2"))


@dataclass(frozen=True)
class DagConfig:
    """What the DAGs' schedules depend on: who provides, who uploads to S3, who is pulled and when."""

    home: Home
    providers: tuple[str, ...]
    s3_uploaders: tuple[str, ...]
    pull_schedules: dict[str, str]

    @classmethod
    def read(cls, home: Home | None = None) -> DagConfig:
        home = home or Home.resolve()  # BORDERX_HOME; the triggerer and the workers must see the same path
        problems: list[Problem] = []
        agencies = _mappings(home, "agencies", problems)
        agreements = _mappings(home, "agreements", problems)
        if problems:
            raise ConfigError(problems)
        provided = {str(p) for a in agreements if isinstance(a.get("providers"), list) for p in a["providers"]}
        ids = {a["id"]: a for a in agencies}
        return cls(
            home,
            tuple(sorted(provided & ids.keys())),
            tuple(sorted(i for i, a in ids.items() if isinstance(a.get("intake"), dict) and a["intake"].get("s3_prefix"))),
            {i: str(a["pull"].get("schedule") or DEFAULT_PULL_SCHEDULE)
             for i, a in sorted(ids.items()) if isinstance(a.get("pull"), dict)},
        )

    def intake_assets(self) -> list[Asset]:
        """One asset per providing agency's intake folder, watched by an IntakeFolderTrigger."""
        return [_watched(f"borderx_intake_{a}", f"x-borderx-intake://{a}",
                         IntakeFolderTrigger(home=str(self.home.root), agency=a, poll_interval=POLL_SECONDS))
                for a in self.providers]

    def s3_intake_assets(self) -> list[Asset]:
        """One asset per agency uploading to an S3 prefix, watched through the bucket's notification queue."""
        from borderx.airflow.triggers import S3IntakeTrigger

        return [_watched(f"borderx_s3_intake_{a}", f"x-borderx-s3-intake://{a}",
                         S3IntakeTrigger(home=str(self.home.root), agency=a, poll_interval=POLL_SECONDS))
                for a in self.s3_uploaders]


def _watched(name: str, uri: str, trigger) -> Asset:
    # The x- scheme is Airflow's for schemes no provider knows, and keeps parsing free of provider lookups.
    return Asset(name=name, uri=uri, group="borderx", watchers=[AssetWatcher(name=name, trigger=trigger)])


def _mappings(home: Home, section: str, problems: list[Problem]) -> list[dict]:
    found = []
    for path in sorted((home.config / section).glob("*.y*ml")):
        if path.name.startswith("."):
            continue
        shown = str(path.relative_to(home.root))
        data = _read_yaml(path, shown, problems)
        if data is None:
            continue
        if not isinstance(data.get("id"), str):
            problems.append(Problem(shown, "id", "missing, or not a string"))
            continue
        found.append(data)
    return found
