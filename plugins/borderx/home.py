"""The deployment home (`--home DIR`, env BORDERX_HOME): where every local file of the hub lives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "BORDERX_HOME"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, given: str | os.PathLike | None = None) -> Home:
        return cls(Path(given or os.environ.get(HOME_ENV) or ".").resolve())

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def intake(self) -> Path:
        return self.root / "intake"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def audit(self) -> Path:
        return self.root / "audit"

    @property
    def datadocs(self) -> Path:
        """Great Expectations Data Docs pages of accepted extracts' validations (rejected ones sit in quarantine)."""
        return self.root / "datadocs"

    @property
    def state(self) -> Path:
        """Hub bookkeeping (the ledger of seen extracts)."""
        return self.root / "state"

    @property
    def work(self) -> Path:
        """Scratch space for files being encrypted; only ciphertext is ever written here."""
        return self.root / "work"

    def intake_folder(self, agency: str, dataset: str, configured: str | None = None) -> Path:
        base = self.root / configured if configured else self.intake / agency
        return base / dataset

    def ensure(self) -> None:
        from borderx.folders import private_folders

        for path in (self.intake, self.quarantine, self.archive, self.audit, self.state, self.work):
            private_folders(path)
