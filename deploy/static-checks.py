#!/usr/bin/env python3
"""Static checks of the deploy/ kit, run by .ci/deploy-checks from the repository root.

Every file parses (YAML, JSON, TOML), and the files agree with each other and with the daemon's
contract: metric and label names, configuration keys, ports, paths, grace periods, names of
Kubernetes objects, and what the container build needs. Prints one line per failed check and
exits 1 if there is any. Needs PyYAML; Python 3.11+ (tomllib).
"""

import glob
import json
import os
import re
import shlex
import sys
import tomllib

import yaml

failures = []
checked = 0


def check(cond, what):
    global checked
    checked += 1
    if not cond:
        failures.append(what)
    return cond


# ---------------------------------------------------------------------------------------------
# The daemon's contract: metrics and their labels (label values where they are enumerated).
HIST = "histogram"
METRICS = {
    "hss_scand_build_info": ({"version"}, None),
    "hss_scand_images": ({"target", "image_type", "scan_status"}, None),
    "hss_scand_images_due": ({"target", "reason"}, None),
    "hss_scand_coverage_ratio": ({"target"}, None),
    "hss_scand_oldest_scan_age_seconds": ({"target"}, None),
    "hss_scand_images_at_risk": ({"target", "severity"}, None),
    "hss_scand_images_with_malicious_files": ({"target"}, None),
    "hss_scand_images_with_unsafe_settings": ({"target"}, None),
    "hss_scand_time_to_submit_seconds": ({"target"}, HIST),
    "hss_scand_sync_runs_total": ({"target", "outcome"}, None),
    "hss_scand_sync_duration_seconds": ({"target"}, HIST),
    "hss_scand_last_successful_sync_timestamp_seconds": ({"target"}, None),
    "hss_scand_scan_batches_total": ({"target", "outcome"}, None),
    "hss_scand_images_submitted_total": ({"target", "image_type", "reason"}, None),
    "hss_scand_scan_completion_seconds": ({"target"}, HIST),
    "hss_scand_daily_budget_remaining": (set(), None),
    "hss_scand_api_requests_total": ({"endpoint", "code"}, None),
    "hss_scand_api_request_duration_seconds": ({"endpoint"}, HIST),
    "hss_scand_api_retries_total": ({"endpoint", "reason"}, None),
    # The metric's "job" label is stored by Prometheus as "exported_job" (honor_labels: false).
    "hss_scand_job_runs_total": ({"exported_job", "outcome"}, None),
    "hss_scand_last_job_success_timestamp_seconds": ({"exported_job"}, None),
    "hss_scand_config_reloads_total": ({"outcome"}, None),
    "hss_scand_api_fallbacks_total": ({"target"}, None),
    "hss_scand_api_in_use": ({"target", "api"}, None),
    "hss_scand_native_scan_policy_enabled": ({"target"}, None),
    "hss_scand_pay_per_scan_enabled": ({"target"}, None),
    "hss_scand_hss_reported_scans": ({"target"}, None),
    "hss_scand_hss_free_scan_quota": ({"target"}, None),
    "hss_scand_scan_tasks_total": ({"target", "outcome"}, None),
    "hss_scand_deletions_held_total": ({"target"}, None),
    # The leader lease, as each replica sees it.
    "hss_scand_leader": (set(), None),
    "hss_scand_lease_term": (set(), None),
    "hss_scand_leader_changes_total": (set(), None),
}
PROCESS = {
    "process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
    "process_start_time_seconds", "process_open_fds", "process_max_fds", "process_threads",
}
ENDPOINTS = {"list_swr_images", "synchronize", "batch_scan", "list_registry_images",
             "create_scan_task", "list_tasks", "create_sync_task", "list_scan_policy",
             "pay_per_scan_statistics", "show_switch", "add_registry", "list_registries",
             "image_upload_command"}
VALUES = {
    ("hss_scand_images_due", "reason"): {"never_scanned", "changed", "failed_retry", "stale", "stuck"},
    ("hss_scand_images_at_risk", "severity"): {"High", "Medium", "Low", "Security"},
    ("hss_scand_sync_runs_total", "outcome"): {"complete", "partial", "failed"},
    ("hss_scand_scan_batches_total", "outcome"): {"sent", "failed", "unknown", "split"},
    ("hss_scand_images_submitted_total", "reason"): {"never_scanned", "changed", "failed_retry", "stale", "stuck"},
    ("hss_scand_api_retries_total", "reason"): {
        "throttled", "server_error", "client_error", "timeout", "connect", "transport",
        "malformed", "failed_in_body", "credentials", "request", "not_sent"},
    ("hss_scand_job_runs_total", "exported_job"): {"sync", "scan"},
    ("hss_scand_job_runs_total", "outcome"): {"success", "failure", "skipped"},
    ("hss_scand_last_job_success_timestamp_seconds", "exported_job"): {"sync", "scan"},
    ("hss_scand_config_reloads_total", "outcome"): {"success", "failure"},
    ("hss_scand_api_in_use", "api"): {"current", "legacy", "legacy_fallback", "undecided"},
    ("hss_scand_scan_tasks_total", "outcome"): {"finished", "stopped", "timed_out", "error"},
}
for m in ("hss_scand_api_requests_total", "hss_scand_api_request_duration_seconds",
          "hss_scand_api_retries_total"):
    VALUES[(m, "endpoint")] = ENDPOINTS
