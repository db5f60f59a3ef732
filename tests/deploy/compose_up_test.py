#!/usr/bin/env python3
"""docker-compose up as a user runs it, with podman serving the Docker API (no Docker engine here).

Builds the images from this tree (which scripts/test.sh has just built locally: .dockerignore
must keep that build out), runs `docker-compose up -d --scale responder=3` with the emulator
and Prometheus, then checks from the host, as a user would:
  - the installation made its own secrets: Redis refuses an XADD without its password, and
    katyctl needs the generated control token;
  - a webhook signed with the generated app secret, POSTed to the published ingress port, gets
    its reply through the emulator;
  - `katyctl status` (gRPC published on loopback) shows three responders sharing the 16 shards;
  - Prometheus has every responder replica as a healthy target and every alert rule loaded;
  - every query of the Grafana dashboard returns data from that Prometheus, every metric the
    alert rules and the KEDA trigger read is scraped, and every rule evaluates;
  - `docker-compose down` leaves no container, network or volume of the project behind.
Grafana itself is not run: its image cannot be had on this machine (only Debian's packages).

usage: compose_up_test.py KATYCTL
"""
import hashlib
import hmac
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml  # python3-yaml, installed by scripts/test.sh

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROJECT = f"katytest{os.getpid()}"
RESPONDERS = 3
SHARDS = 16
PAGE = "1045"
# The services the run starts: all but grafana, whose image cannot be pulled here.
SERVICES = ["redis", "ingress", "responder", "sender", "emulator", "prometheus"]


class TestFailure(Exception):
    pass


def log(message):
    print(f"compose-test: {message}", flush=True)


def run(args, env=None, timeout=900, check=True):
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise TestFailure(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def wait_for(what, check, timeout_s, pause_s=1.0):
    """Calls check() until it returns a true value (returned) or timeout_s passes (TestFailure)."""
    deadline = time.monotonic() + timeout_s
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError, KeyError, TestFailure) as error:
            last_error = error
        time.sleep(pause_s)
    raise TestFailure(f"timed out after {timeout_s} s waiting for {what} (last error: {last_error})")


def http_get_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def free_port():
    return run([sys.executable, os.path.join(ROOT, "scripts", "free_port.py")]).stdout.strip()


class Stack:
    """The compose project under test: its environment, ports, and the health-check pump."""

    def __init__(self, podman_dir):
        started = run([os.path.join(ROOT, "scripts", "podman-docker.sh"), "start", podman_dir], timeout=900)
        self.env = dict(os.environ)
        for assignment in started.stdout.split("export", 1)[1].split():
            key, value = assignment.split("=", 1)
            self.env[key] = value
        self.ports = {name: free_port() for name in ("webhook", "grpc", "emulator", "prometheus", "grafana")}
        for name, port in self.ports.items():
            self.env[f"KATY_{name.upper()}_PORT"] = port
        self.env["COMPOSE_HTTP_TIMEOUT"] = "600"
        self.podman_dir = podman_dir
        self._secrets = {}
        self._stop_pump = threading.Event()
        self._pump = threading.Thread(target=self._run_health_checks, daemon=True)

    def compose(self, *args, timeout=900, check=True):
        return run(["docker-compose", "-p", PROJECT, *args], env=self.env, timeout=timeout, check=check)

    def containers(self):
        listed = run(["podman", "ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}",
                      "--format", "{{.Names}}"], env=self.env, check=False)
        return [name for name in listed.stdout.split() if name]

    # podman runs health checks from systemd timers, and there is no systemd here: without this
    # pump every container stays "starting" and `depends_on: service_healthy` waits forever.
    def _run_health_checks(self):
        while not self._stop_pump.wait(2):
            for name in self.containers():
                run(["podman", "healthcheck", "run", name], env=self.env, check=False, timeout=30)

    def start_health_pump(self):
        self._pump.start()

    def stop_health_pump(self):
        self._stop_pump.set()
        if self._pump.is_alive():
            self._pump.join(timeout=60)

    def url(self, port_name, path):
        return f"http://127.0.0.1:{self.ports[port_name]}{path}"

    def container_of(self, service):
        listed = run(["podman", "ps", "--filter", f"label=com.docker.compose.project={PROJECT}",
                      "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Names}}"],
                     env=self.env)
        names = listed.stdout.split()
        if not names:
            raise TestFailure(f"no running container of {service}")
        return names[0]

    def secret(self, name):
        """A secret the `secrets` service generated, read inside ingress as the services do."""
        if name not in self._secrets:
            read = run(["podman", "exec", self.container_of("ingress"), "cat", f"/run/katy/{name}"], env=self.env)
            self._secrets[name] = read.stdout.strip()
        return self._secrets[name]

    def katyctl(self, katyctl, *args, check=True):
        """katyctl from the host on the published gRPC port, with the generated control token."""
        token_file = os.path.join(self.podman_dir, "control-token")
        with open(token_file, "w") as out:
            out.write(self.secret("control-token"))
        return run([katyctl, "--addr", f"127.0.0.1:{self.ports['grpc']}", "--token-file", token_file, *args],
                   env=self.env, check=check)


