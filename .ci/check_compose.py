"""Checks docker-compose.yml without a Docker engine: it parses, names the
services, image, ports, health checks and environment overrides the README
documents, the demo upstream and the migrator's mounted config agree on the
upstream's address, and the Dockerfile builds every binary the file runs."""
import pathlib
import sys
from urllib.parse import urlparse

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
compose = yaml.safe_load((root / "docker-compose.yml").read_text())
dockerfile = (root / "Dockerfile").read_text()
errors = []
IMAGE = "avni-reporting/services:latest"


def expect(cond, message):
    if not cond:
        errors.append(message)


def published(svc):
    return [str(p) for p in svc.get("ports", [])]


def words(command):
    return command if isinstance(command, list) else str(command).split()


def flag(command, name):
    """The value after `name` in a command list, or None."""
    items = words(command)
    return items[items.index(name) + 1] if name in items[:-1] else None


services = compose.get("services", {})
expect(set(services) >= {"postgres", "etl-service", "migrator-service", "demo-upstream"},
       f"services are {sorted(services)}")
expect(services.get("postgres", {}).get("image", "").startswith("postgres:15"),
       "postgres must use the postgres:15 image")
expect("healthcheck" in services.get("postgres", {}), "postgres needs a health check")

for name, port, metrics in (("etl-service", 50051, 9464), ("migrator-service", 50052, 9465)):
    svc = services.get(name, {})
    env = svc.get("environment", {})
    for key in ("DATABASE_URL", "GRPC_LISTEN", "AUTH_TOKENS", "METRICS_LISTEN"):
        expect(key in env, f"{name}: environment lacks {key}")
    expect(str(env.get("GRPC_LISTEN", "")).endswith(f":{port}"), f"{name}: GRPC_LISTEN must use port {port}")
    expect(f"{port}:{port}" in published(svc), f"{name}: must publish {port}")
    expect(str(env.get("METRICS_LISTEN", "")) == f"0.0.0.0:{metrics}",
           f"{name}: METRICS_LISTEN must be 0.0.0.0:{metrics}")
    expect(f"{metrics}:{metrics}" in published(svc), f"{name}: must publish metrics port {metrics}")
    expect(svc.get("image") == IMAGE, f"{name}: image is {svc.get('image')}")
    expect(svc.get("build", {}).get("dockerfile") == "Dockerfile", f"{name}: must build from Dockerfile")
    health = svc.get("healthcheck", {}).get("test", [])
    expect(health == ["CMD", name, "health-check"], f"{name}: health check is {health}")
    expect(svc.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
           f"{name}: must wait for a healthy postgres")
    command = " ".join(svc.get("command", []))
    expect(f"{name} migrate" in command and f"{name} serve" in command,
           f"{name}: command must migrate then serve, got {command!r}")
    expect(f"--bin {name}" in dockerfile, f"Dockerfile does not build {name}")

# The demo upstream: the fake-upstream binary from the same image, listening
# on all interfaces, with a health check the migrator waits for.
upstream = services.get("demo-upstream", {})
command = upstream.get("command", [])
listen = flag(command, "--listen") or ""
upstream_port = listen.rsplit(":", 1)[-1]
expect(words(command)[:1] == ["fake-upstream"], f"demo-upstream: command is {command!r}")
expect(listen.startswith("0.0.0.0:"), f"demo-upstream: must listen on 0.0.0.0, got {listen!r}")
expect((flag(command, "--generate") or flag(command, "--real-forms") or "").isdigit(),
       "demo-upstream: must --generate submissions or serve --real-forms")
expect(f"{upstream_port}:{upstream_port}" in published(upstream), f"demo-upstream: must publish {upstream_port}")
expect(upstream.get("image") == IMAGE, f"demo-upstream: image is {upstream.get('image')}")
health = upstream.get("healthcheck", {}).get("test", [])
expect(health[:2] == ["CMD", "fake-upstream"] and "--health-check" in health
       and flag(health, "--listen") == listen,
       f"demo-upstream: health check is {health}")
expect("--bin fake-upstream" in dockerfile, "Dockerfile does not build fake-upstream")
expect("--bin avni-generate" in dockerfile, "Dockerfile does not build avni-generate")

# The migrator reads its sources from a mounted config that points at the
# demo upstream by its compose service name.
migrator = services.get("migrator-service", {})
expect(migrator.get("depends_on", {}).get("demo-upstream", {}).get("condition") == "service_healthy",
       "migrator-service: must wait for a healthy demo-upstream")
config_path = migrator.get("environment", {}).get("MIGRATOR_CONFIG", "")
mounts = {}
for volume in migrator.get("volumes", []):
    parts = str(volume).split(":")
    if len(parts) >= 2:
        mounts[parts[1]] = parts[0]
expect(config_path in mounts, f"migrator-service: MIGRATOR_CONFIG {config_path!r} is not mounted ({mounts})")
host_file = root / mounts.get(config_path, "missing")
if host_file.is_file():
    config = yaml.safe_load(host_file.read_text()) or {}
    sources = config.get("sources", [])
    expect(len(sources) == 1, f"{host_file.name}: one source, got {sources}")
    url = urlparse(sources[0].get("url", "")) if sources else urlparse("")
    expect(url.hostname == "demo-upstream" and str(url.port) == upstream_port
           and url.path == "/all-form-submissions",
           f"{host_file.name}: the source must be http://demo-upstream:{upstream_port}/all-form-submissions")
    # The form tables: the shipped set, mounted where the config names it.
    for key, path in [("form_migrations.directory", (config.get("form_migrations") or {}).get("directory")),
                      ("form_mapping_file", config.get("form_mapping_file"))]:
        mount = next((m for m in mounts if path and (path == m or path.startswith(m + "/"))), None)
        expect(mount is not None, f"{host_file.name}: {key} {path!r} is not under a mounted folder")
        if mount is not None:
            expect((root / mounts[mount] / path[len(mount):].lstrip("/")).exists(),
                   f"{host_file.name}: {key} {path!r} does not exist on the host")
else:
    errors.append(f"migrator-service: {host_file} does not exist")

if errors:
    print("docker-compose.yml check failed:")
    for e in errors:
        print("  -", e)
    sys.exit(1)
print(f"docker-compose.yml OK: {', '.join(sorted(services))}")
