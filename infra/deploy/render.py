"""``nextwatch deploy render``: the Kubernetes manifests of a deployment, from its config file.

Everything that exists elsewhere in the project is read from there, never listed twice: the topics
from ``connectors/topics.py`` (as Strimzi ``KafkaTopic`` resources), the schema from ``infra/cql/``
(a ConfigMap, applied by a Kubernetes Job), the jobs from ``jobs.flink.JOB_MODULES`` (one
``FlinkDeployment`` of the Flink Kubernetes Operator each), and the components' settings from the
config file's own sections (a ConfigMap). Credentials are never written: the pods read them from
Secrets that the operator of the deployment creates (``kubectl create secret``), so a config file
holding a password is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.cassandra_store import CQL_DIR
from connectors.config import SECRET_WORDS, CassandraConfig, KafkaConfig, load_section
from connectors.errors import ConfigError
from connectors.topics import TOPICS
from jobs.flink import JOB_MODULES, job_file

APP = "nextwatch"
CONFIG_DIR = "/etc/nextwatch/config"  # the ConfigMap of settings: NEXTWATCH_CONFIG points into it
CQL_MOUNT = "/etc/nextwatch/cql"
TLS_DIR = "/etc/nextwatch/tls"  # the optional Secret of CA certificates: ssl_ca_location / ssl_ca_file point here
STATE_DIR = "/flink-state"  # the ReadWriteMany claim every job keeps its checkpoints and savepoints on
PROJECT_DIR = "/opt/nextwatch"  # where the images hold the project (infra/deploy/Dockerfile)
RUN_AS = 9999  # the images' user
FLINK_VERSION = "v2_0"  # the operator's name for Flink 2.0 (apache-flink 2.0.x)
PROMETHEUS_PORT = 9249
# Secret key -> the environment variable the config loader reads it from
SECRET_KEYS = {"kafka-sasl-password": "NEXTWATCH_KAFKA_SASL_PASSWORD",
               "cassandra-password": "NEXTWATCH_CASSANDRA_PASSWORD"}
PER_JOB = ("parallelism", "task_slots", "taskmanager_memory", "taskmanager_cpu")  # "<job>.<name>" in options
LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|::1|\[::1\])$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
FLINK_MEMORY = re.compile(r"^\d+\s*(b|k|kb|m|mb|g|gb|t|tb)$", re.IGNORECASE)  # Flink's MemorySize units
QUANTITY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")  # a Kubernetes quantity


@dataclass(frozen=True)
class DeployConfig:
    """``[deploy]``: where and how big; the components' own sections say how they behave.

    ``options`` holds per-job overrides of :data:`PER_JOB`, as ``"rows.parallelism" = "4"``.
    """

    namespace: str = APP
    jobs_image: str = "nextwatch-jobs:0.1.0"
    serve_image: str = "nextwatch-serve:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    service_account: str = "flink"  # what the JobManager creates TaskManager pods as
    kafka_cluster: str = APP  # the Strimzi Kafka resource the topics belong to (replicas: [kafka] replication_factor)
    min_insync_replicas: int = 2
    state_claim: str = "nextwatch-flink-state"
    state_size: str = "50Gi"
    state_storage_class: str = ""  # one that offers ReadWriteMany; "" for the cluster's default
    parallelism: int = 2
    task_slots: int = 2
    jobmanager_memory: str = "1600m"
    jobmanager_cpu: float = 0.5
    taskmanager_memory: str = "4096m"
    taskmanager_cpu: float = 2.0
    serve_replicas: int = 2
    serve_memory: str = "1Gi"
    serve_cpu: float = 1.0
    credentials_secret: str = "nextwatch-credentials"
    tls_secret: str = "nextwatch-tls"
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, file_data: Mapping[str, Any] | None = None) -> DeployConfig:
        config = load_section(cls, "deploy", env, file_data)
        config.check()
        return config

    def check(self) -> None:
        for name in ("namespace", "service_account", "kafka_cluster", "state_claim", "credentials_secret",
                     "tls_secret"):
            if not DNS_LABEL.match(getattr(self, name)):
                raise ConfigError(f"[deploy] {name} = {getattr(self, name)!r} is not a Kubernetes name (lower-case "
                                  "letters, digits and '-', at most 63)")
        for name in ("jobs_image", "serve_image"):
            if not getattr(self, name) or any(c.isspace() for c in getattr(self, name)):
                raise ConfigError(f"[deploy] {name} must be an image reference, not {getattr(self, name)!r}")
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise ConfigError(f"[deploy] image_pull_policy must be Always, IfNotPresent or Never, "
                              f"not {self.image_pull_policy!r}")
        for name in ("min_insync_replicas", "serve_replicas"):
            if getattr(self, name) < 1:
                raise ConfigError(f"[deploy] {name} must be at least 1")
        for name in ("state_size", "serve_memory"):
            if not QUANTITY.match(getattr(self, name)):
                raise ConfigError(f"[deploy] {name} = {getattr(self, name)!r} is not a Kubernetes quantity "
                                  "(e.g. 50Gi)")
        for key, value in self.options.items():
            job, _, name = key.partition(".")
            if job not in JOB_MODULES or name not in PER_JOB:
                raise ConfigError(f"[deploy] options key {key!r} is not <job>.<setting>; jobs: "
                                  f"{', '.join(sorted(JOB_MODULES))}; settings: {', '.join(PER_JOB)}")
            self._check_job_value(key, name, value)
        for name in PER_JOB:
            self._check_job_value(name, name, getattr(self, name))
        self._check_job_value("jobmanager_memory", "taskmanager_memory", self.jobmanager_memory)
        self._check_job_value("jobmanager_cpu", "taskmanager_cpu", self.jobmanager_cpu)

    @staticmethod
    def _check_job_value(key: str, name: str, value: Any) -> None:
        if name.endswith("_memory"):
            if not FLINK_MEMORY.match(str(value)):
                raise ConfigError(f"[deploy] {key} = {value!r} is not a Flink memory size (e.g. 4096m, 4g)")
            return
        try:
            number = float(value) if name.endswith("_cpu") else int(value)
        except ValueError:
            raise ConfigError(f"[deploy] {key} = {value!r} is not a number") from None
        if number <= 0:
            raise ConfigError(f"[deploy] {key} must be above 0, not {value!r}")

    def job_value(self, job: str, name: str) -> Any:
        """``name`` of ``job``: its override in ``options``, or the deployment-wide value."""
        default = getattr(self, name)
        raw = self.options.get(f"{job}.{name}")
        return default if raw is None else type(default)(raw)


# -- the settings every pod reads -------------------------------------------------------------------


def cluster_settings(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The config file's component sections as the pods read them: no ``[deploy]``, clients that reach
    external services (``[stack] mode = "external"``), each job's checkpoints where its deployment keeps
    them, the API listening on every address. Refuses a secret or a loopback address by name."""
    sections = {name: dict(values) for name, values in data.items() if name not in ("deploy", "stack")}
    for name, values in sections.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: {name} must be a [section]")
        for key, value in [*values.items(), *dict(values.get("options") or {}).items()]:
            if value and any(word in str(key).lower() for word in SECRET_WORDS):
                raise ConfigError(
                    f"{source}: [{name}] {key} is set. The rendered config is a ConfigMap, readable by anyone "
                    f"who can read the namespace: keep credentials in the Secret of [deploy] credentials_secret "
                    f"(keys {', '.join(SECRET_KEYS)}) and leave them out of this file")
    # load through the components' own loaders: a bad value is refused here, by the same words as at run time
    kafka, cassandra = clients(sections)
    check_components(sections)
    hosts = [("[kafka] bootstrap_servers", h.rsplit(":", 1)[0]) for h in kafka.bootstrap_servers.split(",")]
    hosts += [("[cassandra] contact_points", h) for h in cassandra.contact_points]
    for what, host in hosts:
        if LOOPBACK.match(host.strip()):
            raise ConfigError(f"{source}: {what} names {host}, a loopback address that no pod can reach; give "
                              "the cluster's addresses in the file passed with --config")
    flink = {k: v for k, v in sections.get("flink", {}).items() if k not in ("checkpoint_dir", "restore_from")}
    sections["flink"] = {**flink, "parallelism": 0}  # each deployment's parallelism, given by the operator
    sections["serve"] = {**sections.get("serve", {}), "host": "0.0.0.0"}
    sections["stack"] = {"mode": "external"}
    return sections


