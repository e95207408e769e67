"""Deployment configuration: typed models and the loader that checks them."""

from borderx.config.loader import Problem, load_config, check_config
from borderx.config.models import (
    Agency,
    Agreement,
    AgeRecipientKey,
    Dataset,
    DeploymentConfig,
    RecipientTerms,
    Settings,
    SigningKey,
)

__all__ = [
    "Agency",
    "Agreement",
    "AgeRecipientKey",
    "Dataset",
    "DeploymentConfig",
    "Problem",
    "RecipientTerms",
    "Settings",
    "SigningKey",
    "check_config",
    "load_config",
]