# The scrape's labels; namespace where a Kubernetes scrape configuration copies it (deploy/README.md).
TARGET_LABELS = {"job", "instance", "namespace"}
ALL_LABELS = set().union(*(l for l, _ in METRICS.values())) | TARGET_LABELS | {"le", "alertname"}

SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def metric_base(name):
    if name in METRICS:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)] if name.endswith(suffix) else None
        if base and METRICS.get(base, (None, None))[1] == HIST:
            return base
    return None


def check_promql(expr, where):
    """Metric names, label names and enumerated label values used in one PromQL expression."""
    for m in SELECTOR.finditer(expr):
        name, matchers = m.group(1), m.group(2) or ""
        if name.startswith("hss_scand_") or name.startswith("process_"):
            base = metric_base(name)
            if name.startswith("process_"):
                check(name in PROCESS, f"{where}: unknown process metric {name}")
                continue
            if not check(base is not None, f"{where}: unknown metric {name}"):
                continue
            labels = METRICS[base][0] | TARGET_LABELS | ({"le"} if name.endswith("_bucket") else set())
            for lm in MATCHER.finditer(matchers):
                label, op, value = lm.groups()
                check(label in labels, f"{where}: {name} has no label {label}")
                allowed = VALUES.get((base, label))
                if allowed and op == "=":
                    check(value in allowed, f"{where}: {name}{{{label}=\"{value}\"}}: not one of {sorted(allowed)}")
                if allowed and op == "=~" and re.fullmatch(r"[a-z_|]+", value):
                    for v in value.split("|"):
                        check(v in allowed, f"{where}: {name}{{{label}=~...}}: {v} not one of {sorted(allowed)}")
        elif name == "up":
            for lm in MATCHER.finditer(matchers):
                check(lm.group(1) in TARGET_LABELS, f"{where}: up has no label {lm.group(1)}")
    for m in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        for label in filter(None, (x.strip() for x in m.group(1).split(","))):
            check(label in ALL_LABELS, f"{where}: grouping by unknown label {label}")


# ---------------------------------------------------------------------------------------------
# Durations: humantime as in the config ("30s", "1d 12h"), systemd ("60s", "10min").
UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def seconds(text):
    total, rest = 0.0, text.replace(" ", "")
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)([a-z]+)", rest):
        total += float(num) * UNITS[unit]
    if re.fullmatch(r"\d+", rest):
        total = float(rest)
    return total


def load_yaml(path):
    try:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        check(docs, f"{path}: empty YAML")
        return docs[0] if len(docs) == 1 else docs
    except yaml.YAMLError as e:
        check(False, f"{path}: not valid YAML: {e}")
        return {}


# ---------------------------------------------------------------------------------------------
# Configuration files: valid TOML, known keys only (config/default.toml + the [daemon] section).
with open("config/default.toml", "rb") as f:
    DEFAULTS = tomllib.load(f)
check(isinstance(DEFAULTS.get("daemon"), dict) and {"shutdown_grace", "lease_ttl", "lease_renew_every"} <= set(DEFAULTS["daemon"]),
      "config/default.toml: [daemon] with shutdown_grace, lease_ttl and lease_renew_every expected")
DEFAULTS.setdefault("daemon", {"sync_on_start": True, "shutdown_grace": "30s", "lease_ttl": "20s", "lease_renew_every": "5s"})
default_text = open("config/default.toml").read()
TARGET_KEYS = set(re.findall(r"^# (\w+) = ", default_text.split("# [[targets]]\n", 1)[1].split("\n\n", 1)[0], re.M))
check({"name", "region", "project_id", "image_types"} <= TARGET_KEYS, "config/default.toml: [[targets]] example keys not found")


