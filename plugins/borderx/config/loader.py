"""Loads DIR/config/ and reports every problem as `file: field: what is wrong`, all in one pass."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from borderx.config.models import Agency, Agreement, Dataset, DeploymentConfig, Settings
from borderx.errors import ConfigError

SETTINGS_FILE = "settings.yaml"
SECTIONS: dict[str, type[BaseModel]] = {"agencies": Agency, "agreements": Agreement, "datasets": Dataset}


@dataclass(frozen=True)
class Problem:
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


def _read_yaml(path: Path, shown: str, problems: list[Problem]) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "-"
        problems.append(Problem(shown, where, f"not valid YAML: {getattr(exc, 'problem', exc)}"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(shown, "-", f"cannot be read: {exc.__class__.__name__}"))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(shown, "-", "must be a YAML mapping"))
        return None
    return data


def _parse(model: type[BaseModel], data: dict, shown: str, problems: list[Problem]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "-"
            problems.append(Problem(shown, field, err["msg"]))
        return None


def _load_section(
    home: Path, section: str, problems: list[Problem], broken: set[str]
) -> dict[str, tuple[str, Any]]:
    """Loads one folder of config files; ids of files that failed go to `broken`, so no cascade of
    "unknown agency" lines follows the one real problem."""
    model = SECTIONS[section]
    folder = home / "config" / section
    loaded: dict[str, tuple[str, Any]] = {}
    files = sorted(p for p in folder.glob("*.y*ml") if not p.name.startswith(".")) if folder.is_dir() else []
    for path in files:
        shown = str(path.relative_to(home))
        data = _read_yaml(path, shown, problems)
        if data is None:
            continue
        obj = _parse(model, data, shown, problems)
        if obj is None:
            if isinstance(data.get("id"), str):
                broken.add(data["id"])
            continue
        if obj.id in loaded:
            problems.append(Problem(shown, "id", f"duplicate id {obj.id!r}, also in {loaded[obj.id][0]}"))
            continue
        loaded[obj.id] = (shown, obj)
    return loaded


def _check_keys(agencies: dict[str, tuple[str, Agency]], problems: list[Problem]) -> None:
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    from borderx.crypto import age

    for shown, agency in agencies.values():
        for i, k in enumerate(agency.age_recipients):
            try:
                age.parse_recipient(k.key)
            except ValueError as exc:
                problems.append(Problem(shown, f"age_recipients.{i}.key", str(exc)))
        for i, k in enumerate(agency.signing_keys):
            try:
                load_ssh_public_key(k.key.encode())
            except ValueError:
                problems.append(Problem(shown, f"signing_keys.{i}.key", "not a valid OpenSSH ed25519 public key"))


def _cross_check(
    home: Path,
    settings: Settings | None,
    agencies: dict[str, tuple[str, Agency]],
    agreements: dict[str, tuple[str, Agreement]],
    datasets: dict[str, tuple[str, Dataset]],
    today: dt.date,
    problems: list[Problem],
    broken: set[str],
) -> None:
    expectations = home / (settings.expectations_dir if settings else "expectations")
    for shown, ds in datasets.values():
        if ds.id == "receipts":
            problems.append(Problem(shown, "id", "'receipts' is reserved: receipts/ beside an agency's dataset "
                                    "folders holds what the hub sends back"))
        if not (expectations / ds.suite).is_file():
            problems.append(Problem(shown, "suite", f"no expectation suite at {expectations / ds.suite}"))
        if ds.count_column and ds.count_column not in ds.columns:
            problems.append(Problem(shown, "count_column", f"{ds.count_column!r} is not one of the columns"))
    for shown, agr in agreements.values():
        for i, p in enumerate(agr.providers):
            if p not in agencies and p not in broken:
                problems.append(Problem(shown, f"providers.{i}", f"unknown agency {p!r}"))
        for i, d in enumerate(agr.datasets):
            if d not in datasets and d not in broken:
                problems.append(Problem(shown, f"datasets.{i}", f"unknown dataset {d!r}"))
        for i, terms in enumerate(agr.recipients):
            where = f"recipients.{i}"
            agency = agencies.get(terms.agency)
            if agency is None:
                if terms.agency in broken:
                    continue
                problems.append(Problem(shown, f"{where}.agency", f"unknown agency {terms.agency!r}"))
            elif agr.in_force_on(today) and not agency[1].usable_age_keys(today, post_quantum=terms.post_quantum):
                kind = "post-quantum (age1pq1) " if terms.post_quantum else ""
                problems.append(Problem(shown, f"{where}.agency", f"{terms.agency} has no valid {kind}age key today"))
            for j, col in enumerate(terms.columns):
                missing = [d for d in agr.datasets if d in datasets and col not in datasets[d][1].columns]
                if missing:
                    problems.append(Problem(shown, f"{where}.columns.{j}", f"{col!r} is not a column of {', '.join(missing)}"))
        if set(agr.providers) >= {r.agency for r in agr.recipients}:
            problems.append(Problem(shown, "recipients", "every recipient is also a provider: nothing would leave the hub"))
        if agr.status.value == "active" and agr.valid_to and agr.valid_to < today:
            problems.append(Problem(shown, "valid_to", f"expired on {agr.valid_to} but status is active; "
                                    "set status: terminated, or extend it"))
        seen_recipients = [r.agency for r in agr.recipients]
        for dup in sorted({a for a in seen_recipients if seen_recipients.count(a) > 1}):
            problems.append(Problem(shown, "recipients", f"{dup} is listed more than once"))
    _check_due(agreements, problems)
    _check_overlaps(agreements, problems)
    _check_intake_sources(home, agencies, problems)
    for shown, agency in agencies.values():
        for field in ("age_recipients", "signing_keys"):
            for i, key in enumerate(getattr(agency, field)):
                if key.valid_from and key.valid_to and key.valid_to < key.valid_from:
                    problems.append(Problem(shown, f"{field}.{i}.valid_to", "is before valid_from"))


def _check_due(agreements: dict[str, tuple[str, Agreement]], problems: list[Problem]) -> None:
    """A due rule names only the agreement's own providers and datasets."""
    for shown, agr in agreements.values():
        for i, rule in enumerate(agr.due_rules):
            where = f"due.{i}"
            for field, names, allowed in (("providers", rule.providers, agr.providers),
                                          ("datasets", rule.datasets, agr.datasets)):
                for j, name in enumerate(names):
                    if name not in allowed:
                        problems.append(Problem(shown, f"{where}.{field}.{j}", f"{name!r} is not one of the "
                                                f"agreement's {field}"))


