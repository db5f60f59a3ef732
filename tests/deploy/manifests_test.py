#!/usr/bin/env python3
"""The deployment files agree with what the binaries really read and serve.

Renders deploy/k8s with `kubectl kustomize` and reads docker-compose.yml (with its override)
through `docker-compose config`, then checks them against the settings each binary lists in
--help: every environment name is a setting of its service, every required setting is given,
ports and probes match the addresses the settings make the service listen on, the liveness
probe asks for the health service the code registers, secrets are files from the Secret, the
rules ConfigMap holds deploy/rules/katy.yaml, and Redis runs with deploy/redis.conf's settings.

usage: manifests_test.py BIN_DIR    (BIN_DIR holds katy-ingress, katy-responder, ...)
"""
import os
import re
import subprocess
import sys

import yaml  # python3-yaml, installed by scripts/test.sh

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARIES = ["katy-ingress", "katy-responder", "katy-sender", "katy-emulator"]
ENV_EXAMPLE = os.path.join(ROOT, "deploy", "katy.env.example")
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def run(args):
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        sys.exit(f"FAIL: {' '.join(args)}: {result.stderr}")
    return result.stdout


class Settings:
    """What one binary reads, from its --help: names, the secret ones, the required ones, and the
    _FILE forms it accepts."""

    def __init__(self, binary_path):
        self.names, self.secret, self.required, self.file_forms = set(), set(), set(), set()
        current = None
        for line in run([binary_path, "--help"]).splitlines():
            declared = re.match(r"^  (KATY_[A-Z0-9_]+), --", line)
            if declared:
                current = declared.group(1)
                self.names.add(current)
            elif current and line.startswith("      "):
                if "[secret;" in line:
                    self.secret.add(current)
                if "(required)" in line:
                    self.required.add(current)
                self.file_forms |= set(re.findall(r"\balso (KATY_[A-Z0-9_]+_FILE)\]", line))

    def reads(self, name):
        """True for a setting, or the _FILE form of a secret (or a URL with credentials)."""
        return name in self.names or name in self.file_forms


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def liveness_service_name():
    header = open(os.path.join(ROOT, "common", "grpc", "service_server.h")).read()
    return re.search(r'kLivenessService = "([^"]+)"', header).group(1)


def image_user():
    dockerfile = open(os.path.join(ROOT, "deploy", "Dockerfile")).read()
    return int(re.findall(r"^USER (\d+)", dockerfile, re.M)[-1])


def redis_conf_settings():
    settings = {}
    for line in open(os.path.join(ROOT, "deploy", "redis.conf")):
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            settings[key] = value.strip('"')
    return settings


def check_container(kind_name, container, pod, config, secret_keys, settings, liveness):
    binary = container["command"][0]
    env = {item["name"]: item["value"] for item in container.get("env", [])}
    given = dict(config)
    given.update(env)
    for name in env:
        check(settings.reads(name), f"{kind_name}: {binary} does not read {name}")
    for name in settings.required:
        check(name in given or name + "_FILE" in given, f"{kind_name}: required {name} is not given")
    # Secrets: files from the Secret, never plain environment values.
    mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
    volumes = {volume["name"]: volume for volume in pod["spec"].get("volumes", [])}
    used_keys = {}
    for name, value in env.items():
        if name.endswith("_FILE"):
            folder, key = os.path.split(value)
            volume = volumes.get(mounts.get(folder, ""), {})
            check("secret" in volume, f"{kind_name}: {value} is not in a mounted Secret")
            check(key in secret_keys, f"{kind_name}: the Secret has no key {key} for {name}")
            used_keys.setdefault(mounts.get(folder, ""), set()).add(key)
    # Least privilege: each pod mounts only the Secret keys it reads, readable by its own group.
    for volume_name, volume in volumes.items():
        if "secret" not in volume:
            continue
        items = {item["key"]: item["path"] for item in volume["secret"].get("items", [])}
        check(items and all(key == path for key, path in items.items()),
              f"{kind_name}: Secret volume {volume_name} mounts every key (no items)")
        check(set(items) == used_keys.get(volume_name, set()),
              f"{kind_name}: Secret volume {volume_name} mounts {sorted(items)}, reads {sorted(used_keys.get(volume_name, []))}")
        check(volume["secret"].get("defaultMode") == 0o440, f"{kind_name}: Secret volume {volume_name} is not 0440")
    check(pod["spec"].get("automountServiceAccountToken") is False, f"{kind_name}: service account token mounted")
    for name in settings.secret:
        check(name not in given, f"{kind_name}: secret {name} is a plain value; use {name}_FILE")
    # Ports and probes follow the addresses the settings give.
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    grpc_port = port_of(given["KATY_GRPC_ADDR"])
    check(ports.get("grpc") == grpc_port, f"{kind_name}: grpc containerPort is not {grpc_port}")
    check(ports.get("admin") == port_of(given["KATY_ADMIN_ADDR"]), f"{kind_name}: admin port differs")
    if "KATY_HTTP_ADDR" in settings.names:
        check(ports.get("webhook") == port_of(given["KATY_HTTP_ADDR"]), f"{kind_name}: webhook port differs")
    for name in ("KATY_GRPC_ADDR", "KATY_ADMIN_ADDR", "KATY_HTTP_ADDR"):
        if name in given:
            check(given[name].startswith("0.0.0.0:"), f"{kind_name}: {name} listens on loopback only")
    ready, live = container["readinessProbe"].get("grpc", {}), container["livenessProbe"].get("grpc", {})
    check(ready.get("port") == grpc_port and not ready.get("service"), f"{kind_name}: readiness is not gRPC health")
    check(live.get("port") == grpc_port and live.get("service") == liveness,
          f"{kind_name}: liveness does not ask for {liveness}")
    annotations = pod.get("metadata", {}).get("annotations", {})
    check(annotations.get("prometheus.io/port") == str(ports.get("admin")), f"{kind_name}: scrape port differs")
    # Resources and a locked-down container.
    resources = container.get("resources", {})
    check("requests" in resources and "limits" in resources, f"{kind_name}: no resource requests and limits")
    security = container.get("securityContext", {})
    check(security.get("readOnlyRootFilesystem") is True, f"{kind_name}: root filesystem is writable")
    check(security.get("allowPrivilegeEscalation") is False, f"{kind_name}: privilege escalation allowed")
    return ports