def check_config(text, where):
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        check(False, f"{where}: not valid TOML: {e}")
        return {}
    for section, value in cfg.items():
        if section == "targets":
            check(isinstance(value, list) and value, f"{where}: [[targets]] must be a non-empty list")
            for t in value:
                for key in t:
                    check(key in TARGET_KEYS, f"{where}: unknown key targets.{key}")
                check({"name", "region", "project_id"} <= set(t), f"{where}: a target lacks name/region/project_id")
            continue
        if not check(section in DEFAULTS and isinstance(DEFAULTS[section], dict), f"{where}: unknown section [{section}]"):
            continue
        for key in value:
            check(key in DEFAULTS[section] or (section, key) == ("policy", "rules"),
                  f"{where}: unknown key {section}.{key}")
    check("targets" in cfg, f"{where}: no [[targets]]")
    return cfg


def daemon_setting(cfg, key):
    return seconds(cfg.get("daemon", {}).get(key, DEFAULTS["daemon"][key]))


def grace(cfg):
    return daemon_setting(cfg, "shutdown_grace")


def check_lease(cfg, where):
    """The daemon refuses a renewal interval over half the TTL; the kit keeps to a third."""
    ttl, renew = daemon_setting(cfg, "lease_ttl"), daemon_setting(cfg, "lease_renew_every")
    check(0 < renew and 3 * renew <= ttl, f"{where}: lease_renew_every ({renew}s) must be at most a third of lease_ttl ({ttl}s)")
    return ttl


# ---------------------------------------------------------------------------------------------
# systemd: the unit and its configuration file.
unit_path = "deploy/systemd/hss-scand.service"
unit = {}
for line in open(unit_path):
    line = line.strip()
    if line and not line.startswith(("#", ";", "[")) and "=" in line:
        k, v = line.split("=", 1)
        unit.setdefault(k, []).append(v)


def u(key):
    return unit.get(key, [""])[-1]


for key, want in {"Type": "notify", "NotifyAccess": "main", "DynamicUser": "yes",
                  "StateDirectory": "hss-scand", "ConfigurationDirectory": "hss-scand",
                  "Restart": "on-failure", "RestartPreventExitStatus": "78",
                  "NoNewPrivileges": "yes", "ProtectSystem": "strict", "CapabilityBoundingSet": "",
                  "UMask": "0077"}.items():
    check(u(key) == want, f"{unit_path}: {key}={u(key)!r}, expected {want!r}")
check(seconds(u("WatchdogSec")) > 0, f"{unit_path}: WatchdogSec= missing")
check("-HUP $MAINPID" in u("ExecReload"), f"{unit_path}: ExecReload= must send SIGHUP to $MAINPID")
exec_start = shlex.split(u("ExecStart"))
check(exec_start[-1:] == ["run"], f"{unit_path}: ExecStart= must run the `run` command")
creds = dict(v.split(":", 1)[0:2] for v in unit.get("LoadCredential", []))
check({"ak", "sk"} <= set(creds), f"{unit_path}: LoadCredential= for ak and sk expected")
unit_env = dict(v.split("=", 1) for v in unit.get("Environment", []))

sd_cfg = check_config(open("deploy/systemd/config.toml").read(), "deploy/systemd/config.toml")
check(sd_cfg.get("database", {}).get("url", "").startswith("sqlite:///var/lib/hss-scand/"),
      "deploy/systemd/config.toml: the database must be in the StateDirectory /var/lib/hss-scand")
check(seconds(u("TimeoutStopSec")) > grace(sd_cfg),
      f"{unit_path}: TimeoutStopSec={u('TimeoutStopSec')} must exceed shutdown_grace {grace(sd_cfg)}s")
for key, name in (("ak_file", "ak"), ("sk_file", "sk")):
    env_value = unit_env.get(f"HSS_SCAND__CREDENTIALS__{key.upper()}", "")
    check(env_value == f"%d/{name}", f"{unit_path}: HSS_SCAND__CREDENTIALS__{key.upper()} should be %d/{name}")
    check(sd_cfg.get("credentials", {}).get(key) == f"/run/credentials/hss-scand.service/{name}",
          f"deploy/systemd/config.toml: credentials.{key} should name the LoadCredential file")

# ---------------------------------------------------------------------------------------------
# Prometheus rules and their tests.
alerts = load_yaml("deploy/prometheus/alerts.yml")
alert_names = []
rules = {}
for group in alerts.get("groups", []):
    for rule in group.get("rules", []):
        name = rule.get("alert") or rule.get("record")
        alert_names.append(name)
        rules[name] = rule
        check_promql(rule.get("expr", ""), f"alerts.yml {name}")
        if "alert" in rule:
            check(rule.get("labels", {}).get("severity") in {"critical", "warning", "info"},
                  f"alerts.yml {name}: severity label critical|warning|info expected")
            for a in ("summary", "description"):
                check(rule.get("annotations", {}).get(a), f"alerts.yml {name}: no {a} annotation")
