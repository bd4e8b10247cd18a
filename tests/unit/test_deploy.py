"""``nextwatch deploy render`` and the images, checked offline: no cluster and no Docker engine here.

Core kinds are validated against Kubernetes' own schemas (kubernetes-validate, strict); the operators'
resources against the fields their operators require (``tests/fixtures/operators``, copied from the
operators' sources with versions); and everything against the project's own lists of topics, tables
and jobs.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kubernetes

from connectors.cassandra_store import CQL_DIR
from connectors.config import KafkaConfig
from connectors.errors import ConfigError
from connectors.topics import TOPICS
from infra.cli import main
from infra.deploy import render as deploy
from jobs.flink import JOB_MODULES

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "operators"
EXAMPLE = ROOT / "infra" / "deploy" / "example.toml"
KUBERNETES_VERSIONS = ("1.30.0", "1.33.0")
CORE_GROUPS = ("v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1")


def example() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text())


def documents(manifests: dict[str, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [doc for docs in manifests.values() for doc in docs if doc["kind"] == kind]


def field(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value[part]
    return value


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """The example deployment, written by the command and read back from its files."""
    out = tmp_path_factory.mktemp("manifests")
    assert main(["deploy", "render", "--config", str(EXAMPLE), "--out", str(out)]) == 0
    return {path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
            for path in sorted(out.glob("*.yaml"))}


def test_every_core_manifest_validates_against_kubernetes_schemas(rendered: dict[str, Any]) -> None:
    core = [doc for docs in rendered.values() for doc in docs if doc["apiVersion"] in CORE_GROUPS]
    kinds = {doc["kind"] for doc in core}
    assert kinds == {"Namespace", "ConfigMap", "ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim",
                     "Job", "Deployment", "Service"}
    # each FlinkDeployment's pod template is a Pod the operator merges its own into: validated as one
    pods = [doc["spec"]["podTemplate"] for doc in documents(rendered, "FlinkDeployment")]
    for version in KUBERNETES_VERSIONS:
        for doc in [*core, *pods]:
            kubernetes.validate(doc, version, strict=True)  # raises ValidationError naming the field


def test_a_broken_manifest_is_refused_by_the_validator(rendered: dict[str, Any]) -> None:
    """The validation above can fail: a misspelt field of a rendered Deployment is caught."""
    serve = documents(rendered, "Deployment")[0]
    broken = yaml.safe_load(yaml.safe_dump(serve))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes.ValidationError):
        kubernetes.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_flink_deployments_carry_what_the_operator_requires(rendered: dict[str, Any]) -> None:
    operator = tomllib.loads((FIXTURES / "flink-kubernetes-operator.toml").read_text())
    deployments = documents(rendered, "FlinkDeployment")
    assert {d["metadata"]["name"] for d in deployments} == {f"nextwatch-{job}" for job in JOB_MODULES}
    for doc in deployments:
        name, spec = doc["metadata"]["name"], doc["spec"]
        assert doc["apiVersion"] == operator["api_version"] and doc["kind"] == operator["kind"]
        assert re.match(operator["name_pattern"], name), name
        for path in operator["required"]:
            assert field(doc, path) not in (None, ""), (name, path)
        assert spec["flinkVersion"] in operator["flink_versions_for_flink_2_0"]
        assert re.match(operator["flink_version_pattern"], spec["flinkVersion"])
        assert spec["job"]["upgradeMode"] == "savepoint" and spec["job"]["upgradeMode"] in operator["upgrade_modes"]
        assert spec["job"]["state"] == operator["initial_job_state"] and spec["job"]["parallelism"] >= 1
        configuration = spec["flinkConfiguration"]
        assert all(isinstance(v, str) for v in configuration.values()), "the CRD types these as strings"
        assert not set(configuration) & set(operator["forbidden_configuration"])
        assert any(configuration.get(k) for k in operator["checkpoint_directory_keys"])
        assert any(configuration.get(k) for k in operator["savepoint_directory_keys"])
        for part in ("jobManager", "taskManager"):
            assert re.match(operator["memory_pattern"], spec[part]["resource"]["memory"], re.IGNORECASE)
        assert spec["jobManager"]["replicas"] == 1 or configuration.get(operator["ha_type_key"])
        containers = spec["podTemplate"]["spec"]["containers"]
        assert [c["name"] for c in containers] == [operator["main_container"]]


def test_each_job_runs_its_own_module_and_checkpoints_where_the_operator_looks(rendered: dict[str, Any]) -> None:
    from pyflink.version import __version__

    pyflink_opt = Path(__import__("pyflink").__file__).parent / "opt"
    for doc in documents(rendered, "FlinkDeployment"):
        job = doc["metadata"]["name"].removeprefix("nextwatch-")
        spec = doc["spec"]
        args = spec["job"]["args"]
        assert args[0] == "-py" and args[1] == f"/opt/nextwatch/jobs/flink/{job}/job.py"
        assert (ROOT / args[1].removeprefix("/opt/nextwatch/")).is_file()
        # the jar the operator submits is the PythonDriver of the Flink the jobs are built with
        assert spec["job"]["jarURI"].endswith(f"/opt/flink-python-{__version__}.jar")
        assert (pyflink_opt / f"flink-python-{__version__}.jar").is_file()
        env = {e["name"]: e.get("value") for e in spec["podTemplate"]["spec"]["containers"][0]["env"]}
        checkpoints = spec["flinkConfiguration"]["execution.checkpointing.dir"]
        # the job's own [flink] checkpoint_dir names the folder the operator restores from
        assert checkpoints == f"file://{env['NEXTWATCH_FLINK_CHECKPOINT_DIR']}" == f"file:///flink-state/{job}/checkpoints"
        assert spec["flinkConfiguration"]["execution.checkpointing.savepoint-dir"].startswith(f"file:///flink-state/{job}/")
    rows = next(d for d in documents(rendered, "FlinkDeployment") if d["metadata"]["name"] == "nextwatch-rows")
    features = next(d for d in documents(rendered, "FlinkDeployment") if d["metadata"]["name"] == "nextwatch-features")
    # per-job overrides from [deploy] options, the rest from the deployment-wide values
    assert (rows["spec"]["job"]["parallelism"], rows["spec"]["taskManager"]["resource"]["memory"]) == (4, "6144m")
    assert (features["spec"]["job"]["parallelism"], features["spec"]["taskManager"]["resource"]["memory"]) == (
        2, "4096m")


def test_topics_are_the_projects_topics_as_strimzi_requires_them(rendered: dict[str, Any]) -> None:
    strimzi = tomllib.loads((FIXTURES / "strimzi-kafkatopic.toml").read_text())
    kafka = KafkaConfig.load(env={"NEXTWATCH_KAFKA_SASL_PASSWORD": "x"}, file_data=example())
    topics = documents(rendered, "KafkaTopic")
    assert {t["spec"]["topicName"]: t["spec"]["partitions"] for t in topics} == {
        spec.full_name(kafka): spec.partition_count(kafka) for spec in TOPICS}
    for doc in topics:
        spec, declared = doc["spec"], next(t for t in TOPICS if t.full_name(kafka) == doc["spec"]["topicName"])
        assert doc["apiVersion"] == strimzi["api_version"] and doc["kind"] == strimzi["kind"]
        assert re.match(strimzi["name_pattern"], doc["metadata"]["name"])
        assert all(doc["metadata"]["labels"].get(label) == "nextwatch" for label in strimzi["required_labels"])
        assert set(spec) <= set(strimzi["spec_fields"])
        assert spec["partitions"] >= strimzi["partitions_minimum"]
        assert strimzi["replicas_minimum"] <= spec["replicas"] == 3 <= strimzi["replicas_maximum"]
        assert {k: v for k, v in spec["config"].items() if k != "min.insync.replicas"} == declared.config
    compacted = {t["spec"]["topicName"] for t in topics if t["spec"]["config"].get("cleanup.policy") == "compact"}
    assert "nextwatch.experiments" in compacted and "nextwatch.play" not in compacted


def test_the_schema_job_applies_exactly_the_projects_cql(rendered: dict[str, Any]) -> None:
    cql = next(d for d in documents(rendered, "ConfigMap") if d["metadata"]["name"] == "nextwatch-cql")
    assert cql["data"] == {p.name: p.read_text() for p in sorted(CQL_DIR.glob("*.cql"))}
    tables = {t for text in cql["data"].values()
              for t in re.findall(r"CREATE TABLE IF NOT EXISTS \{keyspace\}\.(\w+)", text)}
    topology = (ROOT / "infra" / "topology.md").read_text()
    assert tables and all(f"`{table}`" in topology for table in tables)
    job = documents(rendered, "Job")[0]
    container = job["spec"]["template"]["spec"]["containers"][0]
    mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert container["args"] == ["schema", "apply", "--cql-dir", mounted["cql"]]
    # the command the Job runs exists, and takes that argument
    from infra.cli import build_parser

    assert build_parser().parse_args(container["args"]).cql_dir == mounted["cql"]


def test_the_job_is_renamed_when_the_cql_changes(tmp_path: Path) -> None:
    for path in CQL_DIR.glob("*.cql"):
        (tmp_path / path.name).write_text(path.read_text())
    before = deploy.render(example(), cql_dir=tmp_path)["06-schema-job.yaml"][0]["metadata"]["name"]
    (tmp_path / "999_more.cql").write_text("CREATE TABLE IF NOT EXISTS {keyspace}.more (k text PRIMARY KEY);\n")
    after = deploy.render(example(), cql_dir=tmp_path)["06-schema-job.yaml"][0]["metadata"]["name"]
    assert before != after and before.startswith("nextwatch-schema-")


def test_the_pods_read_the_settings_and_credentials_from_the_cluster(rendered: dict[str, Any]) -> None:
    config = next(d for d in documents(rendered, "ConfigMap") if d["metadata"]["name"] == "nextwatch-config")
    settings = tomllib.loads(config["data"]["config.toml"])
    assert settings["stack"] == {"mode": "external"} and "deploy" not in settings
    assert settings["serve"]["host"] == "0.0.0.0" and settings["flink"]["parallelism"] == 0
    assert settings["kafka"]["bootstrap_servers"] == example()["kafka"]["bootstrap_servers"]
    pods = [*(d["spec"]["podTemplate"]["spec"] for d in documents(rendered, "FlinkDeployment")),
            *(d["spec"]["template"]["spec"] for d in documents(rendered, "Deployment")),
            *(d["spec"]["template"]["spec"] for d in documents(rendered, "Job"))]
    assert len(pods) == len(JOB_MODULES) + 2
    for pod in pods:
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["NEXTWATCH_CONFIG"]["value"] == "/etc/nextwatch/config/config.toml"
        for key, variable in deploy.SECRET_KEYS.items():
            assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": "nextwatch-credentials", "key": key,
                                                                  "optional": True}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["config"]["configMap"]["name"] == "nextwatch-config"
        assert volumes["tls"]["secret"] == {"secretName": "nextwatch-tls", "optional": True}
        assert pod["securityContext"]["runAsNonRoot"] is True


def test_no_secret_reaches_a_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # credentials in the environment of whoever renders are not copied anywhere
    monkeypatch.setenv("NEXTWATCH_KAFKA_SASL_PASSWORD", "kafka-hunter2")
    monkeypatch.setenv("NEXTWATCH_CASSANDRA_PASSWORD", "cassandra-hunter2")
    assert main(["deploy", "render", "--config", str(EXAMPLE), "--out", str(tmp_path / "out")]) == 0
    text = "".join(p.read_text() for p in (tmp_path / "out").glob("*.yaml"))
    assert "hunter2" not in text and "Secret" not in re.findall(r"kind: (\w+)", text)
    # and a config file that holds one is refused, naming the key
    for section, key, value in (("kafka", "sasl_password", "p"), ("cassandra", "password", "p"),
                                ("kafka", "options", {"sasl.jaas.config": "x"})):
        data = example()
        data[section][key] = value
        with pytest.raises(ConfigError, match=rf"\[{section}\] (sasl_password|password|sasl.jaas.config) is set"):
            deploy.render(data)


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("kafka", "bootstrap_servers", "127.0.0.1:9092", "loopback address"),
    ("cassandra", "contact_points", ["localhost"], "loopback address"),
    ("deploy", "namespace", "Next_Watch", "not a Kubernetes name"),
    ("deploy", "taskmanager_memory", "4 potatoes", "not a Flink memory size"),
    ("deploy", "options", {"ranker.parallelism": "2"}, "not <job>.<setting>"),
    ("deploy", "options", {"rows.parallelism": "0"}, "must be above 0"),
    ("deploy", "min_insync_replicas", 4, "exceeds \\[kafka\\] replication_factor"),
    ("kafka", "topic_prefix", "A.", None),  # valid: the resource name is lower-cased, the topic keeps its name
    ("rows", "diversity", 1.5, r"\[rows\] diversity and popularity_penalty must be in \[0, 1\]"),
    ("privacy", "key", "a-member-id-key-of-thirty-two-bytes", r"\[privacy\] key is set in the config file"),
    ("learning", "no_such_setting", 1, r"\[learning\] unknown keys \['no_such_setting'\]"),
])
def test_bad_deployment_settings_are_refused_by_name(section: str, key: str, value: Any, message: str | None) -> None:
    data = example()
    data.setdefault(section, {})[key] = value
    if message is None:
        topics = deploy.render(data)["05-topics.yaml"]
        assert {t["spec"]["topicName"] for t in topics} == {f"A.{t.name}" for t in TOPICS}
        assert all(t["metadata"]["name"].startswith("a.") for t in topics)
        return
    with pytest.raises(ConfigError, match=message):
        deploy.render(data)


def test_the_rendered_config_round_trips() -> None:
    settings = deploy.cluster_settings(example(), "example")
    assert tomllib.loads(deploy.toml_text(settings)) == settings


def test_the_image_is_built_from_the_local_stacks_pins() -> None:
    dockerfile = (ROOT / "infra" / "deploy" / "Dockerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    python = re.search(r"ARG PYTHON_IMAGE=python:(\d+\.\d+)", dockerfile)
    assert python, "the Python image is an ARG with a default"
    minor = int(python.group(1).split(".")[1])
    assert pyproject["project"]["requires-python"] == f">=3.{minor},<3.{minor + 1}"
    # the dependencies (apache-flink 2.0.2 among them) come from pyproject.toml, not a second list
    assert "pip install --no-cache-dir -e ." in dockerfile and "apache-flink==" not in dockerfile
    # Java 17 as on the local stack; the connector jars by the same code as `nextwatch stack up`
    assert "openjdk-17-jdk-headless" in dockerfile and "openjdk-17-jre-headless" in dockerfile
    assert "FlinkRuntime().install()" in dockerfile
    assert {"AS build", "AS serve", "AS jobs"} <= set(re.findall(r"AS \w+", dockerfile))
    # FLINK_HOME where the operator's pods look for it, and the entry point it calls
    assert "FLINK_HOME=/opt/flink" in dockerfile and "/docker-entrypoint.sh" in dockerfile
    entrypoint = ROOT / "infra" / "deploy" / "docker-entrypoint.sh"
    assert entrypoint.stat().st_mode & 0o111 and 'exec "$@"' in entrypoint.read_text()
    # no credential is baked in
    assert not re.search(r"(?i)(password|secret|token)\s*=", dockerfile)
    # what the manifests expect of the image
    assert f"NEXTWATCH_CONFIG={deploy.CONFIG_DIR}/config.toml" in dockerfile
    assert f"WORKDIR {deploy.PROJECT_DIR}" in dockerfile and f"--uid {deploy.RUN_AS}" in dockerfile
