"""The bundled MediaNest demo stack: build its images from scratch, bring it up, take it down.

No registry is needed: `medianest/runtime:demo` is assembled FROM scratch from
the host's Debian binaries (busybox-static, redis-server, redis-cli and the
libraries `ldd` lists), `medianest/app:demo` and the frontend image are built
on top of it with `pull=False`. Compose runs as a subprocess with argv from
`orchestrator.compose`; readiness waits go through tenacity.

The tracked `examples/medianest` is source, never live state: `rollout demo up`
copies it once to `demo_dir()` (under $XDG_STATE_HOME) and the demo inventory
points there, so plans patch that copy and a checkout stays clean.
"""
from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
import tenacity
from ruamel.yaml import YAML

from .compose import ComposeProject, compose_argv
from .errors import HostError, InputError

RUNTIME_IMAGE = "medianest/runtime:demo"
APP_IMAGE = "medianest/app:demo"
DEFAULT_FRONTEND_IMAGE = "medianest/frontend:latest"
FRONTEND_TARGET = "frontend-production"
CONTEXT_LABEL = "org.medianest.demo.context-sha256"
APT_PACKAGES = ("busybox-static", "redis-server", "redis-tools")
SERVICES = ("app", "frontend", "redis")
CONTAINER_PORTS = {"app": 3000, "frontend": 3000, "redis": 6379}

# Extra files of the runtime image's root file system (path in image -> content).
_ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/nsswitch.conf": "hosts: files dns\n",
}

Log = Callable[[str], None]


class DemoError(HostError):
    """The demo stack could not be built, started or probed; the message says why."""


# --------------------------------------------------------------------------- where it lives

EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "medianest"
COMPOSE_FILE = "docker-compose.production.yml"
DEMO_DIR_ENV = "ROLLOUT_DEMO_DIR"
DEMO_PROJECT_ENV = "ROLLOUT_DEMO_PROJECT"
DEFAULT_PROJECT = "medianest"
# Written into a copy made by `materialize`: the sha256 of each tracked file as copied.
SOURCE_MANIFEST = ".rollout-demo-source.json"
# Live state a copy of the example never takes along (and a manifest never lists).
LIVE_STATE = (".build", ".rollout", ".env", "*.backup", "*.rollout-tmp", SOURCE_MANIFEST)
# inventory host data key -> (compose variable of docker-compose.production.yml, default)
DEMO_PORTS = {"app_port": ("MEDIANEST_APP_PORT", 18080), "frontend_port": ("MEDIANEST_FRONTEND_PORT", 18081),
              "redis_port": ("MEDIANEST_REDIS_PORT", 16379)}


def demo_dir(environ: dict[str, str] | None = None) -> Path:
    """Where the live demo stack lives: $ROLLOUT_DEMO_DIR, else $XDG_STATE_HOME/rollout/demo/medianest
    (XDG_STATE_HOME defaults to ~/.local/state). Never the tracked examples/medianest: plans change it."""
    env = os.environ if environ is None else environ
    if env.get(DEMO_DIR_ENV):
        return Path(env[DEMO_DIR_ENV]).expanduser().absolute()
    state = env.get("XDG_STATE_HOME", "")
    if not state.startswith("/"):  # the XDG spec: a relative value is invalid and ignored
        state = str(Path.home() / ".local" / "state")
    return Path(state) / "rollout" / "demo" / "medianest"


def demo_host_data(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Host data of the bundled demo stack (inventories/demo.py): `demo_dir()`, compose project
    $ROLLOUT_DEMO_PROJECT (default medianest), ports and frontend tag from the same MEDIANEST_*
    variables the compose file reads (defaults 18080, 18081, 16379, medianest/frontend:latest)."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {
        "project_dir": str(demo_dir(env)),
        "compose_file": COMPOSE_FILE,
        "compose_project": env.get(DEMO_PROJECT_ENV) or DEFAULT_PROJECT,
    }
    for key, (var, default) in DEMO_PORTS.items():
        value = env.get(var) or str(default)
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise ValueError(f"{var}={value!r} is not a TCP port number")
        data[key] = int(value)
    data["frontend_image"] = env.get("MEDIANEST_FRONTEND_IMAGE") or DEFAULT_FRONTEND_IMAGE
    return data


