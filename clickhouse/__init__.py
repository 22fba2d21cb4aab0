"""Installed as ``flows.sql``: the numbered migrations and the server's users.sql, read through
``flows.resources.package_dir`` (see pyproject.toml)."""
