"""Where a delivery lives in the bucket: a contract with recipients, changed only with a version bump.

    deliveries/AGREEMENT/RECIPIENT/DATASET/YYYY/MM/DD/DELIVERY_ID/{data.csv.age, manifest.json, manifest.json.sig}
"""

from __future__ import annotations

from dataclasses import dataclass

DATA_FILE = "data.csv.age"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.json.sig"


@dataclass(frozen=True)
class DeliveryLocation:
    agreement: str
    recipient: str
    dataset: str
    date: str  # YYYY-MM-DD
    delivery_id: str

    @property
    def prefix(self) -> str:
        yyyy, mm, dd = self.date.split("-")
        return f"deliveries/{self.agreement}/{self.recipient}/{self.dataset}/{yyyy}/{mm}/{dd}/{self.delivery_id}/"

    def key(self, name: str) -> str:
        return self.prefix + name