def _check_intake_sources(home: Path, agencies: dict[str, tuple[str, Agency]], problems: list[Problem]) -> None:
    """A pull folder must be readable and outside the hub's own folders (the hub would copy its own files), and
    S3 intake prefixes may not nest (the bucket refuses overlapping notifications, and a key would have two owners)."""
    hub_folders = [(home / name).resolve() for name in ("intake", "quarantine", "archive", "audit", "state", "work")]
    prefixes: list[tuple[str, str, str]] = []
    for shown, agency in agencies.values():
        if agency.intake.s3_prefix:
            prefixes.append((shown, agency.id, agency.intake.s3_prefix + "/"))
        if agency.pull is None or agency.pull.folder is None:
            continue
        folder = Path(agency.pull.folder)
        folder = (folder if folder.is_absolute() else home / folder).resolve()
        inside = next((h for h in hub_folders if folder == h or folder.is_relative_to(h) or h.is_relative_to(folder)),
                      None)
        if inside is not None:
            problems.append(Problem(shown, "pull.folder", f"{folder} overlaps the hub's own {inside.name}/ folder"))
        elif not folder.is_dir():
            problems.append(Problem(shown, "pull.folder", f"{folder} is not a folder"))
        elif not os.access(folder, os.R_OK | os.X_OK):
            problems.append(Problem(shown, "pull.folder", f"{folder} cannot be read by the hub"))
    for i, (shown, agency_id, prefix) in enumerate(prefixes):
        for _, other_id, other in prefixes[:i]:
            if prefix.startswith(other) or other.startswith(prefix):
                problems.append(Problem(shown, "intake.s3_prefix", f"overlaps the S3 intake prefix of {other_id}"))


