"""compose.yaml and the Dockerfile, checked without a Docker engine (none runs here).

What can be checked is: the file parses and interpolates the way compose does, every service
the deployment guide names exists, healthchecks, restart policies, volumes and dependencies
fit together, ports and environment agree with riskctl's settings and the Grafana
provisioning, every riskctl command and option the services run exists, and the Dockerfile
installs the package the way the README does.
"""

from __future__ import annotations

import re
import shlex
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from flows.dashboards import PLUGIN_MIN_GRAFANA, PLUGIN_TYPE, PLUGIN_VERSION
from flows.store import parse_store_url

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ONE_SHOT = {"init", "minio-setup", "producer"}
WORKERS = sorted(name for name in SERVICES if name.startswith("worker-"))
ENV = {
    "CLICKHOUSE_ADMIN_PASSWORD": "admin-pass-123456",
    "RISKCTL_WRITER_PASSWORD": "writer-pass-123456",
    "RISKCTL_ANALYST_PASSWORD": "analyst-pass-123456",
    "MINIO_ROOT_PASSWORD": "minio-pass-123456",
    "GRAFANA_ADMIN_PASSWORD": "grafana-pass-123456",
    "RISKCTL_API_TOKEN": "api-token-123456",
}
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_]\w*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_]\w*)")


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution: $$, ${X}, ${X:-default}, ${X-default}, ${X:?error}."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3)
        present = name in env and (env[name] != "" or op in ("-", "?"))
        if present:
            return env[name]
        if op in (":-", "-"):
            return arg or ""
        if op in (":?", "?"):
            raise MissingVariable(f"{name}: {arg}")
        return ""

    return _VARIABLE.sub(one, value)


RESOLVED = interpolate(COMPOSE, ENV)["services"]


def environment(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in RESOLVED[service].get("environment", {}).items()}


def command_text(service: str) -> str:
    command = RESOLVED[service].get("command", [])
    return " ".join(command) if isinstance(command, list) else str(command)


def riskctl_invocations(text: str) -> list[list[str]]:
    """Each `riskctl ...` call in a command line or shell script."""
    calls = []
    for part in re.split(r"&&|\|\||;|\(|\)", text):
        words = shlex.split(part)
        if "riskctl" in words:
            calls.append(words[words.index("riskctl") + 1 :])
    return calls


def flag_values(args: list[str], flag: str) -> list[str]:
    values = []
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            values.append(arg.split("=", 1)[1])
        elif arg == flag and i + 1 < len(args):
            values.append(args[i + 1])
    return values


# ------------------------------------------------------------------------------ structure


def test_the_stack_has_every_part_of_the_deployment() -> None:
    assert set(SERVICES) == {
        "redpanda",
        "clickhouse",
        "minio",
        "minio-setup",
        "init",
        "worker-0",
        "worker-1",
        "producer",
        "monitor",
        "retrain",
        "grafana",
        "api",
    }
    assert len(WORKERS) >= 2


def compose_services_named(text: str) -> set[str]:
    """Services named in `docker compose ...` command lines of a markdown text."""
    named: set[str] = set()
    for line in re.findall(r"docker compose [^\n`]+", text):
        words = shlex.split(line.replace("\\", ""))[2:]
        verb, rest = words[0], words[1:]
        positional = []
        skip = False
        for word in rest:
            if skip:
                skip = False
            elif word in ("-e", "--env", "-f", "--file", "-p"):
                skip = True
            elif not word.startswith("-"):
                positional.append(word)
        # `run SERVICE COMMAND...`: only the first word is a service.
        named |= set(positional[:1] if verb in ("run", "exec") else positional)
    return named


def test_every_service_the_docs_name_exists_and_every_service_is_documented() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text()
    table = re.findall(r"^\| `([a-z0-9-]+)` \|", guide, flags=re.MULTILINE)
    assert set(table) == set(SERVICES), "the guide's service table"
    for doc in (guide, (ROOT / "README.md").read_text()):
        named = compose_services_named(doc)
        assert named <= set(SERVICES), named - set(SERVICES)
    assert {"worker-0", "producer", "init"} <= compose_services_named(guide)


def test_missing_secrets_stop_compose_instead_of_defaulting() -> None:
    for name in ENV:
        partial = {k: v for k, v in ENV.items() if k != name}
        with pytest.raises(MissingVariable, match=name):
            interpolate(COMPOSE, partial)


def test_secrets_only_come_from_the_environment() -> None:
    for name, service in SERVICES.items():
        for key, value in service.get("environment", {}).items():
            if re.search(r"PASSWORD|SECRET", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), (name, key)
            if key == "RISKCTL_STORE":
                assert re.search(r":\$\{[A-Z_]+_PASSWORD:\?[^}]+\}@", str(value)), (name, key)
    clickhouse = environment("clickhouse")
    # The image's passwordless `default` user is replaced by a named administrator.
    assert clickhouse["CLICKHOUSE_USER"] not in ("", "default")
    assert clickhouse["CLICKHOUSE_PASSWORD"] == ENV["CLICKHOUSE_ADMIN_PASSWORD"]
    text = (ROOT / "compose.yaml").read_text()
    for secret in ENV.values():
        assert secret not in text