tests = load_yaml("deploy/prometheus/alerts.test.yml")
firing, quiet = set(), set()
for t in tests.get("tests", []):
    for s in t.get("input_series", []):
        check_promql(s["series"], "alerts.test.yml input")
    for a in t.get("alert_rule_test", []):
        (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
for name in alert_names:
    check(name in firing, f"alerts.test.yml: no test where {name} fires")
    check(name in quiet, f"alerts.test.yml: no test where {name} must not fire")

prom = load_yaml("deploy/prometheus/prometheus.yml")
jobs = {j["job_name"]: j for j in prom.get("scrape_configs", [])}
check("hss-scand" in jobs, "prometheus.yml: the alerts select job=\"hss-scand\": no such scrape job")
check(["hss-scand:9794"] == [t for sc in jobs.get("hss-scand", {}).get("static_configs", []) for t in sc["targets"]],
      "prometheus.yml: job hss-scand should scrape hss-scand:9794")

# ---------------------------------------------------------------------------------------------
# Grafana.
try:
    dash = json.load(open("deploy/grafana/dashboard.json"))
except ValueError as e:
    check(False, f"deploy/grafana/dashboard.json: not valid JSON: {e}")
    dash = {}
variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
check(variables.get("datasource", {}).get("type") == "datasource"
      and variables["datasource"].get("query") == "prometheus", "dashboard: a prometheus `datasource` variable expected")
tq = variables.get("target", {}).get("query", {})
check((tq.get("query") if isinstance(tq, dict) else tq) == "label_values(hss_scand_images, target)",
      "dashboard: the `target` variable should be label_values(hss_scand_images, target)")
check(isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 36, "dashboard: schemaVersion >= 36 expected")
ids = [p.get("id") for p in dash.get("panels", [])]
check(len(ids) == len(set(ids)), "dashboard: panel ids must be unique")
for p in dash.get("panels", []):
    if p.get("type") == "row":
        continue
    check(p.get("datasource", {}).get("uid") == "${datasource}", f"dashboard panel {p.get('title')}: datasource must be ${{datasource}}")
    check(p.get("targets"), f"dashboard panel {p.get('title')}: no query")
    for t in p.get("targets", []):
        check_promql(t.get("expr", ""), f"dashboard panel {p.get('title')!r}")
for path in glob.glob("deploy/grafana/provisioning/**/*.yaml", recursive=True):
    load_yaml(path)

# ---------------------------------------------------------------------------------------------
# Compose. The default services, and under the profile "postgres" PostgreSQL and hss-scand
# replicas on it; without the profile nothing changes.
compose = load_yaml("deploy/compose.yaml")
services = compose.get("services", {})
check({"hss-sim", "hss-scand", "prometheus", "grafana"} <= set(services), "compose.yaml: services missing")
check({"postgres", "hss-scand-postgres"} <= set(services), "compose.yaml: services of the profile postgres missing")
for name, svc in services.items():
    build = svc.get("build")
    if build:
        ctx = os.path.normpath(os.path.join("deploy", build["context"]))
        check(os.path.isfile(os.path.join(ctx, build["dockerfile"])), f"compose.yaml {name}: the Dockerfile is not found")
    for vol in svc.get("volumes", []):
        src = vol.split(":")[0]
        if src.startswith("."):
            check(os.path.exists(os.path.join("deploy", src)), f"compose.yaml {name}: {src} does not exist")
        else:
            check(src in (compose.get("volumes") or {}), f"compose.yaml {name}: volume {src} not declared")
    profiles = svc.get("profiles", [])
    if name in {"hss-sim", "hss-scand", "prometheus", "grafana"}:
        check(not profiles, f"compose.yaml {name}: a default service must have no profile")
    else:
        check(profiles == ["postgres"], f"compose.yaml {name}: expected profiles [\"postgres\"]")
    for dep in svc.get("depends_on", {}):
        check(dep in services and (profiles or not services[dep].get("profiles")),
              f"compose.yaml {name}: depends on {dep}, which is not a service it can start")
sim_args = services.get("hss-sim", {}).get("command", [])
sim_listen = sim_args[sim_args.index("--listen") + 1] if "--listen" in sim_args else "127.0.0.1:8443"
check(sim_listen.startswith("0.0.0.0:"), "compose: hss-sim must listen on 0.0.0.0 to be reachable")
sim_env = services.get("hss-sim", {}).get("environment", {})
for scand_name in ("hss-scand", "hss-scand-postgres"):
    scand = services.get(scand_name, {})
    check(scand.get("command") == ["run"], f"compose: {scand_name} must run the `run` command")
    mount = [v.split(":")[0] for v in scand.get("volumes", []) if ":/etc/hss-scand/config.toml" in v]
    if not check(mount, f"compose.yaml: {scand_name} mounts no /etc/hss-scand/config.toml"):
        continue
    sim_cfg = check_config(open(os.path.join("deploy", mount[0])).read(), mount[0])
    check_lease(sim_cfg, mount[0])
    check(sim_cfg.get("hss", {}).get("endpoint") == f"http://hss-sim:{sim_listen.rsplit(':', 1)[1]}",
          "compose: hss.endpoint must be the hss-sim service and its --listen port")
    check(all(t["project_id"] == "sim-project" for t in sim_cfg.get("targets", [])),
          "compose: the targets' project_id must be hss-sim's sim-project")
    check(seconds(scand.get("stop_grace_period", "10s")) > grace(sim_cfg),
          f"compose: {scand_name}'s stop_grace_period must exceed shutdown_grace")
    env = scand.get("environment", {})
    if sim_cfg.get("credentials", {}).get("source", "env") == "env":
        check(env.get("HUAWEICLOUD_SDK_AK") == sim_env.get("HSS_SIM_AK", "sim-ak")
              and env.get("HUAWEICLOUD_SDK_SK") == sim_env.get("HSS_SIM_SK", "sim-sk"),
              f"compose: {scand_name}'s AK/SK must be the simulator's")
    check(env.get("HSS_SCAND__SERVER__LISTEN", "").endswith(":9794"), f"compose: {scand_name} must listen on :9794")
    check(scand.get("depends_on", {}).get("hss-sim", {}).get("condition") == "service_healthy",
          f"compose: {scand_name} must wait for a healthy hss-sim")
check(services.get("hss-scand", {}).get("environment", {}).get("HSS_SCAND__DATABASE__URL", "").startswith("sqlite:///var/lib/hss-scand/"),
      "compose: the default hss-scand keeps SQLite on its volume")
# PostgreSQL: a health check that asks the server over TCP, its data on a named volume, and the
# replicas' URL pointing at it with its user, password and database.
pg = services.get("postgres", {})
pg_env = pg.get("environment", {})
pg_test = pg.get("healthcheck", {}).get("test", [])
check(pg_test[:2] == ["CMD", "pg_isready"] and "-h" in pg_test, "compose: postgres's health check must be pg_isready over TCP (-h)")
check(any(v.split(":")[0] in (compose.get("volumes") or {}) and v.split(":")[1] == "/var/lib/postgresql/data"
          for v in pg.get("volumes", [])), "compose: postgres's data must be on a named volume")
pg_scand = services.get("hss-scand-postgres", {})
want_url = f"postgres://{pg_env.get('POSTGRES_USER')}:{pg_env.get('POSTGRES_PASSWORD')}@postgres:5432/{pg_env.get('POSTGRES_DB')}"
check(pg_scand.get("environment", {}).get("HSS_SCAND__DATABASE__URL") == want_url,
      f"compose: hss-scand-postgres's database URL must be {want_url}")
check(pg_scand.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
      "compose: hss-scand-postgres must wait for a healthy postgres")
check(not [v for v in pg_scand.get("volumes", []) if ":/var/lib/hss-scand" in v], "compose: hss-scand-postgres needs no state volume")
check(pg_scand.get("deploy", {}).get("replicas", 1) >= 2, "compose: hss-scand-postgres should run at least two replicas")
pg_sd = [n for sd in jobs.get("hss-scand-postgres", {}).get("dns_sd_configs", []) for n in sd.get("names", [])
         if sd.get("port") == 9794]
check(pg_sd == ["hss-scand-postgres"], "prometheus.yml: job hss-scand-postgres should find the service hss-scand-postgres on 9794")

# ---------------------------------------------------------------------------------------------
# Kubernetes: deploy/kubernetes (one replica on SQLite) and deploy/kubernetes/replicas (two on
# PostgreSQL). What both share, then what each needs.


def k8s_variant(K, replicas):
    where = f"{K}"
    kust = load_yaml(f"{K}/kustomization.yaml")
    resources = kust.get("resources", [])
    for r in resources:
        check(os.path.isfile(f"{K}/{r}"), f"{where}/kustomization.yaml: {r} does not exist")
    for path in sorted(glob.glob(f"{K}/*.yaml")):
        base = os.path.basename(path)
        if base not in {"kustomization.yaml", "secret.example.yaml"}:
            check(base in resources, f"{where}/kustomization.yaml does not apply {base}")
    check("secret.example.yaml" not in resources, f"{where}/kustomization.yaml must not apply the example Secret")
    objs = {r: load_yaml(f"{K}/{r}") for r in resources if os.path.isfile(f"{K}/{r}")}
    by_kind = {}
    for o in objs.values():
        by_kind.setdefault(o.get("kind"), []).append(o)
    for kind in ("ConfigMap", "Deployment", "Service"):
        check(len(by_kind.get(kind, [])) == 1, f"{where}: one {kind} expected among the resources")
    cm = (by_kind.get("ConfigMap") or [{}])[0]
    dep = (by_kind.get("Deployment") or [{}])[0]
    svc = (by_kind.get("Service") or [{}])[0]
    cfg = check_config(cm.get("data", {}).get("config.toml", ""), f"{where} ConfigMap config.toml")
    check_lease(cfg, f"{where} ConfigMap config.toml")
    spec = dep.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    pod_labels = spec.get("template", {}).get("metadata", {}).get("labels")
    check(spec.get("selector", {}).get("matchLabels") == pod_labels, f"{where} deployment: the selector must match the pod's labels")
    check(pod.get("terminationGracePeriodSeconds", 30) > grace(cfg),
          f"{where} deployment: terminationGracePeriodSeconds must exceed shutdown_grace")
    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 10001, f"{where} deployment: run as non-root 10001")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where} deployment: seccompProfile RuntimeDefault")
    containers = pod.get("containers", [])
    c = containers[0] if containers else {}
    check(c.get("args") == ["run"], f"{where} deployment: the container must run the `run` command")
    csc = c.get("securityContext", {})
    check(csc.get("readOnlyRootFilesystem") is True, f"{where} deployment: readOnlyRootFilesystem")
    check(csc.get("allowPrivilegeEscalation") is False, f"{where} deployment: allowPrivilegeEscalation false")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{where} deployment: capabilities drop ALL")
    check(c.get("resources", {}).get("requests") and c.get("resources", {}).get("limits"), f"{where} deployment: resources")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(ports.get("metrics") == 9794, f"{where} deployment: container port metrics 9794")
    check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", f"{where} deployment: liveness /healthz")
    check(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", f"{where} deployment: readiness /readyz")
    cenv = {e["name"]: e for e in c.get("env", [])}
    check(cenv.get("HSS_SCAND__SERVER__LISTEN", {}).get("value") == "0.0.0.0:9794", f"{where} deployment: listen 0.0.0.0:9794")
    check(cenv.get("HSS_SCAND_CONFIG", {}).get("value") == "/etc/hss-scand/config.toml", f"{where} deployment: HSS_SCAND_CONFIG")
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    check(set(mounts) <= set(vols), f"{where} deployment: a volume mount names no volume")
    check(vols.get("config", {}).get("configMap", {}).get("name") == cm.get("metadata", {}).get("name")
          and mounts.get("config") == "/etc/hss-scand", f"{where} deployment: the ConfigMap must be mounted at /etc/hss-scand")
    creds = load_yaml(f"{K0}/secret.example.yaml")
    check(vols.get("credentials", {}).get("secret", {}).get("secretName") == creds.get("metadata", {}).get("name"),
          f"{where} deployment: the AK/SK Secret's name differs from {K0}/secret.example.yaml")
    for key in ("ak_file", "sk_file"):
        path = cfg.get("credentials", {}).get(key, "")
        check(os.path.dirname(path) == mounts.get("credentials")
              and os.path.basename(path) in creds.get("stringData", {}),
              f"{where} ConfigMap: credentials.{key} must be a key of the mounted Secret")
    check(cfg.get("credentials", {}).get("source") == "file", f"{where} ConfigMap: credentials.source = \"file\"")
    sp = (svc.get("spec", {}).get("ports") or [{}])[0]
    check(sp.get("port") == 9794 and sp.get("name") == "metrics", f"{where} service: port 9794 named metrics")
    check(svc.get("spec", {}).get("selector") == pod_labels, f"{where} service: the selector must match the pod's labels")
    check(svc.get("metadata", {}).get("annotations", {}).get("prometheus.io/port") == "9794", f"{where} service: prometheus.io annotations")
    db_url = cenv.get("HSS_SCAND__DATABASE__URL", {})

    if not replicas:
        pvcs = by_kind.get("PersistentVolumeClaim") or [{}]
        pvc = pvcs[0]
        check(spec.get("replicas") == 1, f"{where} deployment: replicas must be 1 (one SQLite writer)")
        check(spec.get("strategy", {}).get("type") == "Recreate", f"{where} deployment: strategy must be Recreate")
        check((db_url.get("value") or "").startswith("sqlite:///var/lib/hss-scand/"), f"{where} deployment: database under /var/lib/hss-scand")
        check(mounts.get("state") == "/var/lib/hss-scand"
              and vols.get("state", {}).get("persistentVolumeClaim", {}).get("claimName") == pvc.get("metadata", {}).get("name"),
              f"{where} deployment: the PVC must be mounted at /var/lib/hss-scand")
        check("ReadWriteOnce" in pvc.get("spec", {}).get("accessModes", []), f"{where} pvc: ReadWriteOnce")
        return cfg, svc

    # Replicas: PostgreSQL from a Secret, no state volume, a rollout that keeps a standby, a
    # disruption budget, spread over nodes.
    check(spec.get("replicas", 1) >= 2, f"{where} deployment: at least two replicas")
    strategy = spec.get("strategy", {})
    check(strategy.get("type") == "RollingUpdate" and strategy.get("rollingUpdate", {}).get("maxUnavailable") == 0
          and strategy.get("rollingUpdate", {}).get("maxSurge", 0) not in (0, "0%"),
          f"{where} deployment: RollingUpdate with maxUnavailable 0 and a surge")
    check(not by_kind.get("PersistentVolumeClaim"), f"{where}: no PVC (the state is in PostgreSQL)")
    check(not any("persistentVolumeClaim" in v for v in vols.values()) and "/var/lib/hss-scand" not in mounts.values(),
          f"{where} deployment: no state volume")
    ref = db_url.get("valueFrom", {}).get("secretKeyRef", {})
    check("value" not in db_url and ref, f"{where} deployment: HSS_SCAND__DATABASE__URL must come from a secretKeyRef")
    db_secret = load_yaml(f"{K}/secret.example.yaml")
    check(ref.get("name") == db_secret.get("metadata", {}).get("name"),
          f"{where} deployment: the database Secret's name differs from secret.example.yaml")
    example_url = db_secret.get("stringData", {}).get(ref.get("key"), "")
    m = re.fullmatch(r"(postgres|postgresql)://([^:@/]+):([^@/]+)@([^/:]+)(:\d+)?/\w+", example_url)
    check(m, f"{where}/secret.example.yaml: key {ref.get('key')} must be a postgres:// URL with user, password, host and database")
    check(m and m.group(3).startswith("REPLACE-"), f"{where}/secret.example.yaml: the password must be a REPLACE-... placeholder")
    anti = pod.get("affinity", {}).get("podAntiAffinity", {}).get("preferredDuringSchedulingIgnoredDuringExecution", [])
    check(any(a.get("podAffinityTerm", {}).get("topologyKey") == "kubernetes.io/hostname"
              and a.get("podAffinityTerm", {}).get("labelSelector", {}).get("matchLabels") == pod_labels for a in anti),
          f"{where} deployment: preferred pod anti-affinity across nodes (kubernetes.io/hostname) on the pod's labels")
    pdbs = by_kind.get("PodDisruptionBudget") or [{}]
    pdb = pdbs[0].get("spec", {})
    check(pdb.get("selector", {}).get("matchLabels") == pod_labels, f"{where} pdb: the selector must match the pod's labels")
    check(pdb.get("minAvailable") == 1 or pdb.get("maxUnavailable") == 1, f"{where} pdb: one pod at a time (minAvailable 1)")
    return cfg, svc


K0 = "deploy/kubernetes"
single_cfg, single_svc = k8s_variant(K0, replicas=False)
replicas_cfg, replicas_svc = k8s_variant(f"{K0}/replicas", replicas=True)
check(replicas_svc == single_svc, f"{K0}/replicas/service.yaml must be the same as {K0}/service.yaml")
for section in set(single_cfg) | set(replicas_cfg):
    if section != "daemon":
        check(single_cfg.get(section) == replicas_cfg.get(section),
              f"{K0}/replicas/configmap.yaml: [{section}] differs from {K0}/configmap.yaml (only [daemon] may)")

# The leadership alerts against the lease: no leader for twice the longest TTL of the kit.
ttl = max(check_lease(c, w) for c, w in ((DEFAULTS, "config/default.toml"), (replicas_cfg, f"{K0}/replicas")))
no_leader = rules.get("HssScandNoLeader", {})
check(seconds(no_leader.get("for", "0s")) >= 2 * ttl, f"alerts.yml HssScandNoLeader: for must be at least twice lease_ttl ({ttl}s)")
check("hss_scand_leader" in rules.get("HssScandMultipleLeaders", {}).get("expr", ""), "alerts.yml: HssScandMultipleLeaders expected")

# ---------------------------------------------------------------------------------------------
# Container image: the Dockerfile and what its build context must hold.
D = "deploy/container/Dockerfile"
instructions = []
for line in re.sub(r"\\\n", " ", open(D).read()).splitlines():
    if line.strip() and not line.lstrip().startswith("#"):
        word, _, rest = line.strip().partition(" ")
        instructions.append((word.upper(), rest.strip()))
froms = [rest for word, rest in instructions if word == "FROM"]
first_from = next(i for i, (w, _) in enumerate(instructions) if w == "FROM")
check(any(w == "ARG" and r.startswith("RUST_VERSION=") for w, r in instructions[:first_from]),
      "Dockerfile: ARG RUST_VERSION before the first FROM")
for f in froms:
    if f.startswith("rust:"):
        check(f.startswith("rust:${RUST_VERSION}-"), f"Dockerfile: build stage {f!r} must use ${{RUST_VERSION}}")
check(froms and not froms[-1].startswith("rust:"), "Dockerfile: the runtime stage must not be the Rust image")
runtime = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM"):]
users = [r for w, r in runtime if w == "USER"]
check(users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), "Dockerfile: the runtime USER must be a numeric non-root uid")
last = {w: r for w, r in runtime}
check(json.loads(last.get("ENTRYPOINT", "[]")) == ["/usr/local/bin/hss-scand"], "Dockerfile: ENTRYPOINT [\"/usr/local/bin/hss-scand\"]")
check(json.loads(last.get("CMD", "[]")) == ["run"], "Dockerfile: CMD [\"run\"]")
check("9794" in last.get("EXPOSE", ""), "Dockerfile: EXPOSE 9794")
check("/var/lib/hss-scand" in last.get("VOLUME", ""), "Dockerfile: VOLUME /var/lib/hss-scand")
if "HEALTHCHECK" in last:
    hc = last["HEALTHCHECK"]
    check(json.loads(hc[hc.index("CMD") + 3:].strip()), "Dockerfile: HEALTHCHECK CMD must be a JSON array")