def clients(sections: Mapping[str, Any]) -> tuple[KafkaConfig, CassandraConfig]:
    """The pods' Kafka and Cassandra settings; the passwords they will read from the Secret stand in as
    placeholders, so settings that need one load."""
    placeholders = {}
    if sections.get("kafka", {}).get("sasl_username"):
        placeholders["NEXTWATCH_KAFKA_SASL_PASSWORD"] = "from-the-secret"
    if sections.get("cassandra", {}).get("username"):
        placeholders["NEXTWATCH_CASSANDRA_PASSWORD"] = "from-the-secret"
    return (KafkaConfig.load(env=placeholders, file_data=sections),
            CassandraConfig.load(env=placeholders, file_data=sections))


def check_components(sections: Mapping[str, Any]) -> None:
    """Load every component's section as the pods will (each job's settings, Flink's, the API's), so a bad
    value is refused now, in the component's own words, rather than by a pod that will not start."""
    from connectors.privacy import PrivacyConfig
    from infra.serve.config import ServeConfig
    from jobs.flink import load_job
    from jobs.runtime import FlinkConfig

    FlinkConfig.load(env={}, file_data=sections)
    ServeConfig.load(env={}, file_data=sections)
    PrivacyConfig.load(env={}, file_data=sections)  # refuses a member-id key in the file
    for job in sorted(JOB_MODULES):
        load_section(load_job(job).settings, job, {}, sections)


