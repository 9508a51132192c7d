"""Checks docker-compose.yml without a Docker engine: it parses, names the
services, image, ports, health checks and environment overrides the README
documents, and the Dockerfile builds the binaries it runs."""
import pathlib
import sys

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
compose = yaml.safe_load((root / "docker-compose.yml").read_text())
dockerfile = (root / "Dockerfile").read_text()
errors = []


def expect(cond, message):
    if not cond:
        errors.append(message)


services = compose.get("services", {})
expect(set(services) >= {"postgres", "etl-service", "migrator-service"},
       f"services are {sorted(services)}")
expect(services.get("postgres", {}).get("image", "").startswith("postgres:15"),
       "postgres must use the postgres:15 image")
expect("healthcheck" in services.get("postgres", {}), "postgres needs a health check")

for name, port in (("etl-service", 50051), ("migrator-service", 50052)):
    svc = services.get(name, {})
    env = svc.get("environment", {})
    for key in ("DATABASE_URL", "GRPC_LISTEN", "AUTH_TOKENS"):
        expect(key in env, f"{name}: environment lacks {key}")
    expect(str(env.get("GRPC_LISTEN", "")).endswith(f":{port}"), f"{name}: GRPC_LISTEN must use port {port}")
    expect(f"{port}:{port}" in [str(p) for p in svc.get("ports", [])], f"{name}: must publish {port}")
    expect(svc.get("image") == "avni-reporting/services:latest", f"{name}: image is {svc.get('image')}")
    expect(svc.get("build", {}).get("dockerfile") == "Dockerfile", f"{name}: must build from Dockerfile")
    health = svc.get("healthcheck", {}).get("test", [])
    expect(health == ["CMD", name, "health-check"], f"{name}: health check is {health}")
    expect(svc.get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
           f"{name}: must wait for a healthy postgres")
    command = " ".join(svc.get("command", []))
    expect(f"{name} migrate" in command and f"{name} serve" in command,
           f"{name}: command must migrate then serve, got {command!r}")
    expect(f"--bin {name}" in dockerfile, f"Dockerfile does not build {name}")

if errors:
    print("docker-compose.yml check failed:")
    for e in errors:
        print("  -", e)
    sys.exit(1)
print(f"docker-compose.yml OK: {', '.join(sorted(services))}")