def check_kubernetes(settings_of):
    rendered = list(yaml.safe_load_all(run(["kubectl", "kustomize", "deploy/k8s"])))
    by_kind = {}
    for document in rendered:
        by_kind.setdefault(document["kind"], []).append(document)
    configmaps = {cm["metadata"]["name"].rsplit("-", 1)[0]: cm for cm in by_kind["ConfigMap"]}
    config = configmaps["katy-config"]["data"]
    secret_keys = set(by_kind["Secret"][0].get("stringData", {})) | set(by_kind["Secret"][0].get("data", {}))
    liveness = liveness_service_name()
    read_somewhere = set()
    ports_of = {}
    for deployment in by_kind["Deployment"]:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]
        spec = pod["spec"]
        container = spec["containers"][0]
        settings = settings_of[container["command"][0]]
        read_somewhere |= {key for key in config if settings.reads(key)}
        ports_of[name] = check_container(f"Deployment {name}", container, pod, config, secret_keys, settings, liveness)
        drain = int(config["KATY_DRAIN_TIMEOUT_S"])
        check(spec.get("terminationGracePeriodSeconds", 30) > drain,
              f"Deployment {name}: grace period does not cover KATY_DRAIN_TIMEOUT_S={drain}")
        security = spec.get("securityContext", {})
        check(security.get("runAsNonRoot") is True and security.get("runAsUser") == image_user(),
              f"Deployment {name}: not non-root as the image's user {image_user()}")
        if name == "responder":
            rules_folder = os.path.dirname(config["KATY_RULES"])
            mount = [m for m in container["volumeMounts"] if m["mountPath"] == rules_folder]
            check(mount, "responder: the rules folder is not mounted")
        pdbs = [p for p in by_kind["PodDisruptionBudget"]
                if p["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]]
        check(len(pdbs) == 1, f"Deployment {name}: no PodDisruptionBudget")
    check(read_somewhere == set(config), f"katy-config keys no service reads: {sorted(set(config) - read_somewhere)}")
    rules = open(os.path.join(ROOT, "deploy", "rules", "katy.yaml")).read()
    check(configmaps["katy-rules"]["data"].get(os.path.basename(config["KATY_RULES"])) == rules,
          "the katy-rules ConfigMap is not deploy/rules/katy.yaml")
    for service in by_kind["Service"]:
        name = service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            if name in ports_of:
                check(port["targetPort"] in ports_of[name], f"Service {name}: no container port {port['targetPort']}")
    scaled = by_kind["ScaledObject"][0]["spec"]
    check(scaled["scaleTargetRef"]["name"] in ports_of, "ScaledObject: scales no Deployment of this base")
    check(scaled["maxReplicaCount"] == int(config["KATY_SHARDS"]), "ScaledObject: maxReplicaCount is not KATY_SHARDS")
    trigger = scaled["triggers"][0]["metadata"]
    check(trigger.get("ignoreNullValues") == "false" and "fallback" in scaled,
          "ScaledObject: an empty query (Redis unreadable, no queue gauges) would read as no backlog")
    redis_pod = by_kind["StatefulSet"][0]["spec"]["template"]["spec"]
    redis = redis_pod["containers"][0]["args"]
    for key, value in redis_conf_settings().items():
        check(f"--{key}" in redis and redis[redis.index(f"--{key}") + 1] == value,
              f"Redis StatefulSet: {key} {value!r} of deploy/redis.conf is not set")
    check("--include" in redis and redis[redis.index("--include") + 1] == "/etc/redis/secret/redis.conf",
          "Redis StatefulSet: no password (requirepass) from the Secret")
    check(redis_pod.get("automountServiceAccountToken") is False, "Redis StatefulSet: service account token mounted")
    check_network_policies(by_kind.get("NetworkPolicy", []))
    # The webhook has a Service of its own: exposing it never exposes Control or /metrics.
    for service in by_kind["Service"]:
        targets = {port["targetPort"] for port in service["spec"]["ports"]}
        check("webhook" not in targets or targets == {"webhook"},
              f"Service {service['metadata']['name']}: the webhook shares a Service with {sorted(targets - {'webhook'})}")
    print(f"manifests: deploy/k8s renders {len(rendered)} objects; {len(by_kind['Deployment'])} Deployments checked")


def check_network_policies(policies):
    """Everything refused by default; Redis reached by Katy's services alone; only the webhook
    port open to any caller; every other rule names who may call."""
    by_name = {policy["metadata"]["name"]: policy["spec"] for policy in policies}
    deny = [spec for spec in by_name.values() if spec["podSelector"] == {} and not spec.get("ingress")]
    check(deny and "Ingress" in deny[0].get("policyTypes", []), "NetworkPolicy: no default deny of ingress")
    redis = [spec for spec in by_name.values()
             if spec["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "redis"]
    check(len(redis) == 1, "NetworkPolicy: none for Redis")
    for spec in redis:
        for rule in spec.get("ingress", []):
            for source in rule.get("from", [{}]):
                values = [expr["values"] for expr in source.get("podSelector", {}).get("matchExpressions", [])]
                check("namespaceSelector" not in source and values == [["ingress", "responder", "sender"]],
                      f"NetworkPolicy: Redis reachable from {source}")
    for name, spec in by_name.items():
        for rule in spec.get("ingress", []):
            if not rule.get("from"):
                ports = [port["port"] for port in rule.get("ports", [])]
                check(ports == [8080] and spec["podSelector"].get("matchLabels") == {"app.kubernetes.io/name": "ingress"},
                      f"NetworkPolicy {name}: ports {ports} open to every caller")


def check_compose(settings_of):
    config = yaml.safe_load(run(["docker-compose", "-f", "docker-compose.yml", "-f", "docker-compose.override.yml",
                                 "config"]))
    env_file = {}
    for line in open(ENV_EXAMPLE):
        if re.match(r"^KATY_[A-Z0-9_]+=", line):
            key, value = line.strip().split("=", 1)
            env_file[key] = value
    read_somewhere = set()
    for name, service in config["services"].items():
        command = service.get("command", [""])[0]
        if command not in settings_of:
            continue
        settings = settings_of[command]
        environment = service.get("environment", {})
        for key in environment:
            check(key in env_file or settings.reads(key), f"compose {name}: {command} does not read {key}")
        read_somewhere |= {key for key in env_file if settings.reads(key)}
        for key in settings.required:
            check(key in environment or key + "_FILE" in environment, f"compose {name}: required {key} is not given")
        # Secrets come from the generated files, never from a value in the repository.
        for key in settings.secret:
            check(key not in env_file, f"compose {name}: deploy/katy.env.example sets the secret {key}")
        if "KATY_REDIS_URL" in settings.names:
            check(environment.get("KATY_REDIS_URL_FILE") == "/run/katy/redis-url" and "KATY_REDIS_URL" not in env_file,
                  f"compose {name}: Redis is not reached with the generated password")
        if "KATY_GRPC_ADDR" in settings.names:
            check(environment.get("KATY_GRPC_ADDR", "").startswith("0.0.0.0:"), f"compose {name}: gRPC on loopback")
    # Nothing is published beyond the host's loopback by default (the webhook too: a TLS proxy
    # on the host reaches it; KATY_WEBHOOK_BIND opens it).
    for name, service in config["services"].items():
        for port in service.get("ports", []):  # "[host_ip:]published:target[/proto]"
            parts = str(port).split("/")[0].split(":")
            check(len(parts) == 3 and parts[0] == "127.0.0.1", f"compose {name}: port {parts[-1]} published beyond loopback")
    redis = config["services"]["redis"]
    check("/run/katy/redis-auth.conf" in redis.get("command", []), "compose redis: no password (requirepass) included")
    check(config["services"]["secrets"].get("entrypoint", [""])[-1].endswith("compose-secrets.sh"),
          "compose: no secrets service")
    check("container_name" not in config["services"]["responder"], "compose responder: container_name blocks --scale")
    check(read_somewhere == set(env_file),
          f"deploy/katy.env.example keys no service reads: {sorted(set(env_file) - read_somewhere)}")
    # And the other way: every setting is in the example, set or shown commented out.
    listed = set(env_file) | set(re.findall(r"^# (KATY_[A-Z0-9_]+)=", open(ENV_EXAMPLE).read(), re.M))
    every_setting = set().union(*(settings.names for settings in settings_of.values()))
    check(every_setting <= listed, f"settings missing from deploy/katy.env.example: {sorted(every_setting - listed)}")
    check(listed <= every_setting, f"unknown settings in deploy/katy.env.example: {sorted(listed - every_setting)}")
    print(f"manifests: compose services checked against {len(env_file)} settings of deploy/katy.env.example")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    settings_of = {binary: Settings(os.path.join(sys.argv[1], binary)) for binary in BINARIES}
    check_kubernetes(settings_of)
    check_compose(settings_of)
    for failure in failures:
        print(f"FAIL: {failure}")
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