def toml_text(data: Mapping[str, Mapping[str, Any]]) -> str:
    """``data`` (sections of scalars, lists and flat tables) as TOML.

    >>> print(toml_text({"kafka": {"bootstrap_servers": "k:9093", "options": {"linger.ms": "5"}}}))
    [kafka]
    bootstrap_servers = "k:9093"
    options = { "linger.ms" = "5" }
    <BLANKLINE>
    """
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(item) for item in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(str(k))} = {value(item)}" for k, item in v.items()) + " }"
        raise ConfigError(f"cannot write {v!r} to TOML")

    lines: list[str] = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value(v)}" for key, v in values.items()]
        lines.append("")
    return "\n".join(lines)


# -- manifests ------------------------------------------------------------------------------------


def _meta(name: str, deploy: DeployConfig, component: str, **extra: Any) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component,
              "app.kubernetes.io/managed-by": "nextwatch-deploy-render"}
    return {"name": name, "namespace": deploy.namespace, "labels": {**labels, **extra.pop("labels", {})}, **extra}


def _secret_env(deploy: DeployConfig) -> list[dict[str, Any]]:
    # optional: a deployment without SASL or Cassandra authentication creates no such keys
    return [{"name": variable, "valueFrom": {"secretKeyRef": {"name": deploy.credentials_secret, "key": key,
                                                              "optional": True}}}
            for key, variable in SECRET_KEYS.items()]


def _volumes(deploy: DeployConfig, *extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "config", "configMap": {"name": f"{APP}-config"}},
            {"name": "tls", "secret": {"secretName": deploy.tls_secret, "optional": True}}, *extra]


MOUNTS = [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
          {"name": "tls", "mountPath": TLS_DIR, "readOnly": True}]


