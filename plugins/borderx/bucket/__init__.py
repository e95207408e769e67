"""The shared bucket: :mod:`.client` (S3 and SQS clients with their timeouts and retries), :mod:`.objects`
(which keys and how many bytes are accepted from it), :mod:`.publish` (putting a delivery there),
:mod:`.deliveries` (listing and revoking), :mod:`.retention` (deleting what outlived its agreement) and
:mod:`.access` (who may read and write where)."""
