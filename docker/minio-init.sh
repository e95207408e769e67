#!/bin/sh
# Creates the bucket, the hub's user and one user per agency with the policies from docker/policies/
# (regenerate those with `borderx access policy --home . --out docker/policies` after changing config/).
set -eu
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing local/borderx
for policy in /policies/borderx-*.json; do
    user=$(basename "$policy" .json)
    mc admin policy create local "$user" "$policy"
    if [ "$user" = "borderx-hub" ]; then
        mc admin user add local "$BORDERX_HUB_ACCESS_KEY" "$BORDERX_HUB_SECRET_KEY"
        mc admin policy attach local "$user" --user "$BORDERX_HUB_ACCESS_KEY"
    else
        # Agency users start disabled with a random secret: the operator hands out credentials on request.
        secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
        mc admin user add local "$user" "$secret"
        mc admin policy attach local "$user" --user "$user"
        mc admin user disable local "$user"
    fi
done
echo "minio-init: bucket borderx and $(ls /policies/borderx-*.json | wc -l) users ready"