def _link_problems(home: Path) -> list[Problem]:
    """A link on the way to an intake or pull folder. The hub refuses it and goes on with the other folders
    (one agency must not be able to stop everyone's exchange with a link), so only `check` reports it."""
    from borderx.folders import first_link
    from borderx.home import Home

    reported: list[Problem] = []  # a broken file is reported by the full load already
    agencies = _load_section(home, "agencies", reported, set())
    problems: list[Problem] = []
    seen: set[Path] = set()
    for _, agreement in _load_section(home, "agreements", reported, set()).values():
        for shown, agency in (agencies[p] for p in agreement.providers if p in agencies):
            for dataset in agreement.datasets:
                walks = [("intake.folder", Home(home).intake_folder(agency.id, dataset, agency.intake.folder))]
                if agency.pull is not None and agency.pull.folder is not None:
                    base = Path(agency.pull.folder)
                    walks.append(("pull.folder", (base if base.is_absolute() else home / base) / dataset))
                for field, folder in walks:
                    link = first_link(home, folder)
                    where = link.root / link.relative if link else None
                    if link and where not in seen:
                        seen.add(where)
                        problems.append(Problem(shown, field,
                                                f"{where} is a symbolic link (to {link.target}); the hub does not "
                                                "follow links, so nothing there is taken: make it a real folder"))
    return problems


def _sftp_problems(home: Path) -> list[Problem]:
    """An SFTP pull server that cannot be reached, or that presents another host key than the pinned one. The
    pull refuses such a server; only `check` asks it (a key exchange: no login, nothing read)."""
    agencies = _load_section(home, "agencies", [], set())  # a broken file is reported by the full load already
    problems = []
    for shown, agency in agencies.values():
        if agency.pull is not None and agency.pull.sftp is not None:
            from borderx.intake.sources.sftp import host_key_problem

            problem = host_key_problem(agency.id, agency.pull.sftp)
            if problem:
                problems.append(Problem(shown, "pull.sftp.host_key", problem))
    return problems


def _windows_overlap(a: Agreement, b: Agreement) -> bool:
    far = dt.date.max
    return a.valid_from <= (b.valid_to or far) and b.valid_from <= (a.valid_to or far)


def _check_overlaps(agreements: dict[str, tuple[str, Agreement]], problems: list[Problem]) -> None:
    """Two live agreements for the same provider, recipient and dataset at the same time leave it unclear
    which terms govern a delivery."""
    live = [(shown, a) for shown, a in agreements.values() if a.status.value in ("active", "suspended")]
    for i, (shown, a) in enumerate(live):
        for _, b in live[:i]:
            if not _windows_overlap(a, b):
                continue
            shared = sorted(
                f"{p} -> {r.agency} {d}"
                for p in set(a.providers) & set(b.providers)
                for r in a.recipients
                if b.terms_for(r.agency)
                for d in set(a.datasets) & set(b.datasets)
            )
            if shared:
                problems.append(Problem(shown, "valid_from", f"validity overlaps {b.id} for {', '.join(shared)}"))


def load_agency_files(home: str | os.PathLike) -> dict[str, tuple[Path, Agency]]:
    """{id: (file, agency)} of config/agencies/, each file checked alone, without the cross-checks of a full
    load: cheap enough for DAG parsing, and usable exactly when the full check fails because keys ran out.

    Raises ConfigError naming the file, the field and the problem of every agency file that does not load.
    """
    home = Path(home)
    problems: list[Problem] = []
    agencies = _load_section(home, "agencies", problems, set())
    _check_keys(agencies, problems)
    if problems:
        raise ConfigError(problems)
    return {agency_id: (home / shown, agency) for agency_id, (shown, agency) in agencies.items()}


