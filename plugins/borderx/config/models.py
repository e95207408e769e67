"""Typed models of what lives in DIR/config/. Public keys only: a private key never has a field here."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

AGENCY_ID = r"^[A-Z]{2}-[A-Z0-9]{2,12}$"
SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Model(BaseModel):
    # A typo in a field name must be an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgencyKind(str, Enum):
    customs = "customs"
    migration = "migration"
    police = "police"
    international = "international"


class _KeyValidity(_Model):
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    revoked: bool = False

    def usable_on(self, day: dt.date) -> bool:
        if self.revoked:
            return False
        if self.valid_from and day < self.valid_from:
            return False
        return not (self.valid_to and day > self.valid_to)


class AgeRecipientKey(_KeyValidity):
    key: str = Field(
        pattern=r"^age1(pq1)?[02-9ac-hj-np-z]+$",
        description="age recipient: X25519 (age1...) or hybrid post-quantum ML-KEM-768+X25519 (age1pq1...)",
    )

    @property
    def post_quantum(self) -> bool:
        return self.key.startswith("age1pq1")


class SigningKey(_KeyValidity):
    key: str = Field(pattern=r"^ssh-ed25519 [A-Za-z0-9+/=]+( .*)?$", description="OpenSSH ed25519 public key line")


# Segments that cannot be hidden, `..`, or empty, so a prefix never climbs out or hides under a dot.
S3_PREFIX = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$"
S3_URL = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$"
DEFAULT_PULL_SCHEDULE = "@hourly"


def cron_of(schedule: str) -> str:
    """The cron expression croniter reads for a schedule: it knows every preset Airflow's cron timetables take
    but @quarterly."""
    return {"@quarterly": "0 0 1 */3 *"}.get(schedule, schedule)


class Intake(_Model):
    folder: str | None = Field(default=None, description="intake folder, relative to the home; default intake/AGENCY")
    s3_prefix: str | None = Field(
        default=None,
        pattern=S3_PREFIX,
        description="the agency uploads to s3://BUCKET/PREFIX/DATASET/FILE in the hub's bucket as well, e.g. "
        "intake/ZA-SARS; the hub copies each new object into the intake folder and never deletes it",
    )


HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
# A host name or an IP address (IPv6 in brackets or bare); nothing a shell or an ssh option could read more into.
SFTP_HOST = r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$"
# No control character: the path is sent to the server as it is written here (and `..` is refused below).
SFTP_PATH = r"^[^\x00-\x1f\x7f]+$"


class SftpKey(_Model):
    """Where the private key the hub logs in with comes from; exactly one of the two. Never the key itself."""

    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                            description="environment variable holding the OpenSSH private key")
    airflow_connection: str | None = Field(
        default=None, description="Airflow connection (type sftp or ssh) whose extra private_key, key_file or "
        "password logs in; host, port, user and host key still come from here")

    @model_validator(mode="after")
    def _exactly_one(self) -> SftpKey:
        if (self.env is None) == (self.airflow_connection is None):
            raise ValueError("give exactly one of env, airflow_connection")
        return self


class SftpSource(_Model):
    """An SFTP server laid out as PATH/DATASET/FILE. Its host key is pinned: a server that presents another is
    refused. The hub only lists, stats and reads there."""

    host: str = Field(pattern=SFTP_HOST)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
    path: str = Field(default=".", pattern=SFTP_PATH, description="the export folder on the server")
    host_key: str = Field(description="the server's public host key, `TYPE BASE64` as ssh-keyscan prints it "
                          "after the host name")
    key: SftpKey
    compress: bool = Field(default=True, description="zlib on the wire: worth it for CSV over a slow link, a cost "
                           "in CPU on a fast one")

    @field_validator("host_key")
    @classmethod
    def _host_key_is_a_public_key(cls, value: str) -> str:
        from cryptography.hazmat.primitives.serialization import load_ssh_public_key

        parts = value.split()
        if len(parts) < 2 or parts[0] not in HOST_KEY_TYPES:
            raise ValueError(f"expected `TYPE BASE64` with TYPE one of {', '.join(HOST_KEY_TYPES)}")
        try:
            load_ssh_public_key(f"{parts[0]} {parts[1]}".encode())
        except (ValueError, TypeError):
            raise ValueError(f"not a valid {parts[0]} public key") from None
        return f"{parts[0]} {parts[1]}"

    @field_validator("path")
    @classmethod
    def _path_stays_put(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError("a `..` segment is not allowed")
        return value


class PullSource(_Model):
    """An agency's export location that the hub copies new extracts from, on a schedule; exactly one of the three.

    Laid out like an intake: DATASET/FILE under the folder, prefix or path. The source is only ever read.
    """

    folder: str | None = Field(default=None, description="a folder the hub can read, absolute or relative to the home")
    s3: str | None = Field(default=None, pattern=S3_URL, description="s3://BUCKET/PREFIX, at the hub's S3 endpoint")
    sftp: SftpSource | None = None
    schedule: str = Field(default=DEFAULT_PULL_SCHEDULE,
                          description="cron expression or preset (@hourly, @daily, ...) in UTC")

    @field_validator("schedule")
    @classmethod
    def _schedule_is_cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(cron_of(value)):
            raise ValueError(f"{value!r} is neither a cron expression nor a preset such as @hourly")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> PullSource:
        if sum(source is not None for source in (self.folder, self.s3, self.sftp)) != 1:
            raise ValueError("give exactly one of folder, s3, sftp")
        return self


EMAIL = r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$"
WEBHOOK = r"^https?://[^\s]+$"


class Contacts(_Model):
    """Who is told of what happens: e-mail addresses, and URLs a notice is POSTed to as JSON."""

    email: list[Annotated[str, Field(pattern=EMAIL)]] = []
    webhook: list[Annotated[str, Field(pattern=WEBHOOK)]] = []

    def addresses(self) -> list[tuple[str, str]]:
        """(channel, address) for every contact."""
        return [("email", e) for e in self.email] + [("webhook", w) for w in self.webhook]


GRACE = r"^[0-9]{1,4}[dhm]$"


def grace_of(text: str) -> dt.timedelta:
    """`2d`, `12h` or `30m` as a timedelta."""
    unit = {"d": "days", "h": "hours", "m": "minutes"}[text[-1]]
    return dt.timedelta(**{unit: int(text[:-1])})


class Due(_Model):
    """When a provider's extract of a dataset is due: `every: month` by a day of the month, `every: week` by a
    weekday (1 Monday .. 7 Sunday), or the moments of a cron expression (UTC); late once `grace` has passed too.

    The rule covers the agreement's providers and datasets, or those listed.
    """

    every: Literal["month", "week"] | None = None
    by_day: int | None = Field(default=None, ge=1, le=31,
                               description="month: the day of the month (a shorter month ends it); week: ISO weekday")
    cron: str | None = Field(default=None, description="due moments, e.g. '0 12 * * 1' for Mondays noon UTC")
    grace: str = Field(default="0d", pattern=GRACE, description="how long after the due moment it is late: 2d, 12h")
    providers: list[str] = Field(default=[], description="default: every provider of the agreement")
    datasets: list[str] = Field(default=[], description="default: every dataset of the agreement")

    @model_validator(mode="after")
    def _one_way(self) -> Due:
        from croniter import croniter

        if (self.every is None) == (self.cron is None):
            raise ValueError("give either every (with by_day) or cron")
        if self.every is not None and self.by_day is None:
            raise ValueError(f"every: {self.every} needs by_day")
        if self.every == "week" and self.by_day > 7:
            raise ValueError("every: week takes by_day 1 (Monday) to 7 (Sunday)")
        if self.cron is not None and not croniter.is_valid(cron_of(self.cron)):
            raise ValueError(f"{self.cron!r} is not a cron expression")
        return self

    @property
    def grace_period(self) -> dt.timedelta:
        return grace_of(self.grace)


class Agency(_Model):
    id: str = Field(pattern=AGENCY_ID)
    name: str = Field(min_length=1)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    kind: AgencyKind
    intake: Intake = Intake()
    pull: PullSource | None = None
    contacts: Contacts = Field(default=Contacts(), description="who at the agency is told of its files and deliveries")
    age_recipients: list[AgeRecipientKey] = []
    signing_keys: list[SigningKey] = []
    require_signed_extracts: bool = Field(
        default=False,
        description="quarantine an extract that comes without NAME.sig, a signature by one of signing_keys "
        "(namespace borderx-extract); a signature that is there and does not verify quarantines it always",
    )

    def usable_age_keys(self, day: dt.date, *, post_quantum: bool = False) -> list[AgeRecipientKey]:
        """The keys a file for this agency is encrypted to today.

        age does not mix hybrid and classic recipients in one file: post-quantum terms take only the hybrid
        keys; otherwise the classic keys are used while there are any, so an overlap of old and new keys
        during a rotation yields files both can open.
        """
        usable = [k for k in self.age_recipients if k.usable_on(day)]
        hybrid = [k for k in usable if k.post_quantum]
        if post_quantum:
            return hybrid
        return [k for k in usable if not k.post_quantum] or hybrid


class AgreementStatus(str, Enum):
    draft = "draft"
    active = "active"
    suspended = "suspended"
    terminated = "terminated"


class RecipientTerms(_Model):
    agency: str = Field(pattern=AGENCY_ID)
    columns: list[str] = Field(min_length=1, description="columns this recipient may receive")
    min_cell_size: int = Field(default=1, ge=1)
    small_cells: Literal["reject", "suppress"] = "suppress"
    post_quantum: bool = Field(
        default=False,
        description="encrypt only to the recipient's hybrid ML-KEM-768+X25519 keys (age1pq1...), for data kept for years",
    )
    format: Literal["csv", "parquet"] = Field(
        default="csv", description="what the delivery holds: data.csv.age (UTF-8 CSV) or data.parquet.age (Parquet)"
    )


def _one_or_many(schema: dict) -> None:
    """The JSON Schema of a list field that takes one item as it is too, as its validator does."""
    items = schema.pop("items")
    schema.pop("type", None)
    schema["anyOf"] = [items, {"type": "array", "items": items}]


class Agreement(_Model):
    id: str = Field(pattern=SLUG)
    title: str = Field(min_length=1)
    status: AgreementStatus
    providers: list[str] = Field(min_length=1)
    recipients: list[RecipientTerms] = Field(min_length=1)
    purpose: str = Field(min_length=1)
    legal_basis: str = Field(min_length=1)
    datasets: list[str] = Field(min_length=1)
    valid_from: dt.date
    valid_to: dt.date | None = None
    retention_days: int = Field(ge=1)
    onward_sharing: bool = False
    review_date: dt.date | None = None
    require_signed_extracts: bool = Field(
        default=False, description="every provider's extract under this agreement must come with a valid NAME.sig",
    )
    due: list[Due] = Field(default=[], description="when each provider's extract of each dataset is due: one rule, "
                           "or a list of rules each for some providers or datasets",
                           json_schema_extra=_one_or_many)

    @field_validator("due", mode="before")
    @classmethod
    def _one_rule_or_many(cls, value):
        return [value] if isinstance(value, dict) else value

    @property
    def due_rules(self) -> list[Due]:
        return list(self.due)

    @model_validator(mode="after")
    def _window_is_ordered(self) -> Agreement:
        if self.valid_to and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self

    def in_force_on(self, day: dt.date) -> bool:
        if self.status is not AgreementStatus.active or day < self.valid_from:
            return False
        return not (self.valid_to and day > self.valid_to)

    def terms_for(self, agency_id: str) -> RecipientTerms | None:
        return next((r for r in self.recipients if r.agency == agency_id), None)


# How a column is written in deliveries: integer (int64; "12" and 12.0 both go out as 12), number (float64), or
# string (the value as the provider wrote it; codes such as HS codes keep their leading zeros).
ColumnType = Literal["string", "integer", "number"]


class Dataset(_Model):
    id: str = Field(pattern=SLUG)
    title: str = ""
    schema_version: str = "1"
    suite: str = Field(description="expectation suite file, relative to the expectations folder")
    columns: list[str] = Field(min_length=1)
    count_column: str | None = Field(default=None, description="column holding aggregated counts, for small-cell rules")
    column_types: dict[str, ColumnType] = Field(
        default={},
        description="type of each column in deliveries, CSV and Parquet alike; a column not listed is a string, "
        "but the count column is an integer unless listed otherwise",
    )

    @model_validator(mode="after")
    def _typed_columns_exist(self) -> Dataset:
        unknown = sorted(set(self.column_types) - set(self.columns))
        if unknown:
            raise ValueError(f"column_types names columns the dataset does not have: {', '.join(unknown)}")
        return self

    def type_of(self, column: str) -> str:
        if column in self.column_types:
            return self.column_types[column]
        return "integer" if column == self.count_column else "string"


class KeySource(_Model):
    """Where the hub's private signing key comes from; exactly one of the three."""

    file: str | None = None
    env: str | None = None
    airflow_connection: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> KeySource:
        given = [n for n in ("file", "env", "airflow_connection") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("give exactly one of file, env, airflow_connection")
        return self


class Hub(_Model):
    id: str = Field(default="hub", pattern=SLUG)
    signing_public_key: str = Field(pattern=r"^ssh-ed25519 [A-Za-z0-9+/=]+( .*)?$")
    signing_key: KeySource


class S3Settings(_Model):
    bucket: str = Field(default="borderx", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    endpoint_url: str | None = None
    region: str = "us-east-1"
    multipart_threshold_mb: int = Field(default=64, ge=5)
    server_side_encryption: Literal["AES256", "aws:kms"] | None = Field(
        default=None, description="ask the bucket to encrypt objects at rest too (on top of age)"
    )


class IntakeSettings(_Model):
    settle_seconds: float = Field(default=5.0, ge=0, description="a file must be unchanged this long to count as complete")


class TsaSettings(_Model):
    """An RFC 3161 time-stamping authority: every signed audit head gets a token from it."""

    url: str = Field(pattern=r"^https?://", description="where time-stamp queries are POSTed")
    ca_certificate: str = Field(description="PEM file of the CA the TSA's certificate chains to, relative to the home")
    policy: str | None = Field(default=None, pattern=r"^[0-2](\.[0-9]+)+$",
                               description="the TSA policy OID a token must carry, if any")
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)


class AuditSettings(_Model):
    max_unanchored_age: dt.timedelta = Field(
        default=dt.timedelta(hours=3),
        description="events not yet covered by a signed head fail `audit verify` once older than this")
    acceptable_timestamp_failure: dt.timedelta = Field(
        default=dt.timedelta(hours=4),
        description="how long heads may wait for a time stamp before publishing stops until the TSA answers")
    tsa: TsaSettings | None = None


class SmtpSettings(_Model):
    """How notice e-mail leaves. Login and TLS come from the environment (BORDERX_SMTP_USER,
    BORDERX_SMTP_PASSWORD, BORDERX_SMTP_TLS = starttls, ssl or none) or, in Airflow, from the connection."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    from_: str = Field(alias="from", pattern=EMAIL, description="the sender address of every notice")
    airflow_connection: str | None = Field(default=None,
                                           description="in Airflow, the SMTP connection with login and TLS settings")
    timeout_seconds: float = Field(default=20.0, gt=0, le=300)


class NoticeSettings(_Model):
    smtp: SmtpSettings | None = Field(default=None, description="without it, e-mail notices wait in the outbox")
    operators: Contacts = Field(default=Contacts(), description="told of failed runs, outages and late extracts")
    max_attempts: int = Field(default=30, ge=1, description="a notice is given up after this many failed tries")
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=300)


class Settings(_Model):
    hub: Hub
    s3: S3Settings = S3Settings()
    intake: IntakeSettings = IntakeSettings()
    audit: AuditSettings = AuditSettings()
    notices: NoticeSettings = NoticeSettings()
    expectations_dir: str = Field(default="expectations", description="relative to the home")


class DeploymentConfig(_Model):
    """Everything loaded from one home, already checked."""

    home: Path
    settings: Settings
    agencies: dict[str, Agency]
    agreements: dict[str, Agreement]
    datasets: dict[str, Dataset]

    def expectations_dir(self) -> Path:
        return (self.home / self.settings.expectations_dir).resolve()

    def suite_path(self, dataset_id: str) -> Path:
        return self.expectations_dir() / self.datasets[dataset_id].suite

    def agreements_covering(self, provider: str, dataset: str) -> list[Agreement]:
        return [a for a in self.agreements.values() if provider in a.providers and dataset in a.datasets]
