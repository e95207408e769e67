"""What was fetched into an output folder, so that each delivery is fetched once, even after its folder was moved
away and across restarts of a watching fetch.

The record is DIR/.borderx-fetched.json: delivery prefix -> the folder it was written to and when. It is
rewritten whole into a temporary file that then replaces it, under a lock on DIR, so a stop at any moment leaves
the old record or the new one, and two fetches into one DIR lose nothing of each other's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from borderx.delivery.manifest import DeliveryLocation
from borderx.errors import RecipientError
from borderx.recipient.stopping import Shield

RECORD_FILE = ".borderx-fetched.json"
_VERSION = 1


class FetchedRecord:
    def __init__(self, out_dir: Path, *, shielded: Shield = contextlib.nullcontext):
        self.out_dir = Path(out_dir)
        self._shielded = shielded
        self.path = self.out_dir / RECORD_FILE
        self.fetched = self._read()

    def __contains__(self, location: DeliveryLocation) -> bool:
        return location.prefix in self.fetched

    def add(self, location: DeliveryLocation, folder: Path) -> None:
        entry = {"folder": str(folder.relative_to(self.out_dir)),
                 "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        # A stop signal waits until the record is whole again.
        with self._shielded(), self._locked():
            self.fetched = {**self._read(), location.prefix: entry}
            self._write()

    def _read(self) -> dict[str, dict]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise RecipientError(f"{self.path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
            fetched = data["fetched"]
            if data.get("version") != _VERSION or not isinstance(fetched, dict):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise RecipientError(f"{self.path}: not a record of fetched deliveries (version {_VERSION}); move it "
                                 f"aside to fetch again every delivery not in DIR") from None
        return fetched

    def _write(self) -> None:
        body = json.dumps({"version": _VERSION, "fetched": dict(sorted(self.fetched.items()))}, indent=1) + "\n"
        fd, temp = tempfile.mkstemp(prefix=".borderx-fetched-", suffix=".tmp", dir=self.out_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.out_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