def load_agencies(home: str | os.PathLike) -> dict[str, Agency]:
    """{id: agency} of config/agencies/, as `load_agency_files` reads and checks them."""
    return {agency_id: agency for agency_id, (_, agency) in load_agency_files(home).items()}


def load_config(home: Path, *, today: dt.date | None = None) -> DeploymentConfig:
    """Loads and checks the whole home; raises ConfigError listing every problem."""
    config, problems = _load(Path(home), today or dt.date.today())
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def load_sections(home: Path, *sections: str) -> dict[str, dict[str, Any]]:
    """{section: {id: model}} of only the named folders of config/ ("agencies", "agreements", "datasets"), each
    file checked on its own but not against the others: cheap enough for a DAG file to read when parsed.

    Raises ConfigError naming every broken file, so a broken agency file shows as an error instead of
    silently dropping that agency.
    """
    root = Path(home).resolve()
    problems: list[Problem] = []
    loaded = {s: {k: v for k, (_, v) in _load_section(root, s, problems, set()).items()} for s in sections}
    if problems:
        raise ConfigError(problems)
    return loaded


def check_config(home: Path, *, today: dt.date | None = None) -> list[Problem]:
    """Every problem of the home's config, every link on the way to its intake and pull folders, and every SFTP
    pull server that the hub would refuse or cannot reach."""
    root = Path(home).resolve()
    return _load(Path(home), today or dt.date.today())[1] + _link_problems(root) + _sftp_problems(root)


def _check_tsa_ca(home: Path, settings: Settings, problems: list[Problem]) -> None:
    """A TSA whose CA cannot be read would leave every head unstamped until publishing stops: caught here."""
    tsa = settings.audit.tsa
    if tsa is None:
        return
    from cryptography import x509

    path = Path(tsa.ca_certificate)
    path = path if path.is_absolute() else home / path
    try:
        x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        problems.append(Problem(f"config/{SETTINGS_FILE}", "audit.tsa.ca_certificate", f"{path}: {exc.strerror}"))
    except ValueError:
        problems.append(Problem(f"config/{SETTINGS_FILE}", "audit.tsa.ca_certificate",
                                f"{path}: not a PEM certificate"))


def _load(home: Path, today: dt.date) -> tuple[DeploymentConfig | None, list[Problem]]:
    problems: list[Problem] = []
    home = home.resolve()
    settings_path = home / "config" / SETTINGS_FILE
    settings = None
    if not settings_path.is_file():
        problems.append(Problem(f"config/{SETTINGS_FILE}", "-", f"missing (looked in {home / 'config'})"))
    else:
        data = _read_yaml(settings_path, f"config/{SETTINGS_FILE}", problems)
        if data is not None:
            settings = _parse(Settings, data, f"config/{SETTINGS_FILE}", problems)
    broken: set[str] = set()
    agencies = _load_section(home, "agencies", problems, broken)
    agreements = _load_section(home, "agreements", problems, broken)
    datasets = _load_section(home, "datasets", problems, broken)
    _check_keys(agencies, problems)
    if settings is not None:
        from cryptography.hazmat.primitives.serialization import load_ssh_public_key

        try:
            load_ssh_public_key(settings.hub.signing_public_key.encode())
        except ValueError:
            problems.append(Problem(f"config/{SETTINGS_FILE}", "hub.signing_public_key", "not a valid OpenSSH ed25519 public key"))
        _check_tsa_ca(home, settings, problems)
    _cross_check(home, settings, agencies, agreements, datasets, today, problems, broken)
    if not agreements and not problems:
        problems.append(Problem("config/agreements", "-", "no agreement defined: nothing can be exchanged"))
    if problems or settings is None:
        return None, problems
    return (
        DeploymentConfig(
            home=home,
            settings=settings,
            agencies={k: v for k, (_, v) in agencies.items()},
            agreements={k: v for k, (_, v) in agreements.items()},
            datasets={k: v for k, (_, v) in datasets.items()},
        ),
        problems,
    )