def send_signed_webhook(stack, psid, mid, text):
    now_ms = int(time.time() * 1000)
    body = json.dumps({"object": "page", "entry": [{"id": PAGE, "time": now_ms, "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": PAGE}, "timestamp": now_ms,
         "message": {"mid": mid, "text": text}}]}]}).encode()
    secret = stack.secret("app-secret").encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(stack.url("webhook", "/webhook"), data=body, method="POST",
                                     headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature})
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise TestFailure(f"webhook answered {response.status}")


def send_forged_webhook(stack):
    request = urllib.request.Request(stack.url("webhook", "/webhook"), data=b'{"object":"page","entry":[]}',
                                     method="POST", headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        if error.code == 403:
            return
        raise TestFailure(f"a forged webhook got {error.code}, not 403") from error
    raise TestFailure("a forged webhook was accepted")


def replies_to(stack, psid):
    messages = http_get_json(stack.url("emulator", f"/_emulator/messages?psid={psid}"))
    return [json.dumps(message) for message in messages] if isinstance(messages, list) else [json.dumps(messages)]


def check_the_installation_has_its_own_secrets(stack, katyctl):
    """Redis answers nothing without the generated password, and Control nothing without the
    generated token; neither is a value from the repository."""
    forged = run(["podman", "exec", stack.container_of("redis"), "redis-cli", "XADD", "katy:{s00}:out", "*", "pb", "x"],
                 env=stack.env, check=False)
    if "NOAUTH" not in forged.stdout + forged.stderr:
        raise TestFailure(f"Redis took an XADD without its password: {forged.stdout} {forged.stderr}")
    refused = run([katyctl, "--addr", f"127.0.0.1:{stack.ports['grpc']}", "status"], env=stack.env, check=False)
    if refused.returncode == 0 or "token" not in refused.stderr:
        raise TestFailure(f"katyctl status without the token was served: {refused.stdout} {refused.stderr}")
    stack.katyctl(katyctl, "status")
    with open(os.path.join(ROOT, "deploy", "katy.env.example")) as example:
        text = example.read()
    for name in ("app-secret", "control-token", "outbound-token", "redis-password", "page-token"):
        value = stack.secret(name)
        if len(value) < 32 or value in text:
            raise TestFailure(f"the generated {name} is not a fresh secret")
    log("Redis refuses an XADD without its password; katyctl needs the generated control token")


def check_webhook_gets_its_reply(stack, katyctl):
    # Ingress answers 503 until it reaches Redis; its health says when (as Meta would retry).
    wait_for("ingress SERVING", lambda: run([katyctl, "--addr", f"127.0.0.1:{stack.ports['grpc']}", "health"],
                                            env=stack.env, check=False).returncode == 0, 60)
    send_signed_webhook(stack, "4242", "m.compose.1", "hello")
    replies = wait_for("the reply to a signed webhook", lambda: [r for r in replies_to(stack, "4242") if "text" in r], 60)
    if not any("Meow, hello" in reply or "Purr... hi there" in reply for reply in replies):
        raise TestFailure(f"no greeting in the replies: {replies}")
    log(f"a signed webhook on port {stack.ports['webhook']} got its reply: {replies[0][:120]}")


def check_responders_share_the_shards(stack, katyctl):
    def owners():
        status = stack.katyctl(katyctl, "--json", "status")
        leases = [lease for lease in json.loads(status.stdout).get("leases", []) if lease.get("role") == "responder"]
        by_owner = {}
        for lease in leases:
            if lease.get("owner"):
                by_owner.setdefault(lease["owner"], []).append(lease.get("shard", 0))
        shards = sorted(shard for owned in by_owner.values() for shard in owned)
        return by_owner if len(by_owner) == RESPONDERS and shards == list(range(SHARDS)) else None

    by_owner = wait_for(f"{RESPONDERS} responders owning the {SHARDS} shards", owners, 90, pause_s=2)
    log("katyctl status: responder shards " + ", ".join(f"{owner} {len(s)}" for owner, s in sorted(by_owner.items())))


def check_prometheus_targets_and_rules(stack):
    def responder_targets():
        targets = http_get_json(stack.url("prometheus", "/api/v1/targets"))["data"]["activeTargets"]
        healthy = [t for t in targets if t["labels"].get("job") == "katy-responder" and t["health"] == "up"]
        every_job = {t["labels"]["job"] for t in targets if t["health"] == "up"}
        ready = len(healthy) == RESPONDERS and every_job >= {"katy-ingress", "katy-responder", "katy-sender"}
        return healthy if ready else None

    healthy = wait_for(f"Prometheus scraping {RESPONDERS} healthy responders", responder_targets, 90, pause_s=2)
    log("Prometheus responder targets: " + ", ".join(t["labels"]["instance"] for t in healthy))

    with open(os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")) as alerts_file:
        wanted = {rule["alert"] for group in yaml.safe_load(alerts_file)["groups"]
                  for rule in group["rules"] if "alert" in rule}
    groups = http_get_json(stack.url("prometheus", "/api/v1/rules"))["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"}
    if wanted - loaded:
        raise TestFailure(f"alert rules not loaded by Prometheus: {sorted(wanted - loaded)}")
    log(f"Prometheus loaded all {len(wanted)} alert rules")


def dashboard_queries():
    with open(os.path.join(ROOT, "deploy", "grafana", "dashboards", "katy.json")) as dashboard_file:
        dashboard = json.load(dashboard_file)
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            # Grafana's rate window; a minute holds several 10 s scrapes.
            yield panel["title"], target["expr"].replace("$__rate_interval", "1m")


def query_has_data(stack, expr):
    url = stack.url("prometheus", "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    answer = http_get_json(url)
    if answer["status"] != "success":
        raise TestFailure(f"{expr}: {answer}")
    values = [float(sample["value"][1]) for sample in answer["data"]["result"]]
    return any(not math.isnan(value) for value in values)


def check_every_dashboard_query_returns_data(stack):
    # A query over rates needs the counters to move inside its window: keep traffic flowing
    # (new people, a forged request for the rejection counters) until every query has data.
    queries = list(dashboard_queries())
    waiting = set(queries)
    deadline = time.monotonic() + 150
    sent = 0
    while waiting and time.monotonic() < deadline:
        sent += 1
        send_signed_webhook(stack, f"77{sent}", f"m.compose.dash.{sent}", "hello")
        send_forged_webhook(stack)
        for title, expr in list(waiting):
            if query_has_data(stack, expr):
                waiting.discard((title, expr))
        time.sleep(3)
    if waiting:
        raise TestFailure("dashboard queries without data: " + "; ".join(f"{t}: {e}" for t, e in sorted(waiting)))
    log(f"every dashboard query ({len(queries)}) returned data")


def check_rules_and_keda_query_see_real_series(stack):
    """Every metric an alert, recording rule or the KEDA trigger reads is really scraped, every
    rule evaluates without error, and the KEDA query and the recording rules return data."""
    with open(os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")) as alerts_file:
        rules = [rule for group in yaml.safe_load(alerts_file)["groups"] for rule in group["rules"]]
    with open(os.path.join(ROOT, "deploy", "k8s", "keda-scaledobject.yaml")) as keda_file:
        keda_query = yaml.safe_load(keda_file)["spec"]["triggers"][0]["metadata"]["query"]
    expressions = [rule["expr"] for rule in rules] + [keda_query]
    metrics = sorted({name for expr in expressions for name in re.findall(r"\b(katy_[a-z_]+|up)\b", expr)})
    for metric in metrics:
        if not query_has_data(stack, f'count({{__name__="{metric}"}})'):
            raise TestFailure(f"no series of {metric}, which the alert rules or KEDA read")

    def rules_evaluated():
        groups = http_get_json(stack.url("prometheus", "/api/v1/rules"))["data"]["groups"]
        evaluated = [rule for group in groups for rule in group["rules"]]
        broken = [f"{rule['name']}: {rule.get('lastError')}" for rule in evaluated if rule["health"] == "err"]
        if broken:
            raise TestFailure("rules that fail to evaluate: " + "; ".join(broken))
        return all(rule["health"] == "ok" for rule in evaluated)

    wait_for("every rule evaluated", rules_evaluated, 60, pause_s=2)
    for expr in [keda_query] + [rule["record"] for rule in rules if "record" in rule]:
        wait_for(f"data from {expr}", lambda expr=expr: query_has_data(stack, expr), 60, pause_s=2)
    log(f"alerts and KEDA read {len(metrics)} metrics, all scraped; every rule evaluates; KEDA's query has data")


def check_down_leaves_nothing(stack):
    stack.compose("down", "--volumes", "--remove-orphans", timeout=300)
    left = stack.containers()
    if left:
        raise TestFailure(f"containers left after down: {left}")
    networks = run(["podman", "network", "ls", "--format", "{{.Name}}"], env=stack.env).stdout.split()
    volumes = run(["podman", "volume", "ls", "--format", "{{.Name}}"], env=stack.env).stdout.split()
    left = [name for name in networks + volumes if name.startswith(PROJECT)]
    if left:
        raise TestFailure(f"networks or volumes left after down: {left}")
    log("docker-compose down left no container, network or volume")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    katyctl = os.path.abspath(sys.argv[1])
    if not os.path.exists(os.path.join(ROOT, "build", "CMakeCache.txt")):
        log("note: no local build/ in this tree, so .dockerignore is not put to the test")
    podman_dir = os.environ.get("KATY_PODMAN_DIR", "/tmp/katy-podman")
    stack = Stack(podman_dir)
    started = time.monotonic()
    try:
        stack.compose("build", "ingress", timeout=1800)  # one image serves every Katy service
        log(f"images built in {time.monotonic() - started:.0f} s")
        stack.start_health_pump()
        stack.compose("up", "-d", "--scale", f"responder={RESPONDERS}", *SERVICES, timeout=900)
        log(f"stack up in {time.monotonic() - started:.0f} s (grafana left out: its image cannot be had here)")
        check_webhook_gets_its_reply(stack, katyctl)
        check_the_installation_has_its_own_secrets(stack, katyctl)
        check_responders_share_the_shards(stack, katyctl)
        check_prometheus_targets_and_rules(stack)
        check_every_dashboard_query_returns_data(stack)
        check_rules_and_keda_query_see_real_series(stack)
        stack.stop_health_pump()
        check_down_leaves_nothing(stack)
    except (TestFailure, subprocess.TimeoutExpired, OSError) as error:
        print(f"FAIL: {error}", flush=True)
        logs = stack.compose("logs", "--no-color", "--tail", "30", timeout=120, check=False)
        print(logs.stdout[-20000:], flush=True)
        stack.stop_health_pump()
        stack.compose("down", "--volumes", "--remove-orphans", timeout=300, check=False)
        print("0 passed, 1 failed")
        return 1
    finally:
        # The builder stage of each run is left as an untagged image of about 1 GB.
        run(["podman", "image", "prune", "-f"], env=stack.env, check=False)
        run([os.path.join(ROOT, "scripts", "podman-docker.sh"), "stop", podman_dir], check=False)
    log(f"done in {time.monotonic() - started:.0f} s")
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