def _security(pod: bool) -> dict[str, Any]:
    if pod:
        return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS}
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def namespace(deploy: DeployConfig) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": deploy.namespace, "labels": {"app.kubernetes.io/name": APP}}}]


def config_maps(deploy: DeployConfig, settings: Mapping[str, Mapping[str, Any]],
                cql_dir: Path = CQL_DIR) -> dict[str, list[dict[str, Any]]]:
    cql = {path.name: path.read_text() for path in sorted(cql_dir.glob("*.cql"))}
    return {
        "config.yaml": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(f"{APP}-config", deploy, "config"),
                         "data": {"config.toml": toml_text(settings)}}],
        "cql.yaml": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(f"{APP}-cql", deploy, "schema"),
                      "data": cql}],
    }


def rbac(deploy: DeployConfig) -> list[dict[str, Any]]:
    """What a job's JobManager needs to start and replace its TaskManagers (the operator's own job role)."""
    name = deploy.service_account
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, deploy, "flink")},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(name, deploy, "flink"),
         "rules": [{"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["*"]},
                   {"apiGroups": ["apps"], "resources": ["deployments", "deployments/finalizers"], "verbs": ["*"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": _meta(f"{name}-role-binding", deploy, "flink"),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": deploy.namespace}]},
    ]


def state_claim(deploy: DeployConfig) -> list[dict[str, Any]]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": deploy.state_size}}}
    if deploy.state_storage_class:
        spec["storageClassName"] = deploy.state_storage_class
    return [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": _meta(deploy.state_claim, deploy, "flink-state"), "spec": spec}]


def topic_resource_name(full_name: str) -> str:
    """A Kubernetes name for a topic (``spec.topicName`` keeps the topic's own name).

    >>> topic_resource_name("nextwatch.dead-letter"), topic_resource_name("Prod_Events.play")
    ('nextwatch.dead-letter', 'prod-events.play')
    """
    name = re.sub(r"[^a-z0-9.-]", "-", full_name.lower()).strip("-.")
    return name[:253]


def topics(deploy: DeployConfig, kafka: KafkaConfig) -> list[dict[str, Any]]:
    if deploy.min_insync_replicas > kafka.replication_factor:
        raise ConfigError(f"[deploy] min_insync_replicas ({deploy.min_insync_replicas}) exceeds [kafka] "
                          f"replication_factor ({kafka.replication_factor}): no write could be acknowledged")
    documents, names = [], set()
    for spec in TOPICS:
        full_name = spec.full_name(kafka)
        name = topic_resource_name(full_name)
        if name in names:
            raise ConfigError(f"topics {full_name!r} and another map to one Kubernetes name {name!r}; "
                              "choose a [kafka] topic_prefix of lower-case letters, digits, '.' and '-'")
        names.add(name)
        config: dict[str, Any] = {**spec.config, "min.insync.replicas": str(deploy.min_insync_replicas)}
        documents.append({
            "apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic",
            "metadata": _meta(name, deploy, "topics", labels={"strimzi.io/cluster": deploy.kafka_cluster}),
            "spec": {"topicName": full_name, "partitions": spec.partition_count(kafka),
                     "replicas": kafka.replication_factor, "config": config}})
    return documents


def schema_job(deploy: DeployConfig, cql_dir: Path = CQL_DIR) -> list[dict[str, Any]]:
    """A Job that applies ``infra/cql`` (each file once, recorded in ``schema_migrations``); named by the
    files' hash, since a Job cannot be changed: new CQL, a new Job."""
    digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in sorted(cql_dir.glob("*.cql"))))
    container = {"name": "schema", "image": deploy.serve_image, "imagePullPolicy": deploy.image_pull_policy,
                 "args": ["schema", "apply", "--cql-dir", CQL_MOUNT],
                 "env": [{"name": "NEXTWATCH_CONFIG", "value": f"{CONFIG_DIR}/config.toml"}, *_secret_env(deploy)],
                 "volumeMounts": [*MOUNTS, {"name": "cql", "mountPath": CQL_MOUNT, "readOnly": True}],
                 "securityContext": _security(pod=False)}
    return [{"apiVersion": "batch/v1", "kind": "Job",
             "metadata": _meta(f"{APP}-schema-{digest.hexdigest()[:10]}", deploy, "schema"),
             "spec": {"backoffLimit": 6, "template": {
                 "metadata": {"labels": {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "schema"}},
                 "spec": {"restartPolicy": "OnFailure", "securityContext": _security(pod=True),
                          "containers": [container],
                          "volumes": _volumes(deploy, {"name": "cql", "configMap": {"name": f"{APP}-cql"}})}}}}]


