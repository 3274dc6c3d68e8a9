"""deploy/k8s/, checked without a cluster: the StatefulSet, its Services, ConfigMap, Job, PDB and
PodMonitor agree on names, labels, ports, volumes and settings."""

from __future__ import annotations

import re
from typing import Any

import pytest

from streams.settings import Settings, describe

Objects = dict[tuple[str, str], dict[str, Any]]
PINNED = re.compile(r"^[a-z0-9][a-z0-9._/-]*:v?\d+(\.\d+)+[\w.-]*$")


def config(objects: Objects) -> dict[str, str]:
    data: dict[str, str] = objects[("ConfigMap", "shopguide-config")]["data"]
    return data


def statefulset(objects: Objects) -> dict[str, Any]:
    return objects[("StatefulSet", "shopguide-worker")]


def worker_container(objects: Objects) -> dict[str, Any]:
    (container,) = statefulset(objects)["spec"]["template"]["spec"]["containers"]
    return container


def pod_labels(objects: Objects) -> dict[str, str]:
    labels: dict[str, str] = statefulset(objects)["spec"]["template"]["metadata"]["labels"]
    return labels


def named_ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_every_object_is_well_formed(k8s_objects: Objects) -> None:
    kinds = {kind for kind, _ in k8s_objects}
    assert {"ConfigMap", "Service", "StatefulSet", "Job", "PodMonitor"} <= kinds
    for (kind, name), obj in k8s_objects.items():
        assert obj["apiVersion"], (kind, name)
        assert "namespace" not in obj["metadata"], f"{kind}/{name}: the namespace is kubectl -n's"


def test_configmap_holds_valid_known_settings_and_no_credentials(k8s_objects: Objects) -> None:
    data = config(k8s_objects)
    known = {row[0] for row in describe()}
    assert set(data) <= known, sorted(set(data) - known)
    assert not {"SHOPGUIDE_KAFKA_SASL_USERNAME", "SHOPGUIDE_KAFKA_SASL_PASSWORD"} & set(data)
    settings = Settings.from_env(data)
    assert settings.create_topics is False, "the Job creates the topics"
    assert settings.session_timeout_s >= 30 and settings.rebalance_timeout_s >= 30


def test_one_worker_per_partition(k8s_objects: Objects) -> None:
    partitions = Settings.from_env(config(k8s_objects)).partitions
    assert statefulset(k8s_objects)["spec"]["replicas"] == partitions


def test_state_lives_on_a_persistent_volume_per_pod(k8s_objects: Objects) -> None:
    data_dir = str(Settings.from_env(config(k8s_objects)).data_dir)
    (claim,) = statefulset(k8s_objects)["spec"]["volumeClaimTemplates"]
    mounts = {m["mountPath"]: m["name"] for m in worker_container(k8s_objects)["volumeMounts"]}
    assert mounts[data_dir] == claim["metadata"]["name"]


def test_workers_get_settings_and_optional_credentials(k8s_objects: Objects) -> None:
    for container in (
        worker_container(k8s_objects),
        k8s_objects[("Job", "shopguide-topics")]["spec"]["template"]["spec"]["containers"][0],
    ):
        refs = container["envFrom"]
        assert {"configMapRef": {"name": "shopguide-config"}} in refs
        (secret,) = [r["secretRef"] for r in refs if "secretRef" in r]
        assert secret["optional"] is True
        tls = {m["name"]: m for m in container["volumeMounts"]}["kafka-tls"]
        assert tls["readOnly"] is True


def test_each_worker_advertises_its_pod_dns_name_and_binds_all_interfaces(
    k8s_objects: Objects,
) -> None:
    sts = statefulset(k8s_objects)
    env = worker_container(k8s_objects)["env"]
    order = [e["name"] for e in env]
    values = {e["name"]: e.get("value") for e in env}
    service = sts["spec"]["serviceName"]
    pod_dns_name = f"$(POD_NAME).{service}.$(POD_NAMESPACE).svc.cluster.local"
    assert values["SHOPGUIDE_WEB_HOST"] == pod_dns_name
    # Kubernetes expands $(VAR) only from variables defined earlier in the list.
    assert order.index("POD_NAME") < order.index("SHOPGUIDE_WEB_HOST")
    assert order.index("POD_NAMESPACE") < order.index("SHOPGUIDE_WEB_HOST")
    assert values["SHOPGUIDE_WEB_BIND"] == "0.0.0.0"