def test_healthchecks_restart_policies_and_volumes() -> None:
    declared = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        restart = service.get("restart", "")
        if name in ONE_SHOT:
            # Jobs retry a transient failure a few times, then stay down and visible.
            assert re.fullmatch(r"on-failure(:\d+)?", restart), name
        else:
            assert restart == "unless-stopped", name
            assert service["healthcheck"]["test"], name
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), (name, source)
            else:
                assert source in declared, (name, source)
    used = {m.split(":")[0] for s in SERVICES.values() for m in s.get("volumes", [])}
    assert declared <= used


def test_dependencies_wait_for_health_or_completion() -> None:
    for name, service in SERVICES.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in SERVICES, (name, target)
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], (name, target)
            elif condition == "service_completed_successfully":
                assert target in ONE_SHOT, (name, target)
            else:
                assert condition == "service_started", (name, target)
    for worker in WORKERS:
        assert SERVICES[worker]["depends_on"]["init"]["condition"] == (
            "service_completed_successfully"
        )


# ------------------------------------------------------------------------------ consistency


def test_store_urls_reach_the_clickhouse_service_as_the_right_users() -> None:
    clickhouse = environment("clickhouse")
    published = [p.rsplit(":", 1)[1] for p in RESOLVED["clickhouse"]["ports"]]
    assert "8123" in published
    urls = {name: environment(name).get("RISKCTL_STORE") for name in SERVICES}
    admin = parse_store_url(urls["init"] or "")
    assert (admin.host, admin.port, admin.database) == ("clickhouse", 8123, "riskctl")
    assert admin.username == clickhouse["CLICKHOUSE_USER"]
    assert (
        admin.database == clickhouse["CLICKHOUSE_DB"] == environment("grafana")["RISKCTL_DATABASE"]
    )
    # Drift writes drift_psi and the archive reads whole rows: the administrator's rights.
    assert parse_store_url(urls["monitor"] or "") == admin
    for worker in [*WORKERS, "api"]:  # the decision service writes its audit rows alike
        store = parse_store_url(urls[worker] or "")
        assert (store.host, store.port, store.database) == ("clickhouse", 8123, "riskctl")
        assert store.username == environment("init")["RISKCTL_WRITER_USER"]
        assert store.password.reveal() == ENV["RISKCTL_WRITER_PASSWORD"]


def test_kafka_addresses_agree_with_the_redpanda_listeners() -> None:
    command = command_text("redpanda")
    advertised = dict(
        item.split("://", 1)
        for item in re.search(r"--advertise-kafka-addr=(\S+)", command).group(1).split(",")  # type: ignore[union-attr]
    )
    internal = advertised["internal"]
    assert internal.split(":")[0] == "redpanda"
    host_port = advertised["external"].rsplit(":", 1)[1]
    assert any(p.endswith(f":{host_port}:{host_port}") for p in RESOLVED["redpanda"]["ports"])
    partitions = None
    total_workers = 0
    for name in SERVICES:
        env = environment(name)
        if "RISKCTL_KAFKA_BROKERS" in env:
            assert env["RISKCTL_KAFKA_BROKERS"] == internal, name
        for call in riskctl_invocations(command_text(name)):
            for brokers in flag_values(call, "--brokers"):
                assert brokers == internal, name
            if call[:2] == ["topics", "create"]:
                (partitions,) = flag_values(call, "--partitions")
                assert partitions == env["RISKCTL_KAFKA_PARTITIONS"]
            if call[:1] == ["run"]:
                total_workers += int(flag_values(call, "--workers")[0])
    assert partitions is not None
    # Every Bytewax worker of the cluster gets at least one partition to read.
    assert int(partitions) >= total_workers


def test_workers_form_one_cluster() -> None:
    calls = {w: riskctl_invocations(command_text(w))[0] for w in WORKERS}
    addresses = {tuple(flag_values(c, "--addresses")[0].split(",")) for c in calls.values()}
    assert len(addresses) == 1
    (cluster,) = addresses
    ids = sorted(int(flag_values(c, "--process-id")[0]) for c in calls.values())
    assert ids == list(range(len(WORKERS))) == list(range(len(cluster)))
    for worker, call in calls.items():
        process = int(flag_values(call, "--process-id")[0])
        host, port = cluster[process].split(":")
        assert host == worker == SERVICES[worker]["hostname"]
        assert flag_values(call, "--source") == ["kafka"]
        (recovery,) = flag_values(call, "--recovery-dir")
        assert f"recovery:{recovery}" in SERVICES[worker]["volumes"]
        assert f"EXPOSE {port}" in (ROOT / "Dockerfile").read_text()
    # init prepares the shared recovery store before any worker starts.
    assert "recovery:/recovery" in SERVICES["init"]["volumes"]
    assert "python -m bytewax.recovery /recovery 1" in command_text("init")