def _is_live_state(rel: Path) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in rel.parts for pattern in LIVE_STATE)


def _source_files(root: Path) -> dict[str, str]:
    """sha256 of every file of the tracked example, by relative path (live state left out)."""
    return {
        str(p.relative_to(root)): _sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not _is_live_state(p.relative_to(root))
    }


def is_materialized(target: Path) -> bool:
    """True when `target` holds a demo stack (its compose file)."""
    return (Path(target) / COMPOSE_FILE).is_file()


def check_set_up(host_data: dict[str, dict[str, Any]], inventory_path: str | Path) -> None:
    """Raise InputError when an inventory's @local host is the demo stack and `demo up` has not set it
    up yet: every command but `demo up` needs it there (clear advice instead of a missing-file error)."""
    here = demo_dir()
    data = host_data.get("@local")
    if data and Path(str(data.get("project_dir", ""))) == here and not is_materialized(here):
        raise InputError(f"{inventory_path}: host @local: the demo stack is not set up at {here}: "
                         "run `rollout demo up` first", key="project_dir")


def source_changes(target: Path, source: Path = EXAMPLE_DIR) -> list[str]:
    """Files of the tracked example added, changed or removed since `target` was copied from it
    ([] when unchanged, or when `target` was not made by `materialize`)."""
    try:
        copied = json.loads((Path(target) / SOURCE_MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    now = _source_files(source)
    return sorted(rel for rel in set(now) | set(copied) if now.get(rel) != copied.get(rel))


def materialize(target: Path, source: Path = EXAMPLE_DIR, *, log: Log = print) -> bool:
    """Copy the tracked example to `target` when no stack is there yet; True when it copied.

    An existing stack is never overwritten: plans changed it and its journal is there. When
    the tracked example changed since the copy was made, say which files and how to start over.
    The copy is made next to `target` and renamed into place, so it is whole or absent.
    """
    target = Path(target)
    if is_materialized(target):
        changed = source_changes(target, source)
        if changed:
            shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
            log(f"note: {source} changed since the demo stack at {target} was copied from it ({shown}); "
                "the running stack keeps its own copy, which plans may have changed. To start over from the "
                "tracked files: rollout demo down --purge && rollout demo up")
        return False
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DemoError(f"{target} exists but holds no {COMPOSE_FILE}, so it is not a demo stack: "
                        f"remove it, or set {DEMO_DIR_ENV} to another directory")
    if not (source / COMPOSE_FILE).is_file():
        raise DemoError(f"the tracked demo stack is missing: no {source / COMPOSE_FILE}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        copy = staging / target.name
        shutil.copytree(source, copy, ignore=lambda d, names: [n for n in names if _is_live_state(Path(n))])
        manifest = {"source": str(source), "files": _source_files(source)}
        (copy / SOURCE_MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if target.exists():
            target.rmdir()  # empty (checked above)
        os.rename(copy, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"demo stack set up at {target} (copied from {source})")
    return True


def check_purgeable(target: Path) -> None:
    """Raise DemoError unless `target` is absent or was made by `materialize` (it has the manifest)."""
    if Path(target).exists() and not (Path(target) / SOURCE_MANIFEST).is_file():
        raise DemoError(f"{target} was not set up by `rollout demo up` (no {SOURCE_MANIFEST}): not deleting it")


def purge(target: Path, frontend_image: str, *, log: Log = print) -> None:
    """Delete a stack directory made by `materialize` (its journal too) and the frontend image's tags,
    so the next `demo up` starts from the tracked files. A directory `materialize` did not make
    (no manifest) is never deleted."""
    target = Path(target)
    check_purgeable(target)
    if target.exists():
        shutil.rmtree(target)
        log(f"deleted {target}")
    repository = frontend_image.rsplit(":", 1)[0] if ":" in frontend_image.rsplit("/", 1)[-1] else frontend_image
    client = docker.from_env()
    try:  # day2 leaves other tags of the same repository (the kept :stable image)
        for image in client.images.list(name=repository):
            for tag in image.tags:
                if tag.rsplit(":", 1)[0] == repository:
                    try:
                        client.images.remove(tag, noprune=True)
                        log(f"removed image tag {tag}")
                    except docker.errors.APIError as exc:
                        log(f"kept image tag {tag}: {exc.explanation or exc}")
    finally:
        client.close()


# --------------------------------------------------------------------------- images


# Where the host binaries are looked for first (Debian paths), then on PATH.
BINARY_CANDIDATES: dict[str, tuple[str, ...]] = {
    "busybox": ("/bin/busybox", "/usr/bin/busybox"),  # busybox-static
    "redis-server": ("/usr/bin/redis-server",),  # redis-server
    "redis-cli": ("/usr/bin/redis-cli",),  # redis-tools
}


def _find_binary(name: str) -> Path | None:
    for candidate in BINARY_CANDIDATES.get(name, ()):
        if Path(candidate).exists():
            return Path(candidate)
    found = shutil.which(name)
    return Path(found) if found else None


def _ldd(binary: Path) -> list[Path]:
    """Shared libraries and loader `ldd` lists for a binary ([] for a static one)."""
    proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if proc.returncode != 0 or "not a dynamic executable" in proc.stdout + proc.stderr:
        return []
    libs: list[Path] = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].strip().split(" (", 1)[0].strip()
        else:  # the loader: "/lib64/ld-linux-x86-64.so.2 (0x...)"
            target = line.split(" (", 1)[0].strip()
        if target.startswith("/"):
            libs.append(Path(target))
        elif target == "not found":
            raise DemoError(f"{binary}: `ldd` cannot resolve a library: {line}")
    return libs


def runtime_files() -> dict[str, Path]:
    """Files of the runtime image: path inside the image -> host file (symlinks are dereferenced)."""
    found = {name: _find_binary(name) for name in BINARY_CANDIDATES}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise DemoError(
            f"the demo images are built from host binaries and {', '.join(missing)} is missing; "
            f"install them with: sudo apt-get install -y {' '.join(APT_PACKAGES)}"
        )
    busybox, redis_server, redis_cli = (found[n] for n in ("busybox", "redis-server", "redis-cli"))
    assert busybox and redis_server and redis_cli
    files: dict[str, Path] = {
        "bin/busybox": busybox.resolve(),
        # copied dereferenced under its own name: Debian's redis-server is a symlink to
        # redis-check-rdb and picks its personality from argv[0]
        "usr/bin/redis-server": redis_server.resolve(),
        "usr/bin/redis-cli": redis_cli.resolve(),
    }
    for binary in (busybox, redis_server, redis_cli):
        for lib in _ldd(binary):
            files.setdefault(str(lib).lstrip("/"), lib.resolve())
    return files


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tree_files(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def _context_hash(files: dict[str, Path], extra: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for rel in sorted(files):
        path = files[rel]
        digest.update(f"{rel}\0{path.stat().st_mode & 0o777:o}\0{_sha256_file(path)}\n".encode())
    for key in sorted(extra):
        digest.update(f"{key}\0{extra[key]}\n".encode())
    return digest.hexdigest()


def _image(client: docker.DockerClient, ref: str) -> Any | None:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def _build(client: docker.DockerClient, log: Log, *, path: Path, tag: str, **kwargs: Any) -> Any:
    started = time.monotonic()
    previous = _image(client, tag)
    try:
        image, _ = client.images.build(path=str(path), tag=tag, pull=False, rm=True, forcerm=True, **kwargs)
    except docker.errors.BuildError as exc:
        tail = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in list(exc.build_log)[-15:])
        raise DemoError(f"building {tag} from {path} failed: {exc.msg}\n{tail}") from exc
    except docker.errors.APIError as exc:
        raise DemoError(f"building {tag} from {path} failed: {exc.explanation or exc}") from exc
    log(f"built {tag} ({image.short_id}) in {time.monotonic() - started:.1f}s")
    if previous is not None and previous.id != image.id:
        try:  # the image this build replaced under `tag`, unless a container or tag still uses it
            client.images.remove(previous.id)
        except docker.errors.APIError:
            pass
    return image


def build_runtime_image(client: docker.DockerClient, project_dir: Path, *, log: Log = print) -> Any:
    """Build `medianest/runtime:demo` FROM scratch unless an image with the same inputs exists."""
    files = runtime_files()
    dockerfile = project_dir / "runtime" / "Dockerfile"
    wanted = _context_hash(files, {"Dockerfile": dockerfile.read_text(), **_ETC_FILES})
    current = _image(client, RUNTIME_IMAGE)
    if current is not None and current.labels.get(CONTEXT_LABEL) == wanted:
        return current
    context = project_dir / ".build" / "runtime"
    shutil.rmtree(context, ignore_errors=True)
    rootfs = context / "rootfs"
    for rel, src in files.items():
        dest = rootfs / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        dest.chmod(src.stat().st_mode & 0o777)
    for rel, text in _ETC_FILES.items():
        (rootfs / rel).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / rel).write_text(text)
    shutil.copyfile(dockerfile, context / "Dockerfile")
    return _build(client, log, path=context, tag=RUNTIME_IMAGE, labels={CONTEXT_LABEL: wanted})


def build_app_image(client: docker.DockerClient, project_dir: Path, runtime_id: str, *, log: Log = print) -> Any:
    """Build `medianest/app:demo` on the runtime image unless it is current."""
    app_dir = project_dir / "app"
    wanted = _context_hash(_tree_files(app_dir), {"runtime": runtime_id})
    current = _image(client, APP_IMAGE)
    if current is not None and current.labels.get(CONTEXT_LABEL) == wanted:
        return current
    return _build(client, log, path=app_dir, tag=APP_IMAGE, labels={CONTEXT_LABEL: wanted})


def build_frontend_image(
    client: docker.DockerClient,
    project_dir: Path,
    tag: str,
    *,
    dockerfile: str = "Dockerfile",
    log: Log = print,
) -> Any:
    """Build the frontend (target `frontend-production`) from `frontend/` under `tag`, always."""
    return _build(client, log, path=project_dir / "frontend", tag=tag, dockerfile=dockerfile, target=FRONTEND_TARGET)


def build_images(project_dir: Path, frontend_image: str, *, log: Log = print) -> None:
    """Build runtime, app and (only if `frontend_image` does not exist yet) frontend images.

    Idempotent and fast when nothing changed: runtime and app carry a label with the
    hash of their inputs and are rebuilt only when it differs; an existing frontend tag
    is never overwritten (a rollout may have put a different image under it).
    """
    project_dir = Path(project_dir)
    client = docker.from_env()
    # Image tags are global: serialize builds of concurrent `demo up`s (and parallel test workers).
    lock = open(Path(tempfile.gettempdir()) / "rollout-demo-build.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runtime = build_runtime_image(client, project_dir, log=log)
        build_app_image(client, project_dir, runtime.id, log=log)
        if _image(client, frontend_image) is None:
            build_frontend_image(client, project_dir, frontend_image, log=log)
    finally:
        lock.close()
        client.close()


# --------------------------------------------------------------------------- compose

# inventory host data key -> compose variable of docker-compose.production.yml
HOST_DATA_ENV = {
    "app_port": "MEDIANEST_APP_PORT",
    "frontend_port": "MEDIANEST_FRONTEND_PORT",
    "redis_port": "MEDIANEST_REDIS_PORT",
    "frontend_image": "MEDIANEST_FRONTEND_IMAGE",
}


def project_for(host_data: dict[str, Any]) -> ComposeProject:
    """The compose project an inventory host's data describes (project_dir, compose_file, compose_project)."""
    return ComposeProject(
        str(host_data["project_dir"]),
        str(host_data.get("compose_file", "docker-compose.production.yml")),
        str(host_data.get("compose_project", "medianest")),
    )


def compose_env(host_data: dict[str, Any]) -> dict[str, str]:
    """Compose variables (MEDIANEST_*) for the ports and frontend tag in a host's data."""
    return {var: str(host_data[key]) for key, var in HOST_DATA_ENV.items() if host_data.get(key) not in (None, "")}


def run_compose(
    project: ComposeProject, args: list[str], env: dict[str, str] | None = None, *, log: Log = print
) -> subprocess.CompletedProcess[str]:
    """Run `compose <args>` in the project directory; raise DemoError with its output on failure."""
    argv = compose_argv() + list(args)
    proc = subprocess.run(
        argv, cwd=project.project_dir, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise DemoError(f"`{' '.join(argv)}` failed ({proc.returncode}):\n{proc.stderr.strip() or proc.stdout.strip()}")
    for line in proc.stderr.splitlines():
        if line.strip():
            log(line.rstrip())
    return proc


def resolved_config(project: ComposeProject, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose file as the compose tool resolves it (variables interpolated)."""
    proc = run_compose(project, project.config(), env, log=lambda _line: None)
    return YAML(typ="safe").load(proc.stdout) or {}


def _containers(client: docker.DockerClient, project_name: str, service: str | None = None) -> list[Any]:
    labels = [f"com.docker.compose.project={project_name}"]
    if service:
        labels.append(f"com.docker.compose.service={service}")
    return client.containers.list(all=True, filters={"label": labels})


def _host_port(container: Any, port: int) -> int:
    bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{port}/tcp") or []
    if not bindings:
        raise DemoError(f"{container.name}: container port {port} is not published")
    return int(bindings[0]["HostPort"])


def _http_ok(url: str) -> None:
    resp = requests.get(url, timeout=3)
    if resp.status_code != 200:
        raise DemoError(f"{url} answered {resp.status_code}: {resp.text[:200]}")


def _redis_ping(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as conn:
        conn.sendall(b"PING\r\n")
        reply = conn.recv(64)
    if not reply.startswith(b"+PONG"):
        raise DemoError(f"redis on 127.0.0.1:{port} answered {reply!r} to PING")


def wait_ready(project: ComposeProject, *, timeout: float = 60.0, log: Log = print) -> None:
    """Wait until app /api/health is 200, redis answers PING and frontend / is 200 (via 127.0.0.1)."""
    client = docker.from_env()
    try:
        ports: dict[str, int] = {}
        for service in SERVICES:
            found = [c for c in _containers(client, project.project_name, service) if c.status == "running"]
            if not found:
                raise DemoError(f"service {service} of project {project.project_name} has no running container")
            ports[service] = _host_port(found[0], CONTAINER_PORTS[service])
    finally:
        client.close()
    checks: list[tuple[str, Callable[[], None]]] = [
        ("redis PING", lambda: _redis_ping(ports["redis"])),
        ("app /api/health", lambda: _http_ok(f"http://127.0.0.1:{ports['app']}/api/health")),
        ("frontend /", lambda: _http_ok(f"http://127.0.0.1:{ports['frontend']}/")),
    ]
    for name, check in checks:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(timeout),
            wait=tenacity.wait_fixed(0.25),
            retry=tenacity.retry_if_exception_type((OSError, requests.RequestException, DemoError)),
            reraise=True,
        )
        try:
            retrying(check)
        except (OSError, requests.RequestException, DemoError) as exc:
            raise DemoError(f"{project.project_name}: {name} not ready after {timeout:.0f}s: {exc}") from exc
    log(f"{project.project_name}: app, frontend and redis are ready")


def broken_services(project: ComposeProject) -> dict[str, str]:
    """Services with a container that is not running, or runs without a host port its configuration
    publishes (`HostConfig.PortBindings` set, `NetworkSettings.Ports` empty: seen after the engine
    entered and left swarm mode, or after a network disconnect): service -> why.
    `compose up -d` leaves such a container alone, since its configuration did not change."""
    client = docker.from_env()
    try:
        broken: dict[str, str] = {}
        for c in _containers(client, project.project_name):
            service = c.labels.get("com.docker.compose.service", "")
            if c.labels.get("com.docker.compose.oneoff") == "True" or not service:
                continue
            if c.status != "running":
                broken[service] = f"{c.name} is {c.status}"
                continue
            wanted = c.attrs.get("HostConfig", {}).get("PortBindings") or {}
            published = c.attrs.get("NetworkSettings", {}).get("Ports") or {}
            lost = sorted(port for port, bindings in wanted.items() if bindings and not published.get(port))
            if lost:
                broken[service] = f"{c.name} lost its published port(s) {', '.join(lost)}"
        return broken
    finally:
        client.close()


def _recreate_broken(project: ComposeProject, env: dict[str, str], log: Log) -> None:
    broken = broken_services(project)
    if not broken:
        return
    for service, why in sorted(broken.items()):
        log(f"{service}: {why}; recreating it")
    run_compose(project, project.up(sorted(broken), recreate=True), env, log=log)


def up(
    project: ComposeProject,
    env: dict[str, str] | None = None,
    *,
    frontend_image: str | None = None,
    wait: bool = True,
    timeout: float = 60.0,
    log: Log = print,
) -> None:
    """Build what is missing, `compose up -d`, recreate what is broken, wait until every service answers.

    `env` overrides the process environment for compose (e.g. MEDIANEST_* ports);
    the frontend tag defaults to what compose resolves for the frontend service.
    A container that is stopped or lost its published ports is recreated from the
    compose file (`up -d --force-recreate` of its service only). A second call on a
    healthy stack changes nothing (same images, same containers).
    """
    env = dict(env or {})
    if frontend_image is None:
        services = resolved_config(project, env).get("services", {})
        frontend_image = (services.get("frontend") or {}).get("image") or DEFAULT_FRONTEND_IMAGE
    build_images(Path(project.project_dir), frontend_image, log=log)
    # Before `up`: a stopped container `up` cannot start again (its network is gone) is recreated instead.
    _recreate_broken(project, env, log)
    run_compose(project, project.up(), env, log=log)
    _recreate_broken(project, env, log)
    still = broken_services(project)
    if still:
        raise DemoError(f"{project.project_name}: recreated, still broken: "
                        + "; ".join(f"{service}: {why}" for service, why in sorted(still.items())))
    if wait:
        wait_ready(project, timeout=timeout, log=log)


def down(
    project: ComposeProject, env: dict[str, str] | None = None, *, volumes: bool = False, log: Log = print
) -> None:
    """`compose down` (with `-v` when asked); images are kept. Without the compose file (the stack's
    directory is gone) the project's containers and networks are removed by their compose labels."""
    if is_materialized(Path(project.project_dir)):
        run_compose(project, project.down() + (["-v"] if volumes else []), env, log=log)
        return
    client = docker.from_env()
    try:
        containers = _containers(client, project.project_name)
        for c in containers:
            c.remove(force=True, v=volumes)
            log(f"removed {c.name} (no {COMPOSE_FILE} in {project.project_dir})")
        for network in client.networks.list(filters={"label": f"com.docker.compose.project={project.project_name}"}):
            network.remove()
            log(f"removed network {network.name}")
        if not containers:
            log(f"no demo stack at {project.project_dir} and no containers of project {project.project_name}: "
                "nothing to take down")
    finally:
        client.close()


def status(project: ComposeProject) -> list[dict[str, Any]]:
    """One dict per container of the project: service, container, name, image, state, health, ports."""
    client = docker.from_env()
    try:
        rows = []
        for c in _containers(client, project.project_name):
            ports = {
                port: [f"{b['HostIp']}:{b['HostPort']}" for b in bindings]
                for port, bindings in (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).items()
                if bindings
            }
            state = c.attrs.get("State", {})
            rows.append(
                {
                    "service": c.labels.get("com.docker.compose.service", ""),
                    "container": c.short_id,
                    "id": c.id,
                    "name": c.name,
                    "image": c.attrs.get("Config", {}).get("Image", ""),
                    "state": state.get("Status", c.status),
                    "health": (state.get("Health") or {}).get("Status"),
                    "ports": ports,
                }
            )
        return sorted(rows, key=lambda r: (r["service"], r["name"]))
    finally:
        client.close()
