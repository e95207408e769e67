"""The recipient's inputs: the hub keys it trusts, its age identities, and the home's settings if any."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from borderx.config.models import S3Settings, Settings
from borderx.crypto import age, sshsig
from borderx.errors import ConfigError
from borderx.home import Home
from borderx.delivery.manifest import NAMESPACE
from borderx.bucket.client import Target
from borderx.errors import RecipientUsageError


def _tokens(line: str) -> list[str]:
    # allowed_signers options may quote their values; a quoted value is one token.
    return re.findall(r'(?:[^\s"]|"[^"]*")+', line)


def parse_hub_keys(text: str) -> list[str]:
    """The ed25519 public key lines in an allowed_signers file or a .pub file that may sign manifests.

    allowed_signers lines restricted to other namespaces, and certificate authorities, are left out;
    validity options (valid-after, valid-before) are not applied.
    """
    keys = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = _tokens(line)
        at = next((i for i, t in enumerate(tokens) if t == "ssh-ed25519"), None)
        if at is None or at + 1 >= len(tokens):
            continue
        options = [o for t in tokens[1:at] for o in re.findall(r'(?:[^,"]|"[^"]*")+', t)]
        if any(o.lower() == "cert-authority" for o in options):
            continue
        namespaces = [o.split("=", 1)[1].strip('"') for o in options if o.lower().startswith("namespaces=")]
        if namespaces and NAMESPACE not in ",".join(namespaces).split(","):
            continue
        key = f"{tokens[at]} {tokens[at + 1]}"
        try:
            sshsig.fingerprint(key)
        except ValueError:
            continue
        keys.append(key)
    return keys


def read_settings(home: Home) -> Settings | None:
    """The home's settings, or None when the home has none (a recipient's machine usually has none)."""
    from borderx.config.loader import SETTINGS_FILE, Problem

    path = home.config / SETTINGS_FILE
    if not path.is_file():
        return None
    shown = f"config/{SETTINGS_FILE}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError([Problem(shown, "-", f"cannot be read: {exc.__class__.__name__}")]) from None
    try:
        return Settings.model_validate(data)
    except ValueError as exc:
        errors = getattr(exc, "errors", lambda: [{"loc": (), "msg": "not a valid settings file"}])()
        raise ConfigError([Problem(shown, ".".join(map(str, e["loc"])) or "-", e["msg"]) for e in errors]) from None


def hub_keys(hub_key_file: str | os.PathLike | None, home: Home) -> list[str]:
    """The hub keys to trust: from --hub-key (allowed_signers or .pub), else from the home's settings."""
    if hub_key_file:
        path = Path(hub_key_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RecipientUsageError(f"hub key file {path}: cannot be read ({exc.__class__.__name__})") from None
        keys = parse_hub_keys(text)
        if not keys:
            raise RecipientUsageError(
                f"hub key file {path}: no ssh-ed25519 key allowed for namespace {NAMESPACE} "
                "(expected an allowed_signers line or a .pub line)"
            )
        return keys
    settings = read_settings(home)
    if settings is None:
        raise RecipientUsageError(
            f"no hub key: give --hub-key FILE (an allowed_signers file or the hub's .pub), "
            f"or a --home with config/settings.yaml (looked in {home.config})"
        )
    return [settings.hub.signing_public_key]


def load_identities(path: str | os.PathLike) -> list:
    """The age identities in an identity file (age-keygen format); errors never quote the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipientUsageError(f"identity file {path}: cannot be read ({exc.__class__.__name__})") from None
    try:
        return age.parse_identities(text)
    except ValueError as exc:
        raise RecipientUsageError(f"identity file {path}: {exc}") from None


def resolve_target(home: Home, *, endpoint_url: str | None = None, bucket: str | None = None) -> Target:
    """Endpoint and bucket as the hub resolves them, with the defaults when the home has no settings."""
    settings = read_settings(home)
    return Target.resolve(settings.s3 if settings else S3Settings(), endpoint_url=endpoint_url, bucket=bucket)
