"""deploy/docker-compose.yml, checked without Docker: services, images, ports, scrape targets,
provisioning, and that every engine environment is one ``Settings.from_env`` accepts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from streams.settings import Settings, describe

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

PINNED = re.compile(r"^[a-z0-9][a-z0-9._/-]*:(?P<tag>v?\d+(\.\d+)+[\w.-]*)$")
SECURITY_VARIABLES = {
    "SHOPGUIDE_KAFKA_SECURITY_PROTOCOL",
    "SHOPGUIDE_KAFKA_SASL_MECHANISM",
    "SHOPGUIDE_KAFKA_SASL_USERNAME",
    "SHOPGUIDE_KAFKA_SASL_PASSWORD",
    "SHOPGUIDE_KAFKA_SASL_OAUTH_TOKEN_FILE",
    "SHOPGUIDE_KAFKA_SSL_CAFILE",
    "SHOPGUIDE_KAFKA_SSL_CERTFILE",
    "SHOPGUIDE_KAFKA_SSL_KEYFILE",
}
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def settings_variables() -> set[str]:
    return {row[0] for row in describe()}


def workers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("command") == ["worker"]}


def shopguide_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if "build" in s}


def resolved_env(service: dict[str, Any]) -> dict[str, str]:
    """The service's environment as a shell with none of the variables set would give it."""
    env = {}
    for key, value in service.get("environment", {}).items():
        if value is None:
            continue  # passed through from the caller's environment: unset here
        env[key] = _INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))
    return env


