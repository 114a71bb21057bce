"""Step `image_build`: build an image on the host's engine, keeping the previous one.

Before building, the undo record names the image ID currently behind the tag
and that image is tagged `<repo>:<keep_as>` (default `stable`, the operator's
"last known good") and `<repo>:rollout-<run id>` (the run's own keep tag). The
keep_as tag moves on at the next run; the run's tag stays until that run is
rolled back, so its image is never left untagged (prunable) while the journal
points at it. Rollback points the tag back at that ID: no rebuild, and it is
idempotent; then it drops the run's tag. A rollback whose image is gone (its
tags removed by hand and the image pruned) is refused before anything changes,
with the way out: rebuild it, tag it as the run's tag, roll back again. The
services that run the tag are recreated by the `recreate` step, whose own
rollback runs last (after the tag is back).

The build goes through the Docker SDK's low-level API (`api.build(...,
decode=True)`); its log is streamed to `<run dir>/build.log` on the host and a
failed build fails the step with the log's last lines.
"""
from __future__ import annotations

import io
import re
import shlex
import time
from typing import Any, Callable, Iterator

from orchestrator import composefile, known_secrets
from orchestrator.changes import Change
from orchestrator.secret_names import redact_value
from orchestrator.errors import HostError, InputError, StepFailed
from orchestrator.hosts import Target
from orchestrator.units import parse_duration
from orchestrator.steps.base import Comparison, Difference, Step, StepContext
from orchestrator.steps.file_swap import resolve_in_project, static_path_issues

DEFAULT_KEEP_AS = "stable"
DEFAULT_TIMEOUT = "30m"
LOG_TAIL_LINES = 20
FLUSH_EVERY = 2.0  # seconds between copies of the build log to the host
PROGRESS_EVERY = 2.0  # seconds between progress lines (first and last step always shown)

STEP_LINE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
STAGE_LINE = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*\S+\s+AS\s+(\S+)\s*$", re.IGNORECASE | re.MULTILINE)
VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


# -- image references ----------------------------------------------------------

def split_ref(ref: str) -> tuple[str, str]:
    """'medianest/frontend' → ('medianest/frontend', 'latest'); registry ports are kept."""
    from docker.utils import parse_repository_tag

    repo, tag = parse_repository_tag(ref)
    return repo, tag or "latest"


def normalize_ref(ref: str) -> str:
    if "@" in ref:
        return ref
    repo, tag = split_ref(ref)
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix):]
            break
    return f"{repo}:{tag}"


def image_id(target: Target, ref: str) -> str | None:
    """The ID of the image behind a reference, None when there is none."""
    import docker.errors

    try:
        return target.docker.images.get(ref).id
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise HostError(f"cannot inspect image {ref}: {exc.explanation or exc}", host=target.name) from exc


def short(image: str | None) -> str:
    return image.split(":", 1)[-1][:12] if image else "none"


def run_tag(tag: str, run_id: str) -> str:
    """`<repo>:rollout-<run id>`: the per-run keep tag (a Docker tag: [A-Za-z0-9_.-], ≤ 128)."""
    return f"{split_ref(tag)[0]}:" + re.sub(r"[^A-Za-z0-9_.-]", "-", f"rollout-{run_id}")[:128]


# -- compose: which services run a tag -------------------------------------------

