"""Where a delivery lives in the bucket: a contract with recipients, changed only with a version bump.

    deliveries/AGREEMENT/RECIPIENT/DATASET/YYYY/MM/DD/DELIVERY_ID/{data.csv.age, manifest.json, manifest.json.sig}

with data.parquet.age instead of data.csv.age where the recipient's terms say `format: parquet`.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA_FILE = "data.csv.age"
DATA_FILES = {"csv": DATA_FILE, "parquet": "data.parquet.age"}
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.json.sig"


def data_file(fmt: str) -> str:
    """The name of a delivery's encrypted data file in format `fmt` (csv or parquet)."""
    return DATA_FILES[fmt]


def plaintext_name(data_file_name: str) -> str:
    """What a recipient calls the decrypted file: data.csv, data.parquet."""
    return data_file_name.removesuffix(".age")


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