def dockerfile_env() -> dict[str, str]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each published port."""
    out = []
    for spec in service.get("ports", []):
        parts = str(spec).split(":")
        assert len(parts) == 3, f"{spec!r}: publish as ADDRESS:HOST_PORT:CONTAINER_PORT"
        out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source of each volume."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def test_required_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "topic-init", "prometheus", "grafana"} <= services.keys()
    assert len(workers(compose)) >= 2


def test_every_image_is_pinned_to_a_version(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image, f"{name} has no image"
        match = PINNED.match(image)
        assert match, f"{name}: {image!r} is not pinned to a version tag"


def test_engine_image_is_tagged_with_the_project_version(compose: dict[str, Any]) -> None:
    with (REPO / "pyproject.toml").open("rb") as f:
        version = tomllib.load(f)["project"]["version"]
    for name, service in shopguide_services(compose).items():
        assert service["image"] == f"shopguide:{version}", name
        assert service["build"]["context"] == ".."
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_kafka_runs_the_official_image_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in env)
    assert env["CLUSTER_ID"]
    node, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert node == env["KAFKA_NODE_ID"]
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert voter == f"{kafka['hostname']}{listeners[controller]}"
    assert "healthcheck" in kafka


def test_engine_reaches_kafka_on_its_advertised_internal_listener(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = kafka["environment"]
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    internal = advertised[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    for name, service in shopguide_services(compose).items():
        assert resolved_env(service)["SHOPGUIDE_BROKER"] == internal, name


def test_topics_are_created_once_before_the_workers_start(compose: dict[str, Any]) -> None:
    init = compose["services"]["topic-init"]
    assert init["command"] == ["topics", "create"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert init["restart"] == "no"
    for name, worker in workers(compose).items():
        assert worker["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
        assert resolved_env(worker)["SHOPGUIDE_CREATE_TOPICS"] == "0", name


def test_engine_environments_are_valid_settings(compose: dict[str, Any]) -> None:
    known = settings_variables()
    for name, service in shopguide_services(compose).items():
        env = service["environment"]
        unknown = {k for k in env if k.startswith("SHOPGUIDE_")} - known
        assert not unknown, f"{name}: unknown variables {sorted(unknown)}"
        Settings.from_env(resolved_env(service))


def test_kafka_security_settings_pass_through_from_the_environment(compose: dict[str, Any]) -> None:
    for name, service in shopguide_services(compose).items():
        env = service["environment"]
        assert env.keys() >= SECURITY_VARIABLES, name
        for key in SECURITY_VARIABLES:
            assert env[key] is None, f"{name}: {key} must pass through, not be set in the file"


def test_each_worker_is_reachable_by_its_service_name(compose: dict[str, Any]) -> None:
    for name, worker in workers(compose).items():
        settings = Settings.from_env(resolved_env(worker))
        assert settings.web_host == name == worker["hostname"]


def test_workers_use_production_consumer_group_timeouts(compose: dict[str, Any]) -> None:
    defaults = Settings()
    for worker in workers(compose).values():
        settings = Settings.from_env(resolved_env(worker))
        assert settings.session_timeout_s >= 30 > defaults.session_timeout_s
        assert settings.rebalance_timeout_s >= 30 > defaults.rebalance_timeout_s


def test_each_worker_has_its_own_state_volume(compose: dict[str, Any]) -> None:
    data_dir = Settings.from_env(dockerfile_env()).data_dir
    sources = []
    for name, worker in workers(compose).items():
        source = mounts(worker)[str(data_dir)]
        assert source in compose["volumes"], name
        sources.append(source)
    assert len(sources) == len(set(sources))


def test_published_ports_bind_localhost_only(compose: dict[str, Any]) -> None:
    host_ports = []
    for name, service in compose["services"].items():
        for address, host_port, _ in published(service):
            assert address == "127.0.0.1", f"{name} publishes on {address}"
            host_ports.append(host_port)
    assert len(host_ports) == len(set(host_ports))


def test_worker_ports_match_their_web_port(compose: dict[str, Any]) -> None:
    for name, worker in workers(compose).items():
        web_port = Settings.from_env(resolved_env(worker)).web_port
        assert [p[2] for p in published(worker)] == [web_port], name


def test_prometheus_scrapes_exactly_the_workers(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    volumes = mounts(prometheus)
    assert Path(DEPLOY, volumes["/etc/prometheus/prometheus.yml"]).resolve() == (
        DEPLOY / "prometheus" / "prometheus.yml"
    )
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    for rule_file in config["rule_files"]:
        assert Path(DEPLOY, volumes[f"/etc/prometheus/{rule_file}"]).resolve() == (DEPLOY / "prometheus" / rule_file)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "shopguide"]
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    expected = {f"{name}:{Settings.from_env(resolved_env(w)).web_port}" for name, w in workers(compose).items()}
    assert targets == expected


def test_grafana_gets_the_prometheus_data_source_and_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    volumes = mounts(grafana)
    provisioning = DEPLOY / volumes["/etc/grafana/provisioning"]
    assert provisioning.resolve() == (DEPLOY / "grafana" / "provisioning")

    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert any(p[2] == 9090 for p in published(compose["services"]["prometheus"]))

    providers = yaml.safe_load((provisioning / "dashboards" / "shopguide.yml").read_text())
    (provider,) = providers["providers"]
    container_path = provider["options"]["path"]
    dashboards = DEPLOY / volumes[container_path]
    assert (dashboards / "shopguide.json").is_file()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{container_path}/shopguide.json"


def test_grafana_admin_password_is_required_not_defaulted(compose: dict[str, Any]) -> None:
    value = compose["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", value), value


def test_bind_mounts_exist_and_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for source in mounts(service).values():
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
            else:
                assert source in compose["volumes"], f"{name}: {source}"


def test_the_guide_is_published_scraped_and_keeps_its_index_on_a_volume(compose: dict[str, Any]) -> None:
    (guide,) = [s for s in compose["services"].values() if s.get("command") == ["guide"]]
    settings = Settings.from_env({**dockerfile_env(), **resolved_env(guide)})
    assert [p[1:] for p in published(guide)] == [(settings.guide_port, settings.guide_port)]
    assert settings.guide_bind == "0.0.0.0" and not settings.create_topics
    assert mounts(guide)[str(settings.data_dir)] in compose["volumes"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "shopguide-guide"]
    assert [t for group in job["static_configs"] for t in group["targets"]] == [f"guide:{settings.guide_port}"]


def test_worker_secrets_are_required_not_defaulted(compose: dict[str, Any]) -> None:
    for name, worker in workers(compose).items():
        env = worker["environment"]
        for variable in ("SHOPGUIDE_SNAPSHOT_KEY", "SHOPGUIDE_API_TOKENS"):
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", env[variable]), (name, env[variable])