def test_headless_service_gives_the_pods_their_names(k8s_objects: Objects) -> None:
    service = k8s_objects[("Service", statefulset(k8s_objects)["spec"]["serviceName"])]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True


@pytest.mark.parametrize("name", ["shopguide-workers", "shopguide"])
def test_services_select_the_workers_on_their_web_port(k8s_objects: Objects, name: str) -> None:
    service = k8s_objects[("Service", name)]
    web_port = Settings.from_env(config(k8s_objects)).web_port
    ports = named_ports(worker_container(k8s_objects))
    assert selects(service["spec"]["selector"], pod_labels(k8s_objects))
    for port in service["spec"]["ports"]:
        assert ports[port["targetPort"]] == web_port
        assert port["port"] == web_port


def test_container_port_probes_and_scrape_annotations_agree(k8s_objects: Objects) -> None:
    web_port = Settings.from_env(config(k8s_objects)).web_port
    container = worker_container(k8s_objects)
    assert named_ports(container) == {"http": web_port}
    probes = {"startupProbe": "/livez", "readinessProbe": "/readyz", "livenessProbe": "/livez"}
    for probe, path in probes.items():
        # A broker outage makes a worker unready, never restarts it.
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    annotations = statefulset(k8s_objects)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(web_port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_podmonitor_scrapes_the_worker_port(k8s_objects: Objects) -> None:
    monitor = k8s_objects[("PodMonitor", "shopguide")]
    assert selects(monitor["spec"]["selector"]["matchLabels"], pod_labels(k8s_objects))
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in named_ports(worker_container(k8s_objects))
    assert endpoint["path"] == "/metrics"


def test_disruption_budget_covers_the_workers(k8s_objects: Objects) -> None:
    pdb = k8s_objects[("PodDisruptionBudget", "shopguide-worker")]
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(k8s_objects))
    assert pdb["spec"]["maxUnavailable"] == 1


def test_statefulset_selector_matches_its_pods(k8s_objects: Objects) -> None:
    sts = statefulset(k8s_objects)
    assert selects(sts["spec"]["selector"]["matchLabels"], pod_labels(k8s_objects))


def test_topics_job_creates_the_topics(k8s_objects: Objects) -> None:
    job = k8s_objects[("Job", "shopguide-topics")]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["topics", "create"]
    assert worker_container(k8s_objects)["args"] == ["worker"]


def test_images_are_pinned_and_the_same_as_compose(k8s_objects: Objects, compose: dict[str, Any]) -> None:
    engine = compose["services"]["worker-1"]["image"]
    for (kind, name), obj in k8s_objects.items():
        if kind not in {"StatefulSet", "Job"}:
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            assert PINNED.match(container["image"]), f"{kind}/{name}: {container['image']}"
            assert container["image"] == engine


def test_pods_run_unprivileged(k8s_objects: Objects) -> None:
    for kind in ("StatefulSet", "Job"):
        (obj,) = [o for (k, _), o in k8s_objects.items() if k == kind]
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "memory" in container["resources"]["limits"]


def test_the_guide_runs_unprivileged_behind_its_service(k8s_objects: Objects, compose: dict[str, Any]) -> None:
    deployment = k8s_objects[("Deployment", "shopguide-guide")]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["guide"] and container["image"] == compose["services"]["worker-1"]["image"]
    env = {e["name"]: e["value"] for e in container["env"] if not e["name"].endswith("_FILE")}  # Secret files
    settings = Settings.from_env({**config(k8s_objects), **env})
    assert {"name": "SHOPGUIDE_API_TOKENS_FILE", "value": "/etc/shopguide/secrets/api-tokens"} in container["env"]
    assert named_ports(container) == {"http": settings.guide_port} and settings.guide_bind == "0.0.0.0"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(settings.guide_port)
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert "memory" in container["resources"]["limits"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/livez", "port": "http"}
    monitor = k8s_objects[("PodMonitor", "shopguide-guide")]
    assert selects(monitor["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["http"]
    service = k8s_objects[("Service", "shopguide-guide")]
    assert selects(service["spec"]["selector"], pod["metadata"]["labels"])
    assert not selects(service["spec"]["selector"], pod_labels(k8s_objects)), "the guide's service selects workers"
    assert service["spec"]["ports"][0]["targetPort"] == "http"
