"""The Grafana dashboards (``grafana/dashboards/``, installed as ``flows.grafana``) as data, and
their SQL made runnable: used by ``riskctl report``, ``riskctl grafana push`` and the tests.

Layers, each importing only those below it: ``model`` (dashboards, panels, variables, time
ranges), ``macros`` (the plugin's macros and variables, expanded as pure text), ``load``
(reading and checking the JSON files) and ``run`` (panels run against a store).
"""

from flows.dashboards.load import DASHBOARDS_DIR, load_dashboard, load_dashboards
from flows.dashboards.macros import expand, referenced_variables
from flows.dashboards.model import (
    ALL,
    FORMAT_TABLE,
    FORMAT_TIME_SERIES,
    PANEL_TYPES,
    PLUGIN_MIN_GRAFANA,
    PLUGIN_TYPE,
    PLUGIN_VERSION,
    QUERY_TYPES,
    Dashboard,
    DashboardError,
    Panel,
    Selection,
    Target,
    Variable,
    auto_interval_s,
    last_window,
    parse_span,
)
from flows.dashboards.run import (
    PanelResult,
    dashboard_options,
    finite,
    run_panel,
    shape_problems,
    variable_options,
)

__all__ = [
    "ALL",
    "DASHBOARDS_DIR",
    "FORMAT_TABLE",
    "FORMAT_TIME_SERIES",
    "PANEL_TYPES",
    "PLUGIN_MIN_GRAFANA",
    "PLUGIN_TYPE",
    "PLUGIN_VERSION",
    "QUERY_TYPES",
    "Dashboard",
    "DashboardError",
    "Panel",
    "PanelResult",
    "Selection",
    "Target",
    "Variable",
    "auto_interval_s",
    "dashboard_options",
    "expand",
    "finite",
    "last_window",
    "load_dashboard",
    "load_dashboards",
    "parse_span",
    "referenced_variables",
    "run_panel",
    "shape_problems",
    "variable_options",
]