builds = [r for w, r in instructions if w == "RUN" and "cargo build" in r]
check(builds and all(s in builds[0] for s in ("--release", "--locked", "--bin hss-scand", "--bin hss-sim")),
      "Dockerfile: cargo build --release --locked --bin hss-scand --bin hss-sim")
ignore = [l.strip() for l in open(D + ".dockerignore") if l.strip() and not l.startswith("#")]
allowed = [p[1:].rstrip("/") for p in ignore if p.startswith("!")]
check(ignore and ignore[0] == "*", "Dockerfile.dockerignore: expected an allow-list starting with *")
copied = []
for w, r in instructions:
    if w == "COPY" and "--from=" not in r:
        for src in shlex.split(r)[:-1]:
            copied.append(src.rstrip("/"))
            check(os.path.exists(src), f"Dockerfile: COPY source {src} does not exist")
            check(src.rstrip("/") in allowed, f"Dockerfile: COPY source {src} is excluded by the .dockerignore")


def in_context(path):
    path = os.path.normpath(path)
    return any(path == c or path.startswith(c + "/") for c in copied)


with open("Cargo.toml", "rb") as f:
    manifest = tomllib.load(f)
needed = ["Cargo.toml", "Cargo.lock", "build.rs", manifest.get("lib", {}).get("path", "src/lib.rs")]
needed += [b["path"] for b in manifest.get("bin", []) if "path" in b]
for b in manifest.get("bench", []):
    needed.append(b.get("path") or next((p for p in (f"benches/{b['name']}.rs", f"benches/{b['name']}/main.rs") if os.path.exists(p)), f"benches/{b['name']}.rs"))
for t in manifest.get("test", []) + manifest.get("example", []):
    needed.append(t.get("path", "?"))
for src in glob.glob("src/**/*.rs", recursive=True):
    text = open(src).read()
    for m in re.finditer(r'include_(?:str|bytes)!\(\s*"([^"]+)"', text):
        needed.append(os.path.join(os.path.dirname(src), m.group(1)))
    for m in re.finditer(r'migrate!\(\s*"([^"]+)"', text):
        needed.append(m.group(1))
for path in needed:
    check(os.path.exists(path) and in_context(path), f"Dockerfile: the build needs {os.path.normpath(path)}, which is not copied")

# ---------------------------------------------------------------------------------------------
if failures:
    print(f"{len(failures)} of {checked} checks failed:")
    for f in failures:
        print("  FAIL " + f)
    sys.exit(1)
print(f"all {checked} checks passed")
