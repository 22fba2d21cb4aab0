"""``riskctl grafana push``: upload the dashboards to an existing Grafana through its HTTP API.

For Grafanas that do not provision from files. Each dashboard keeps its uid, so pushing again
updates it in place (Grafana bumps its version) instead of adding a copy.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer

from cli.common import DashboardsOption, UsageError, console, user_errors
from flows.errors import RiskctlError

if TYPE_CHECKING:
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaException

    from flows.dashboards import Dashboard

PROVISIONED_DATASOURCE_UID = "riskctl-clickhouse"
DEFAULT_FOLDER = "riskctl"

grafana_app = typer.Typer(help="Publish the dashboards to Grafana.", no_args_is_help=True)


class GrafanaError(RiskctlError):
    """Grafana refused or could not be reached; nothing more was uploaded."""


@dataclass(frozen=True)
class Pushed:
    uid: str
    title: str
    version: int
    created: bool
    url: str


def redact(url: str) -> str:
    """The URL without any user:password part."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _status(exc: GrafanaException) -> int:
    return int(getattr(exc, "status_code", 0) or 0)


@contextmanager
def grafana_errors(url: str, secret: str | None) -> Iterator[None]:
    """grafana-client and HTTP failures as one-line errors that never carry the token."""
    import niquests
    from grafana_client.client import (
        GrafanaClientError,
        GrafanaException,
        GrafanaTimeoutError,
        GrafanaUnauthorizedError,
    )

    where = redact(url)

    def clean(text: object) -> str:
        line = str(text).strip().splitlines()[0] if str(text).strip() else ""
        return line.replace(secret, "***") if secret else line

    try:
        yield
    except GrafanaUnauthorizedError as exc:
        raise GrafanaError(f"Grafana at {where} rejected the credentials (401)") from exc
    except GrafanaTimeoutError as exc:
        raise GrafanaError(f"Grafana at {where} did not answer in time: {clean(exc)}") from exc
    except GrafanaClientError as exc:
        if _status(exc) == 403:
            raise GrafanaError(
                f"Grafana at {where} refused (403): the token needs the Editor or Admin role "
                "to write dashboards and folders"
            ) from exc
        raise GrafanaError(f"Grafana at {where} refused: {clean(exc.message)}") from exc
    except GrafanaException as exc:
        raise GrafanaError(f"Grafana at {where} failed: {clean(exc.message)}") from exc
    except niquests.exceptions.RequestException as exc:
        # urllib3 wraps the cause several times over; the OS's reason is what helps.
        text = str(exc)
        reason = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
        unknown = re.search(r"Failed to resolve '([^']+)'", text)
        if reason:
            detail = reason.group(1).strip()
        elif unknown:
            detail = f"cannot resolve host {unknown.group(1)}"
        else:
            detail = clean(exc)[:200]
        raise GrafanaError(f"cannot reach Grafana at {where}: {detail}") from exc


def _missing(call: Any, *args: Any) -> Any | None:
    """The call's result, or None when Grafana answers 404."""
    from grafana_client.client import GrafanaClientError

    try:
        return call(*args)
    except GrafanaClientError as exc:
        if _status(exc) == 404:
            return None
        raise


def with_datasource(raw: dict[str, Any], datasource_uid: str) -> dict[str, Any]:
    """A copy of the dashboard whose datasource variable defaults to ``datasource_uid``."""
    dashboard = copy.deepcopy(raw)
    # Grafana assigns numeric ids per instance; the uid is what identifies a dashboard.
    dashboard["id"] = None
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "datasource":
            variable["current"] = {
                "selected": True,
                "text": datasource_uid,
                "value": datasource_uid,
            }
    return dashboard


def push_dashboards(
    api: GrafanaApi,
    dashboards: list[Dashboard],
    *,
    folder: str = DEFAULT_FOLDER,
    datasource_uid: str = PROVISIONED_DATASOURCE_UID,
) -> list[Pushed]:
    """Create or update each dashboard by uid in ``folder`` (created if missing)."""
    from flows.dashboards import PLUGIN_TYPE

    # The health check first, so a wrong URL or token fails before anything is written.
    # (api.connect() would also log the failure, a second line on the terminal.)
    api.health.check()
    source = _missing(api.datasource.get_datasource_by_uid, datasource_uid)
    if source is None:
        raise GrafanaError(
            f"Grafana has no datasource with uid {datasource_uid!r}: add a {PLUGIN_TYPE} "
            "datasource for ClickHouse (docs/deployment.md) or pass --datasource-uid"
        )
    if source.get("type") != PLUGIN_TYPE:
        raise GrafanaError(
            f"datasource {datasource_uid!r} is of type {source.get('type')!r}, not {PLUGIN_TYPE}"
        )
    if _missing(api.folder.get_folder, folder) is None:
        api.folder.create_folder(folder, uid=folder)
    pushed = []
    for dashboard in dashboards:
        existing = _missing(api.dashboard.get_dashboard, dashboard.uid)
        answer = api.dashboard.update_dashboard(
            {
                "dashboard": with_datasource(dict(dashboard.raw), datasource_uid),
                "folderUid": folder,
                "overwrite": True,
                "message": "riskctl grafana push",
            }
        )
        pushed.append(
            Pushed(
                uid=str(answer.get("uid", dashboard.uid)),
                title=dashboard.title,
                version=int(answer.get("version", 0)),
                created=existing is None,
                url=str(answer.get("url", "")),
            )
        )
    return pushed


def _client(url: str, token: str | None, timeout: float) -> GrafanaApi:
    from grafana_client import GrafanaApi

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--url must be an http(s) URL such as http://localhost:3000, got {url!r}")
    if not token and not (parts.username and parts.password):
        raise UsageError("give --token (or GRAFANA_TOKEN), or user:password in --url")
    return GrafanaApi.from_url(url, credential=token or None, timeout=timeout)


@grafana_app.command("push")
def push(
    url: Annotated[
        str,
        typer.Option("--url", envvar="GRAFANA_URL", help="Grafana's base URL (env: GRAFANA_URL)."),
    ],
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="GRAFANA_TOKEN",
            help="Service account token with the Editor role (env: GRAFANA_TOKEN).",
            show_default=False,
        ),
    ] = None,
    folder: Annotated[
        str, typer.Option("--folder", help="Uid (and title) of the folder to put them in.")
    ] = DEFAULT_FOLDER,
    datasource_uid: Annotated[
        str,
        typer.Option(
            "--datasource-uid", help="Uid of the ClickHouse datasource the panels should use."
        ),
    ] = PROVISIONED_DATASOURCE_UID,
    dashboards_dir: DashboardsOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each request.")] = 10.0,
) -> None:
    """Upload the dashboards to Grafana; pushing again updates them in place by uid."""
    from flows.dashboards import DASHBOARDS_DIR, load_dashboards

    with user_errors():
        if not timeout > 0:
            raise UsageError("--timeout must be a positive number of seconds")
        dashboards = load_dashboards(dashboards_dir or DASHBOARDS_DIR)
        api = _client(url, token, timeout)
        with grafana_errors(url, token):
            pushed = push_dashboards(api, dashboards, folder=folder, datasource_uid=datasource_uid)
        base = redact(url)
        for item in pushed:
            verb = "created" if item.created else "updated"
            console.print(
                f"{verb} {item.uid} ({item.title}) version {item.version}: {base}{item.url}",
                highlight=False,
                soft_wrap=True,
            )


def register(app: typer.Typer) -> None:
    app.add_typer(grafana_app, name="grafana")
