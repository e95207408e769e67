"""Bucket access derived from config: each recipient lists and reads only its own deliveries, each provider
writes only its own intake prefix, and only the hub writes deliveries and the audit heads."""

from __future__ import annotations

import json
from pathlib import Path

from borderx.config.models import DeploymentConfig

HUB_USER = "borderx-hub"


def agency_user(agency_id: str) -> str:
    return f"borderx-{agency_id.lower()}"


def _bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def recipient_statements(bucket: str, agency_id: str) -> list[dict]:
    return [
        {
            # Agreement ids only (common prefixes), so a recipient can find its folders without seeing others'.
            "Sid": "ListAgreements",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [_bucket_arn(bucket)],
            "Condition": {"StringEquals": {"s3:prefix": ["", "deliveries/"], "s3:delimiter": ["/"]}},
        },
        {
            "Sid": "ListOwnDeliveries",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [_bucket_arn(bucket)],
            "Condition": {"StringLike": {"s3:prefix": [f"deliveries/*/{agency_id}/*"]}},
        },
        {
            "Sid": "ReadOwnDeliveries",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{_bucket_arn(bucket)}/deliveries/*/{agency_id}/*"],
        },
    ]


def provider_statements(bucket: str, agency_id: str) -> list[dict]:
    return [
        {
            "Sid": "WriteOwnIntake",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
            "Resource": [f"{_bucket_arn(bucket)}/intake/{agency_id}/*"],
        },
        {
            "Sid": "ListOwnIntake",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [_bucket_arn(bucket)],
            "Condition": {"StringLike": {"s3:prefix": [f"intake/{agency_id}/*"]}},
        },
        {
            "Sid": "ReadOwnReceipts",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{_bucket_arn(bucket)}/intake/{agency_id}/receipts/*"],
        },
        {
            # Receipts are the hub's: an agency cannot put one there, even one that would not verify.
            "Sid": "HubWritesReceipts",
            "Effect": "Deny",
            "Action": ["s3:PutObject"],
            "Resource": [f"{_bucket_arn(bucket)}/intake/{agency_id}/receipts/*"],
        },
    ]


def hub_statements(bucket: str) -> list[dict]:
    return [
        {"Sid": "HubBucket", "Effect": "Allow",
         "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads", "s3:CreateBucket"],
         "Resource": [_bucket_arn(bucket)]},
        {"Sid": "HubObjects", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts"],
         "Resource": [f"{_bucket_arn(bucket)}/*"]},
    ]


def user_policies(config: DeploymentConfig, bucket: str) -> dict[str, dict]:
    """One identity policy per user (IAM or MinIO), named by the user it is for."""
    providers = {p for a in config.agreements.values() for p in a.providers}
    recipients = {r.agency for a in config.agreements.values() for r in a.recipients}
    policies = {HUB_USER: {"Version": "2012-10-17", "Statement": hub_statements(bucket)}}
    for agency_id in sorted(config.agencies):
        statements = []
        if agency_id in recipients:
            statements += recipient_statements(bucket, agency_id)
        if agency_id in providers:
            statements += provider_statements(bucket, agency_id)
        if statements:
            policies[agency_user(agency_id)] = {"Version": "2012-10-17", "Statement": statements}
    return policies


def bucket_policy(config: DeploymentConfig, bucket: str, principal_template: str) -> dict:
    """A resource policy for AWS S3, granting the same rights to principals named by the template."""
    statements = []
    for user, policy in user_policies(config, bucket).items():
        principal = principal_template.format(user=user)
        for statement in policy["Statement"]:
            statements.append({**statement, "Sid": f"{statement['Sid']}-{user}", "Principal": {"AWS": [principal]}})
    return {"Version": "2012-10-17", "Statement": statements}


def write_policies(config: DeploymentConfig, bucket: str, out_dir: Path, principal_template: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for user, policy in user_policies(config, bucket).items():
        path = out_dir / f"{user}.json"
        path.write_text(json.dumps(policy, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    path = out_dir / "bucket-policy.json"
    path.write_text(json.dumps(bucket_policy(config, bucket, principal_template), indent=2) + "\n", encoding="utf-8")
    written.append(path)
    return written