def test_grafana_and_its_plugin_are_pinned_as_a_compatible_pair() -> None:
    image, _, tag = RESOLVED["grafana"]["image"].partition(":")
    assert image == "grafana/grafana"
    # A release number, not a moving tag such as latest or main.
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), tag
    assert tuple(int(part) for part in tag.split(".")) >= PLUGIN_MIN_GRAFANA
    plugins = environment("grafana")["GF_PLUGINS_PREINSTALL_SYNC"].split(",")
    assert [p for p in plugins if p.startswith(PLUGIN_TYPE)] == [f"{PLUGIN_TYPE}@{PLUGIN_VERSION}"]
    assert "GF_INSTALL_PLUGINS" not in environment("grafana")


def test_riskctl_settings_in_compose_are_settings_riskctl_reads() -> None:
    source = "\n".join(p.read_text() for d in ("flows", "cli") for p in (ROOT / d).rglob("*.py"))
    for name in SERVICES:
        for key in environment(name):
            if key.startswith("RISKCTL_") and name != "grafana":
                assert f'"{key}"' in source or f"'{key}'" in source, (name, key)


def test_grafana_gets_the_plugin_the_provisioning_and_its_variables() -> None:
    grafana = RESOLVED["grafana"]
    env = environment("grafana")
    assert f"{PLUGIN_TYPE}@{PLUGIN_VERSION}" in env["GF_PLUGINS_PREINSTALL_SYNC"].split(",")
    mounts = dict(
        m.rsplit(":", 1)[0].split(":", 1) for m in grafana["volumes"] if m.startswith(".")
    )
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/riskctl.yaml").read_text())[
        "providers"
    ]
    assert mounts["./grafana/dashboards"] == providers[0]["options"]["path"]
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "grafana/dashboards" / Path(home).name).is_file()
    assert home.startswith(providers[0]["options"]["path"])
    datasource_file = (ROOT / "grafana/provisioning/datasources/clickhouse.yaml").read_text()
    for variable in re.findall(r"\$\{(\w+)\}", datasource_file):
        assert variable in env, variable
    (source,) = yaml.safe_load(datasource_file)["datasources"]
    assert env["RISKCTL_CLICKHOUSE_HOST"] in SERVICES
    assert source["jsonData"]["port"] == 8123 and source["jsonData"]["protocol"] == "http"
    assert env["RISKCTL_ANALYST_USER"] == environment("init")["RISKCTL_ANALYST_USER"]


def test_clickhouse_config_enables_what_the_analyst_profile_needs() -> None:
    mount = next(m for m in SERVICES["clickhouse"]["volumes"] if m.startswith("./"))
    host, container = mount.split(":")[:2]
    assert container.startswith("/etc/clickhouse-server/config.d/")
    tree = ET.parse(ROOT / host)
    flag = tree.find("access_control_improvements/settings_constraints_replace_previous")
    assert flag is not None and flag.text == "true"
    users_sql = (ROOT / "clickhouse/server/users.sql").read_text()
    assert "CHANGEABLE_IN_READONLY" in users_sql


@pytest.mark.parametrize(
    ("service", "call"),
    [
        (name, call)
        for name in SERVICES
        for call in riskctl_invocations(command_text(name))
        + riskctl_invocations(
            " ".join(map(str, SERVICES[name].get("healthcheck", {}).get("test", [])))
        )
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v[:2]),
)
def test_every_riskctl_command_and_option_the_stack_runs_exists(
    service: str, call: list[str]
) -> None:
    path = [w for w in call if not w.startswith("-")][:2]
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    if result.exit_code != 0 or "Usage:" not in result.output:
        path = path[:1]
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, (service, call, result.output)
    for word in call:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            assert option in result.output, (service, option)


# ------------------------------------------------------------------------------ the image


def test_dockerfile_installs_the_package_the_way_the_readme_does() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    readme = (ROOT / "README.md").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert 'pip install -e "' in readme or "pip install -e ." in readme
    assert re.search(r"^(RUN|\s*&&) pip install -e \.", dockerfile, flags=re.MULTILINE)
    assert "python -m venv" in dockerfile
    version = re.search(r"^FROM python:(3\.\d+)", dockerfile, flags=re.MULTILINE)
    assert version, "the image must build on the official Python image"
    minor = int(version.group(1).split(".")[1])
    low, high = re.findall(r"3\.(\d+)", project["requires-python"])
    assert int(low) <= minor < int(high)
    copied = set(re.findall(r"^COPY (\S+)", dockerfile, flags=re.MULTILINE))
    # The packages, and the trees they read at run time (migrations, dashboards, users.sql).
    assert {"flows", "training", "cli", "clickhouse", "grafana"} <= copied
    assert re.search(r"^COPY pyproject.toml README.md ", dockerfile, flags=re.MULTILINE)
    assert re.search(r"^USER (?!root)\w+", dockerfile, flags=re.MULTILINE)
    assert not re.search(r"^ENV[^\n]*(PASSWORD|SECRET)", dockerfile, flags=re.MULTILINE)
    images = {SERVICES[n].get("image") for n in SERVICES if "build" in SERVICES[n]}
    assert images == {"riskctl:local"}


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".riskctl", ".env"} <= ignored
    copied = re.findall(r"^COPY (\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert not set(copied) & ignored
