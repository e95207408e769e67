"""Airflow plugin: the auditor's page (borderx.airflow.web) inside Airflow, at /borderx on the API server.

Registered through the `airflow.plugins` entry point of the installed package, so any Airflow that has
borderx installed finds it, whatever its plugins folder. The API server mounts the app under
/borderx and the UI lists it under Browse, shown in a frame at /plugin/borderx-audit.

Airflow authenticates none of a plugin's routes (a mounted app inherits no dependencies of the core
API), so this module does it: every route asks Airflow's auth manager for the user, from the bearer
token or the UI's session cookie exactly as the core API does, and allows whoever may use the
Airflow UI. The page holds ids, hashes and counts, never a data value. A browser without a session
is sent to the auth manager's login page and comes back after it.

Kept cheap to import: every Airflow process loads plugins, and only the API server serves this one;
Airflow's security machinery, GX, pyarrow and the S3 client are imported at request time or never.
"""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request, status

from airflow.plugins_manager import AirflowPlugin
from borderx.airflow.web import create_app

URL_PREFIX = "/borderx"
VIEW_NAME = "Border Exchange audit"


async def require_airflow_user(request: Request) -> None:
    """Lets through whoever Airflow's auth manager allows into its UI; sends browsers to log in first."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    try:
        user = await get_user(request, None, await bearer_scheme(request))
    except HTTPException as exc:
        wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        if exc.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN) and wants_page:
            login = get_auth_manager().get_url_login(next_url=str(request.url))
            raise HTTPException(status.HTTP_307_TEMPORARY_REDIRECT, headers={"Location": login}) from None
        raise
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")


app = create_app(dependencies=[Depends(require_airflow_user)])


class BorderxPlugin(AirflowPlugin):
    name = "borderx"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": VIEW_NAME}]
    # A relative href keeps the frame working when Airflow is served under a path ([api] base_url).
    external_views = [{"name": VIEW_NAME, "href": URL_PREFIX.lstrip("/") + "/", "url_route": "borderx-audit",
                       "category": "browse", "destination": "nav"}]


if __name__ != "borderx.airflow.plugin":
    # With AIRFLOW__CORE__PLUGINS_FOLDER at this repository's plugins/, Airflow's folder walk also runs
    # this file as a loose top-level module; that copy must not register the plugin a second time.
    del BorderxPlugin