def flink_python_jar() -> str:
    from pyflink.version import __version__

    return f"local:///opt/flink/opt/flink-python-{__version__}.jar"


def flink_deployment(job: str, deploy: DeployConfig) -> list[dict[str, Any]]:
    """The job as a FlinkDeployment: application mode, upgraded through savepoints, its checkpoints,
    savepoints and HA records on the shared claim under its own folder."""
    state = f"{STATE_DIR}/{job}"
    checkpoints, savepoints = f"file://{state}/checkpoints", f"file://{state}/savepoints"
    configuration = {
        "taskmanager.numberOfTaskSlots": str(deploy.job_value(job, "task_slots")),
        # both names: operators built against Flink 1.x read the older ones
        "execution.checkpointing.dir": checkpoints, "state.checkpoints.dir": checkpoints,
        "execution.checkpointing.savepoint-dir": savepoints, "state.savepoints.dir": savepoints,
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "high-availability.type": "kubernetes", "high-availability.storageDir": f"file://{state}/ha",
        "python.executable": "/opt/venv/bin/python", "python.client.executable": "/opt/venv/bin/python",
        "metrics.reporter.prom.factory.class": "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
        "metrics.reporter.prom.port": str(PROMETHEUS_PORT),
    }
    container = {
        "name": "flink-main-container",  # the name the operator merges its container into
        "env": [{"name": "NEXTWATCH_CONFIG", "value": f"{CONFIG_DIR}/config.toml"},
                # the job's own setting says the same as the operator's, so restores and checks agree
                {"name": "NEXTWATCH_FLINK_CHECKPOINT_DIR", "value": f"{state}/checkpoints"},
                *_secret_env(deploy)],
        "volumeMounts": [*MOUNTS, {"name": "flink-state", "mountPath": STATE_DIR}],
        "ports": [{"name": "metrics", "containerPort": PROMETHEUS_PORT}],
        "securityContext": _security(pod=False),
    }
    pod_template = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod-template"},
                    "spec": {"securityContext": _security(pod=True), "containers": [container],
                             "volumes": _volumes(deploy, {"name": "flink-state", "persistentVolumeClaim": {
                                 "claimName": deploy.state_claim}})}}
    return [{
        "apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
        "metadata": _meta(f"{APP}-{job}", deploy, job),
        "spec": {
            "image": deploy.jobs_image, "imagePullPolicy": deploy.image_pull_policy,
            "flinkVersion": FLINK_VERSION, "serviceAccount": deploy.service_account,
            "flinkConfiguration": configuration,
            "jobManager": {"replicas": 1, "resource": {"memory": deploy.jobmanager_memory,
                                                       "cpu": float(deploy.jobmanager_cpu)}},
            "taskManager": {"resource": {"memory": str(deploy.job_value(job, "taskmanager_memory")),
                                         "cpu": float(deploy.job_value(job, "taskmanager_cpu"))}},
            "podTemplate": pod_template,
            "job": {"jarURI": flink_python_jar(), "entryClass": "org.apache.flink.client.python.PythonDriver",
                    "args": ["-py", f"{PROJECT_DIR}/jobs/flink/{job}/job.py"],
                    "parallelism": int(deploy.job_value(job, "parallelism")),
                    "upgradeMode": "savepoint", "state": "running"},
        }}]