def parse_env_file(text: str) -> dict[str, str]:
    """A compose `.env` file: KEY=VALUE lines, `#` comments, optional quotes and `export`."""
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `$VAR` and `$$`."""
    def sub(m: re.Match) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, default = m.group(3), m.group(4) or ""
        current = env.get(name)
        if op == ":-":
            return current if current else default
        if op == "-":
            return current if current is not None else default
        return current or ""  # ${VAR}, $VAR, and ${VAR:?err} when set

    return VARIABLE.sub(sub, value)


def services_using(target: Target, tag: str) -> list[str]:
    """Services of the compose file whose image is `tag`, after interpolation with the
    project's `.env` file (then the defaults written in the file).

    The compose tool also reads the shell environment of whoever runs it; rollout
    runs compose through a non-interactive shell, so the `.env` file is what counts.
    """
    path = target.path(target.data["compose_file"])
    raw = target.read_file(path)
    if raw is None:
        raise InputError(f"compose file {path} does not exist", key="compose_file", host=target.name)
    env_raw = target.read_file(target.path(".env"))
    env = parse_env_file(env_raw.decode("utf-8", "replace")) if env_raw else {}
    doc = composefile.load(raw.decode("utf-8"), f"{target.name}:{path}")
    want = normalize_ref(tag)
    return [name for name, svc in doc["services"].items()
            if isinstance(svc, dict) and isinstance(svc.get("image"), str)
            and normalize_ref(interpolate(svc["image"], env)) == want]


# -- the build log ------------------------------------------------------------------

class BuildLog:
    """Collects the build output and keeps a copy on the host: refreshed at every build
    step (before a long RUN starts) and at most every few seconds in between. The copy
    goes through the connector (temp file + rename), so it works on remote hosts too."""

    def __init__(self, target: Target, path: str):
        self.target = target
        self.path = path
        self.chunks: list[str] = []
        self.flushed_at = 0.0
        self.dirty = False

    def write(self, text: str, *, flush: bool = False) -> None:
        self.chunks.append(text)
        self.dirty = True
        if flush or time.monotonic() - self.flushed_at >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self.dirty:
            return
        self.target.write_file_atomic(self.path, known_secrets.scrub("".join(self.chunks)).encode(), mode=0o600)
        self.flushed_at = time.monotonic()
        self.dirty = False

    def tail(self, n: int = LOG_TAIL_LINES) -> str:
        lines = [ln for ln in "".join(self.chunks).splitlines() if ln.strip()]
        return "\n".join(lines[-n:])


class ImageBuildStep(Step):
    kind = "image_build"

    @classmethod
    def check_spec(cls, body: dict[str, Any]) -> list[tuple[list[Any], str]]:
        issues = static_path_issues(body.get("context"), ["context"])
        issues += static_path_issues(body.get("dockerfile"), ["dockerfile"])
        tag = body.get("tag")
        if isinstance(tag, str) and "{{" not in tag and "@" in tag:
            issues.append((["tag"], f"'{tag}' is a digest; give a tag to build to (e.g. repo/name:latest)"))
        if isinstance(body.get("timeout"), str):
            try:
                if parse_duration(body["timeout"]) <= 0:
                    issues.append((["timeout"], "must be greater than zero"))
            except ValueError:
                pass  # the schema reports it
        return issues

    # -- what the plan asks ---------------------------------------------------------
    @property
    def tag(self) -> str:
        return normalize_ref(self.body["tag"])

    @property
    def keep_ref(self) -> str:
        return f"{split_ref(self.tag)[0]}:{self.body.get('keep_as', DEFAULT_KEEP_AS)}"

    @property
    def dockerfile(self) -> str:
        return self.body.get("dockerfile", "Dockerfile")

    @property
    def timeout(self) -> float:
        return parse_duration(self.body.get("timeout", DEFAULT_TIMEOUT))

    def _inputs(self, target: Target) -> tuple[str, str]:
        """(context dir, Dockerfile path) on the host, checked: inside the project, present,
        and the target stage exists."""
        if "@" in self.body["tag"]:
            raise InputError(f"tag '{self.body['tag']}' is a digest; give a tag to build to", key="tag", host=target.name)
        if self.keep_ref == self.tag:
            raise InputError(f"keep_as would keep the old image under the tag being built ({self.tag})",
                             key="keep_as", host=target.name)
        context = resolve_in_project(target, self.body["context"], "context")
        if not target.run(["test", "-d", context]).ok:
            raise InputError(f"build context {self.body['context']} ({context}) is not a directory",
                             key="context", host=target.name)
        dockerfile = resolve_in_project(target, f"{self.body['context'].rstrip('/')}/{self.dockerfile}", "dockerfile")
        if not dockerfile.startswith(context.rstrip("/") + "/"):
            raise InputError(f"dockerfile {self.dockerfile} must be inside the build context {context}",
                             key="dockerfile", host=target.name)
        text = target.read_file(dockerfile)
        if text is None:
            raise InputError(f"Dockerfile {self.dockerfile} not found in {context}", key="dockerfile", host=target.name)
        stage = self.body.get("target")
        if stage:
            stages = STAGE_LINE.findall(text.decode("utf-8", "replace"))
            if stage.lower() not in (s.lower() for s in stages):
                raise InputError(f"{self.dockerfile} has no stage '{stage}' "
                                 f"(stages: {', '.join(stages) or 'none named'})", key="target", host=target.name)
        return context, dockerfile

    def _describe(self) -> str:
        where = f"{self.body['context'].rstrip('/')}/{self.dockerfile}"
        stage = f" --target {self.body['target']}" if self.body.get("target") else ""
        return f"{where}{stage}"

    # -- contract -----------------------------------------------------------------
    def diff(self, target: Target) -> list[Change]:
        self._inputs(target)
        current = image_id(target, self.tag)
        services = services_using(target, self.tag)
        keep = (f"kept as {self.keep_ref} and {split_ref(self.tag)[0]}:rollout-<run id> until the run is rolled back"
                if current else "no image behind the tag yet")
        users = (f"services using it (recreate them to deploy): {', '.join(services)}" if services
                 else "no service of the compose file uses this tag")
        args = {k: redact_value(k, v) for k, v in (self.body.get("build_args") or {}).items()}
        summary = (f"build image {self.tag} from {self._describe()}"
                   + (f" with build args {', '.join(f'{k}={v}' for k, v in args.items())}" if args else "")
                   + f"; now {short(current)} ({keep}); {users}")
        return [self.change(
            "image", self.tag, summary, before=current,
            after={"dockerfile": self._describe(), "build_args": args, "keep_as": self.keep_ref},
            extra={"services": services, "keep_as": self.keep_ref},
        )]

    def apply(self, ctx: StepContext) -> None:
        target = ctx.target
        context, dockerfile = self._inputs(target)
        client = target.docker
        previous = image_id(target, self.tag)
        kept_before = image_id(target, self.keep_ref)
        log_path = f"{ctx.journal.dir}/build.log"
        this_run = run_tag(self.tag, ctx.journal.run_id)
        ctx.record_undo({"tag": self.tag, "image_before": previous, "keep_as": self.keep_ref,
                         "keep_before": kept_before, "build_log": log_path, "run_tag": this_run if previous else None})
        if previous:
            for ref in (this_run, self.keep_ref):
                repo, keep_tag = split_ref(ref)
                client.api.tag(previous, repo, keep_tag, force=True)
            ctx.log(f"kept the current {self.tag} ({short(previous)}) as {self.keep_ref} and {this_run}")
        else:
            ctx.log(f"no image behind {self.tag} yet: nothing to keep")
        built = self._build(ctx, client, context, dockerfile, log_path)
        now = image_id(target, self.tag)
        if now != built:
            raise StepFailed(f"the build produced {short(built)} but {self.tag} points to {short(now)}", host=target.name)
        same = " (identical to the previous image)" if built == previous else ""
        ctx.log(f"built {self.tag} ({short(built)}){same}; log {log_path}")

    def _context(self, target: Target, context: str, dockerfile: str) -> dict[str, Any]:
        """How the SDK gets the build context.

        @local: the directory itself (the SDK tars it and honours .dockerignore).
        Remote hosts: the engine is reached over SSH but the SDK tars `path` on the
        controller, so the context is tarred on the host instead and sent as a custom
        context. Limitation: .dockerignore is not applied then, and the archive passes
        through the controller's memory (fine for a frontend context, not for huge ones).
        """
        relative_dockerfile = dockerfile[len(context.rstrip("/")) + 1:]
        if target.is_local:
            return {"path": context, "dockerfile": relative_dockerfile}
        # outside the context (which may be the project dir, holding the run dir)
        archive = target.check("umask 077 && mktemp /tmp/rollout-context.XXXXXX", "creating a temp file").strip()
        try:
            target.check(f"tar -C {shlex.quote(context)} -cf {shlex.quote(archive)} .", f"archiving the build context {context}")
            data = target.read_file(archive)
        finally:
            target.run(["rm", "-f", archive])
        if data is None:
            raise HostError(f"the build context archive {archive} vanished", host=target.name)
        return {"fileobj": io.BytesIO(data), "custom_context": True, "dockerfile": relative_dockerfile}

    def _build(self, ctx: StepContext, client: Any, context: str, dockerfile: str, log_path: str) -> str:
        """Run the build, streaming its log; the new image ID, or StepFailed with the log's tail."""
        import docker.errors
        import requests

        target = ctx.target
        log = BuildLog(target, log_path)
        started = time.monotonic()
        deadline = started + self.timeout
        log.write(f"# rollout: building {self.tag} from {self._describe()} on {target.name}\n")
        built: str | None = None
        error: str | None = None
        last_progress = 0.0
        try:
            stream: Iterator[dict[str, Any]] = client.api.build(
                **self._context(target, context, dockerfile),
                tag=self.tag, target=self.body.get("target"), buildargs=self.body.get("build_args") or None,
                pull=False, rm=True, forcerm=True, decode=True,
                timeout=self.timeout,  # the socket read timeout: a quiet RUN step may take long
            )
            for chunk in stream:
                if "stream" in chunk:
                    text = str(chunk["stream"])
                    m = STEP_LINE.match(text.strip())
                    log.write(text, flush=bool(m))
                    if m:
                        n, total = int(m.group(1)), int(m.group(2))
                        now = time.monotonic()
                        if n == 1 or n == total or now - last_progress >= PROGRESS_EVERY:
                            ctx.log(f"build {n}/{total} ({now - started:.0f}s): {m.group(3)[:100]}")
                            last_progress = now
                    found = re.match(r"Successfully built ([0-9a-f]+)", text.strip())
                    if found and built is None:
                        built = found.group(1)
                elif "error" in chunk:
                    error = str(chunk.get("error") or (chunk.get("errorDetail") or {}).get("message"))
                    log.write(f"ERROR: {error}\n")
                elif "aux" in chunk and isinstance(chunk["aux"], dict) and chunk["aux"].get("ID"):
                    built = chunk["aux"]["ID"]
                elif "status" in chunk:
                    log.write(f"{chunk['status']} {chunk.get('progress', '')}".rstrip() + "\n")
                if time.monotonic() > deadline:
                    error = f"timed out after {self.timeout:g}s"
                    log.write(f"ERROR: {error}\n")
                    break
        except (docker.errors.APIError, docker.errors.DockerException, requests.RequestException, OSError) as exc:
            error = getattr(exc, "explanation", None) or str(exc)
            log.write(f"ERROR: {error}\n")
        finally:
            try:
                log.flush()
            except HostError as exc:  # the log copy is a convenience: never mask the build's outcome
                ctx.log(f"warning: cannot write {log_path}: {exc}")
        if error is None and built is None:
            error = "the build ended without producing an image"
        if error is not None:
            raise StepFailed(
                f"building {self.tag} from {self._describe()} failed after "
                f"{time.monotonic() - started:.1f}s: {error}\n"
                f"--- last lines of {log_path} ---\n{log.tail()}",
                host=target.name,
            )
        assert built is not None
        full = image_id(target, built)  # "Successfully built" gives a short ID
        ctx.log(f"build finished in {time.monotonic() - started:.1f}s")
        return full or built

    @classmethod
    def rollback(cls, target: Target, undo: dict[str, Any], log: Callable[[str], None]) -> None:
        import docker.errors

        tag, previous = undo["tag"], undo.get("image_before")
        current = image_id(target, tag)
        if previous is None:
            if current is None:
                log(f"{tag} is absent, as before the run")
                return
            try:
                target.docker.images.remove(tag, force=True, noprune=True)  # drops only this name
            except docker.errors.ImageNotFound:
                pass
            except docker.errors.APIError as exc:
                raise HostError(f"cannot remove the tag {tag}: {exc.explanation or exc}", host=target.name) from exc
            log(f"removed {tag} (there was no image behind it before the run)")
            return
        if current != previous:
            source = cls._source(target, undo)
            if source is None:
                raise HostError(f"{cls._gone(target, undo)}", host=target.name)
            repo, name = split_ref(tag)
            try:
                target.docker.api.tag(source, repo, name, force=True)
            except docker.errors.APIError as exc:
                raise HostError(f"cannot tag {short(source)} as {tag}: {exc.explanation or exc}", host=target.name) from exc
            log(f"{tag} points to {short(image_id(target, tag))} again (was {short(current)}; from {source}); no rebuild")
        else:
            log(f"{tag} already points to {short(previous)}")
        if undo.get("run_tag") and image_id(target, undo["run_tag"]) is not None:
            try:  # the run is undone: its keep tag has served (the image keeps the tag it is back under)
                target.docker.images.remove(undo["run_tag"], noprune=True)
            except docker.errors.APIError as exc:
                log(f"warning: cannot remove the run's keep tag {undo['run_tag']}: {exc.explanation or exc}")
            else:
                log(f"removed the run's keep tag {undo['run_tag']}")

    @staticmethod
    def _source(target: Target, undo: dict[str, Any]) -> str | None:
        """What to point the tag back at: the image itself, else an image an operator rebuilt
        and tagged as the run's keep tag (the way out when it was pruned), else keep_as."""
        previous = undo["image_before"]
        if image_id(target, previous) is not None:
            return previous
        if undo.get("run_tag") and image_id(target, undo["run_tag"]) is not None:
            return undo["run_tag"]
        if undo.get("keep_as") and image_id(target, undo["keep_as"]) == previous:
            return undo["keep_as"]
        return None

    @classmethod
    def _gone(cls, target: Target, undo: dict[str, Any]) -> str:
        keep = undo.get("run_tag") or undo.get("keep_as")
        return (f"the image {short(undo['image_before'])} behind {undo['tag']} before this run is gone (its keep tags "
                f"{' and '.join(filter(None, (undo.get('run_tag'), undo.get('keep_as'))))} were removed and it was pruned), "
                f"so {undo['tag']} cannot be pointed back at it. Way out: restore the run's files (rollout restores "
                f"them from their backups, or see the manual commands), rebuild the image as it was before the run, "
                f"tag it `docker tag <rebuilt image> {keep}`, then run the rollback again: it points {undo['tag']} at "
                f"{keep}")

    @classmethod
    def conflict(cls, target: Target, undo: dict[str, Any]) -> str | None:
        """Refuse up front (nothing changed) when the image to go back to is gone."""
        previous = undo.get("image_before")
        if previous is None or image_id(target, undo["tag"]) == previous or cls._source(target, undo):
            return None
        return f"{target.name}: {cls._gone(target, undo)}"

    @classmethod
    def compare(cls, target: Target, undo: dict[str, Any], body: dict[str, Any] | None = None) -> Comparison:
        """The tag against the run's record: still on the image it had before (as found), or on
        another build (as left: a build's ID is not known before it runs)."""
        now, before = image_id(target, undo["tag"]), undo.get("image_before")
        if now == before:
            return Comparison(before=True, after=False)
        return Comparison(before=False, after=now is not None,
                          differences=[] if now else [Difference(f"image {undo['tag']}", "missing", "a new build",
                                                                 short(before))])

    @classmethod
    def manual_undo(cls, target: Target, undo: dict[str, Any]) -> list[str]:
        tag, previous = undo["tag"], undo.get("image_before")
        if previous is None:
            return [f"docker rmi --no-prune {shlex.quote(tag)}   # there was no image behind it before the run"]
        keep = undo.get("run_tag") or undo.get("keep_as")
        return [f"docker tag {previous} {shlex.quote(tag)}   # also kept as {keep}; if both are gone: rebuild the "
                f"image from before the run, `docker tag` it as {keep}, and run `rollout rollback` again",
                *([f"docker rmi --no-prune {shlex.quote(undo['run_tag'])}   # once {tag} is back"]
                  if undo.get("run_tag") else [])]
