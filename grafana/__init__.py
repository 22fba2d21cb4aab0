"""Installed as ``flows.grafana``: the dashboards and the provisioning files, read through
``flows.resources.package_dir`` (see pyproject.toml)."""