def serve(deploy: DeployConfig, port: int) -> list[dict[str, Any]]:
    """``nextwatch serve`` behind a Service. Ready when ``/healthz`` says Cassandra and the catalog answer;
    alive while it accepts connections, so a Cassandra outage takes pods out of the Service (503 with
    Retry-After meanwhile) rather than restarting them."""
    labels = {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "serve"}
    container = {
        "name": "serve", "image": deploy.serve_image, "imagePullPolicy": deploy.image_pull_policy,
        "args": ["serve", "--host", "0.0.0.0", "--port", str(port)],
        "env": [{"name": "NEXTWATCH_CONFIG", "value": f"{CONFIG_DIR}/config.toml"}, *_secret_env(deploy)],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5,
                           "failureThreshold": 2},
        "livenessProbe": {"tcpSocket": {"port": "http"}, "initialDelaySeconds": 30, "periodSeconds": 10},
        "resources": {"requests": {"cpu": str(deploy.serve_cpu), "memory": deploy.serve_memory},
                      "limits": {"memory": deploy.serve_memory}},
        "volumeMounts": MOUNTS, "securityContext": _security(pod=False),
    }
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(f"{APP}-serve", deploy, "serve"),
         "spec": {"replicas": deploy.serve_replicas, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"securityContext": _security(pod=True), "containers": [container],
                                        "volumes": _volumes(deploy)}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(f"{APP}-serve", deploy, "serve"),
         "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
    ]


def render(data: Mapping[str, Any], source: str = "the config file",
           cql_dir: Path = CQL_DIR) -> dict[str, list[dict[str, Any]]]:
    """Every manifest of the deployment that ``data`` (a parsed config file) describes, by file name."""
    from infra.serve.config import ServeConfig

    deploy = DeployConfig.load(env={}, file_data=data)
    settings = cluster_settings(data, source)
    kafka, _ = clients(settings)
    port = ServeConfig.load(env={}, file_data=settings).port
    missing = [job for job in JOB_MODULES if not job_file(job).is_file()]
    if missing:
        raise ConfigError(f"jobs {missing} have no job.py")
    maps = config_maps(deploy, settings, cql_dir)
    # numbered: `kubectl apply -f DIR` goes in name order, and the namespace comes first
    manifests = {"00-namespace.yaml": namespace(deploy), "01-config.yaml": maps["config.yaml"],
                 "02-cql.yaml": maps["cql.yaml"], "03-rbac.yaml": rbac(deploy),
                 "04-flink-state.yaml": state_claim(deploy), "05-topics.yaml": topics(deploy, kafka),
                 "06-schema-job.yaml": schema_job(deploy, cql_dir)}
    for job in sorted(JOB_MODULES):
        manifests[f"10-flink-{job}.yaml"] = flink_deployment(job, deploy)
    manifests["20-serve.yaml"] = serve(deploy, port)
    return manifests


def _yaml_dumper() -> Any:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: Any, value: str) -> Any:  # files (config.toml, the CQL) as readable blocks
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    return Dumper


def write(manifests: Mapping[str, list[dict[str, Any]]], out: Path) -> list[Path]:
    """The manifests as YAML files in ``out`` (created); the paths written."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    written, dumper = [], _yaml_dumper()
    for name, documents in manifests.items():
        path = out / name
        path.write_text("# rendered by `nextwatch deploy render`; edit the config file and render again\n"
                        + yaml.dump_all(documents, Dumper=dumper, sort_keys=False, default_flow_style=False))
        written.append(path)
    return written


def secret_command(deploy: DeployConfig) -> str:
    """The command that creates the credentials Secret (the values stay with whoever runs it)."""
    literals = " ".join(f"--from-literal={key}=..." for key in SECRET_KEYS)
    return f"kubectl -n {deploy.namespace} create secret generic {deploy.credentials_secret} {literals}"
