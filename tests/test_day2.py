"""Day 2 against the real engine: swap next.config, rebuild the frontend, budget the bundle,
roll back by retagging the kept image (never by rebuilding)."""
from __future__ import annotations

import io
import secrets
import signal
import textwrap
from pathlib import Path

import docker.errors
import pytest
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from orchestrator.hosts import Connection
from orchestrator.inventory import Inventory
from orchestrator.probes.image_path_size import THROWAWAY_LABEL, ImagePathSizeProbe, human
from orchestrator.steps.image_build import (
    ImageBuildStep, interpolate, normalize_ref, parse_env_file, services_using,
)
from tests.helpers import REPO, journal_records, rollout, rollout_bg, tree_digest

DAY2 = (REPO / "plans" / "day2.yaml").read_text()


# -- helpers -------------------------------------------------------------------

def day2_plan(tmp_path: Path, stack, replace: dict[str, str] | None = None) -> Path:
    """plans/day2.yaml as a test plan (the stack's frontend repository is its own, so
    `keep_as: stable` lands on `medianest-<project>/frontend:stable`, removed by stack.down())."""
    text = DAY2
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "day2.yaml"
    path.write_text(text)
    return path


def image_id(client, ref: str) -> str | None:
    try:
        return client.images.get(ref).id
    except docker.errors.ImageNotFound:
        return None


def ids(stack) -> dict[str, str]:
    return {s: stack.container(s).id for s in ("app", "frontend", "redis")}


def running_image(stack, service: str = "frontend") -> str:
    return stack.container(service).attrs["Image"]


def containers(client, **filters) -> list[dict]:
    """`docker ps -a` rows (the low-level list: no per-container inspect that could race
    with other tests removing theirs)."""
    return client.api.containers(all=True, filters=filters or None)


def leftovers(client, *images: str | None) -> list[str]:
    """Throwaway probe containers, and any non-compose container of these images."""
    found = {row["Names"][0] for row in containers(client, label=THROWAWAY_LABEL)}
    for image in filter(None, images):
        for row in containers(client, ancestor=image):
            if "com.docker.compose.project" not in (row.get("Labels") or {}):
                found.add(row["Names"][0])
    return sorted(found)


def running(client, text: str) -> list[str]:
    """Containers whose command line contains `text`."""
    return [row["Names"][0] for row in containers(client) if text in row.get("Command", "")]


def wait_for(fn, timeout: float, what: str):
    result = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.1), retry=retry_if_result(lambda r: not r),
                      retry_error_callback=lambda state: state.outcome.result())(fn)
    assert result, f"timed out after {timeout}s waiting for {what}"
    return result


def frontend_file(stack, name: str) -> Path:
    return stack.project_dir / "frontend" / name


def write_dockerfile(stack, name: str, old: str, new: str) -> None:
    """A variant of Dockerfile.optimized in the stack copy, with one build-stage line changed."""
    text = frontend_file(stack, "Dockerfile.optimized").read_text()
    assert old in text, old
    frontend_file(stack, name).write_text(text.replace(old, new))


BUILD_RUN = "RUN sh ./build-static.sh next.config.js /app/.next"


# -- end to end ------------------------------------------------------------------

def test_day2_deploys_under_budget_then_rollback_retags_without_rebuild(demo_stack, tmp_path, docker_client):
    stack, inv = demo_stack, str(demo_stack.inventory_path)
    config = frontend_file(stack, "next.config.js")
    original, optimized = config.read_bytes(), frontend_file(stack, "next.config.optimized.js").read_bytes()
    old_id = image_id(docker_client, stack.frontend_image)
    before = ids(stack)
    assert running_image(stack) == old_id
    plan = day2_plan(tmp_path, stack)

    diff = rollout("diff", str(plan), "-i", inv)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "-  productionBrowserSourceMaps: true," in diff.stdout
    assert "+  productionBrowserSourceMaps: false," in diff.stdout
    assert (f"build image {stack.frontend_image} from frontend/Dockerfile.optimized --target frontend-production"
            in diff.stdout)
    assert "services using it (recreate them to deploy): frontend" in diff.stdout
    assert old_id.split(":")[1][:12] in diff.stdout

    result = rollout("apply", str(plan), "-i", inv, "--yes")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "→ PASS: 20 MB of 50 MB budget" in out, out
    new_id = image_id(docker_client, stack.frontend_image)
    assert new_id != old_id
    assert image_id(docker_client, f"{stack.frontend_repo}:stable") == old_id
    assert config.read_bytes() == optimized
    assert frontend_file(stack, "next.config.js.backup").read_bytes() == original
    after = ids(stack)
    assert running_image(stack) == new_id and after["frontend"] != before["frontend"]
    assert {s: after[s] for s in ("app", "redis")} == {s: before[s] for s in ("app", "redis")}
    (run_dir,) = (stack.project_dir / ".rollout" / "runs").iterdir()
    assert "Successfully built" in (run_dir / "build.log").read_text()

    # Emergency rollback of the finished run: config byte for byte, the old image under
    # the tag (retag, no build), frontend recreated on it; app and redis untouched.
    back = rollout("rollback", "day2", "-i", inv, "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "points to" in back.stdout and "no rebuild" in back.stdout
    assert "Step 1/" not in back.stdout
    assert config.read_bytes() == original
    assert image_id(docker_client, stack.frontend_image) == old_id
    assert running_image(stack) == old_id
    final = ids(stack)
    assert {s: final[s] for s in ("app", "redis")} == {s: before[s] for s in ("app", "redis")}
    assert leftovers(docker_client, old_id, new_id) == []


def unique_frontend_image(stack, docker_client) -> str:
    """The stack's frontend tag moved to an image of its own (the demo's frontend image plus a
    label), so removing its tags really removes it: the shared demo build stays untouched."""
    dockerfile = f"FROM {stack.frontend_image}\nLABEL rollout.test={stack.project_name}\n".encode()
    image, _ = docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=stack.frontend_image, pull=False, rm=True)
    return image.id


def run_ids(stack) -> list[str]:
    return [records[0]["run_id"] for records in journal_records(stack.project_dir)]


def test_each_run_keeps_its_previous_image_until_it_is_rolled_back(demo_stack, tmp_path, docker_client):
    stack, inv = demo_stack, str(demo_stack.inventory_path)
    config = frontend_file(stack, "next.config.js")
    original = config.read_bytes()
    first_image = unique_frontend_image(stack, docker_client)
    plan = day2_plan(tmp_path, stack)

    assert rollout("apply", str(plan), "-i", inv, "--yes").returncode == 0
    built = image_id(docker_client, stack.frontend_image)
    # The operator puts the old config back by hand and runs day2 again: a real second run.
    config.write_bytes(original)
    second = rollout("apply", str(plan), "-i", inv, "--yes")
    assert second.returncode == 0, second.stdout + second.stderr
    run1, run2 = run_ids(stack)
    # `:stable` moved on to the first run's build; the pre-day2 image is still tagged, for run 1.
    assert image_id(docker_client, f"{stack.frontend_repo}:stable") == built
    assert docker_client.images.get(first_image).tags == [f"{stack.frontend_repo}:rollout-{run1}"]
    assert image_id(docker_client, f"{stack.frontend_repo}:rollout-{run2}") == built

    for run, image in ((run2, built), (run1, first_image)):
        back = rollout("rollback", "--run", run, "-i", inv, "--yes")
        assert back.returncode == 0, back.stdout + back.stderr
        assert image_id(docker_client, stack.frontend_image) == image
        assert image_id(docker_client, f"{stack.frontend_repo}:rollout-{run}") is None  # served, removed
    assert running_image(stack) == first_image
    assert config.read_bytes() == original


def test_a_rollback_whose_image_is_gone_is_refused_with_the_way_out(demo_stack, tmp_path, docker_client):
    stack, inv = demo_stack, str(demo_stack.inventory_path)
    config = frontend_file(stack, "next.config.js")
    original = config.read_bytes()
    demo_image = image_id(docker_client, stack.frontend_image)  # the shared demo build
    first_image = unique_frontend_image(stack, docker_client)
    plan = day2_plan(tmp_path, stack)
    assert rollout("apply", str(plan), "-i", inv, "--yes").returncode == 0
    built = image_id(docker_client, stack.frontend_image)
    optimized = config.read_bytes()
    (run,) = run_ids(stack)
    run_tag = f"{stack.frontend_repo}:rollout-{run}"
    for ref in (f"{stack.frontend_repo}:stable", run_tag):  # an operator's cleanup
        docker_client.images.remove(ref, noprune=True)
    assert image_id(docker_client, first_image) is None

    back = rollout("rollback", "day2", "-i", inv, "--yes")
    out = back.stdout + back.stderr
    assert back.returncode == 2, out
    assert "Traceback" not in out
    assert f"not rolling back run {run}; nothing changed" in out
    assert f"the image {first_image.split(':')[1][:12]} behind {stack.frontend_image} before this run is gone" in out
    assert f"tag it `docker tag <rebuilt image> {run_tag}`, then run the rollback again" in out
    assert config.read_bytes() == optimized and image_id(docker_client, stack.frontend_image) == built

    # The way out: a rebuilt image under the run's tag (here: the demo build it was made from).
    docker_client.images.get(demo_image).tag(run_tag)
    again = rollout("rollback", "day2", "-i", inv, "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert image_id(docker_client, stack.frontend_image) == demo_image != built
    assert config.read_bytes() == original
    assert image_id(docker_client, run_tag) is None


def test_over_budget_bundle_never_reaches_production(demo_stack, tmp_path, docker_client):
    stack, inv = demo_stack, str(demo_stack.inventory_path)
    config = frontend_file(stack, "next.config.js")
    original = config.read_bytes()
    old_id = image_id(docker_client, stack.frontend_image)
    before = ids(stack)
    plan = day2_plan(tmp_path, stack, {"source: frontend/next.config.optimized.js": "source: frontend/next.config.oversize.js"})

    result = rollout("apply", str(plan), "-i", inv, "--yes")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "→ FAIL: 56 MB of 50 MB budget" in out, out
    assert "rolled back and verified" in out
    assert ids(stack) == before  # frontend was never recreated
    assert running_image(stack) == old_id
    assert config.read_bytes() == original
    assert image_id(docker_client, stack.frontend_image) == old_id
    (records,) = journal_records(stack.project_dir)
    assert [r["kind"] for r in records if r["t"] == "undo"] == ["file_swap", "image_build"]
    assert leftovers(docker_client, old_id) == []


def test_failed_build_rolls_back_cleanly_with_the_log_tail(demo_stack, tmp_path, docker_client):
    stack, inv = demo_stack, str(demo_stack.inventory_path)
    write_dockerfile(stack, "Dockerfile.broken", BUILD_RUN,
                     'RUN echo "compiling pages" && next-build-is-missing --profile\n' + BUILD_RUN)
    config = frontend_file(stack, "next.config.js")
    original = config.read_bytes()
    old_id = image_id(docker_client, stack.frontend_image)
    before = ids(stack)
    plan = day2_plan(tmp_path, stack, {"dockerfile: Dockerfile.optimized": "dockerfile: Dockerfile.broken"})

    result = rollout("apply", str(plan), "-i", inv, "--yes")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "failed after" in out and "--- last lines of" in out and "build.log ---" in out
    assert "next-build-is-missing: not found" in out  # the build's own words, from the log tail
    assert "returned a non-zero code: 127" in out
    assert "rolled back and verified" in out
    assert config.read_bytes() == original
    assert image_id(docker_client, stack.frontend_image) == old_id
    assert ids(stack) == before
    (records,) = journal_records(stack.project_dir)
    assert records[-1] == {**records[-1], "t": "end", "outcome": "rolled_back"}
    assert leftovers(docker_client, old_id) == []
    assert running(docker_client, "next-build-is-missing") == []


def test_sigkill_during_build_then_rollback_restores_config_and_tag(demo_stack, tmp_path, docker_client):
    stack, inv = demo_stack, str(demo_stack.inventory_path)
    nonce = secrets.token_hex(6)
    # A build stage that takes a while and never comes from the cache (the nonce is in the
    # command line, which is also how its container is found, and a build arg it uses).
    write_dockerfile(stack, "Dockerfile.slow", BUILD_RUN,
                     f'ARG NONCE\nRUN echo "slow build {nonce} $NONCE" && sleep 30\n{BUILD_RUN}')
    config = frontend_file(stack, "next.config.js")
    original, optimized = config.read_bytes(), frontend_file(stack, "next.config.optimized.js").read_bytes()
    old_id = image_id(docker_client, stack.frontend_image)
    before = ids(stack)
    plan = day2_plan(tmp_path, stack, {
        "dockerfile: Dockerfile.optimized": f"dockerfile: Dockerfile.slow\n      build_args: {{NONCE: \"{nonce}\"}}",
    })

    proc = rollout_bg("apply", str(plan), "-i", inv, "--yes")
    try:
        runs = stack.project_dir / ".rollout" / "runs"
        wait_for(lambda: any(r["t"] == "undo" and r["kind"] == "image_build"
                             for run in journal_records(stack.project_dir) for r in run), 30, "the build's undo record")
        (run_dir,) = runs.iterdir()
        # the slow RUN has started (build.log is refreshed every 2 s)
        wait_for(lambda: "slow build" in ((run_dir / "build.log").read_text() if (run_dir / "build.log").exists() else ""),
                 20, "the slow build step")
        wait_for(lambda: running(docker_client, nonce), 10, "the slow step's build container")
        assert proc.poll() is None, proc.stdout.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert proc.returncode == -9
    assert config.read_bytes() == optimized  # half applied: the crash left the swapped config
    assert (stack.project_dir / ".rollout" / "lock").exists()

    back = rollout("rollback", "day2", "-i", inv, "--yes")
    out = back.stdout + back.stderr
    assert back.returncode == 0, out
    assert "taking over the stale lock" in out
    assert config.read_bytes() == original
    assert image_id(docker_client, stack.frontend_image) == old_id
    assert ids(stack) == before
    assert not (stack.project_dir / ".rollout" / "lock").exists()
    assert leftovers(docker_client, old_id) == []

    # The engine cancels a build whose client is gone: no container of the slow step is left.
    wait_for(lambda: running(docker_client, nonce) == [], 15, "the cancelled build's container to go")


# -- refusals: nothing changes -------------------------------------------------------

@pytest.fixture
def idle_stack(tmp_path):
    """A stack copy that is never started (file steps need no containers)."""
    from stack import DemoStack

    return DemoStack(tmp_path / "idle")


def swap_plan(tmp_path: Path, source: str, destination: str = "frontend/next.config.js") -> Path:
    path = tmp_path / "swap.yaml"
    path.write_text(textwrap.dedent(f"""\
        plan: day2
        version: 1
        title: swap test
        hosts: app_servers
        steps:
          - file_swap:
              source: {source}
              destination: {destination}
        """))
    return path


def test_file_swap_refuses_paths_outside_the_project(idle_stack, tmp_path):
    stack, inv = idle_stack, str(idle_stack.inventory_path)
    (stack.project_dir / "frontend" / "evil.js").symlink_to("/etc/passwd")
    before = tree_digest(stack.project_dir)

    bad = rollout("validate", str(swap_plan(tmp_path, "../../etc/passwd")))
    assert bad.returncode == 2
    assert "swap.yaml:7: steps/0/file_swap/source: '../../etc/passwd' must stay inside the project directory" in bad.stderr

    cases = {
        "/etc/hostname": "'/etc/hostname' is not a project path",  # the schema: project paths are relative
        "frontend/evil.js": "source 'frontend/evil.js' is outside the project directory",
    }
    for source, message in cases.items():
        result = rollout("apply", str(swap_plan(tmp_path, source)), "-i", inv, "--yes")
        assert result.returncode == 2, result.stdout + result.stderr
        assert message in result.stderr, result.stderr
    assert "(it resolves to /etc/passwd)" in result.stderr
    result = rollout("apply", str(swap_plan(tmp_path, "frontend/next.config.optimized.js", "frontend/evil.js")),
                     "-i", inv, "--yes")
    assert result.returncode == 2 and "destination 'frontend/evil.js' is outside" in result.stderr
    assert tree_digest(stack.project_dir) == before
    assert Path("/etc/passwd").read_text().startswith("root:")
    assert not (stack.project_dir / ".rollout" / "runs").exists()

    # A missing source is bad input; identical files mean nothing to do.
    same = rollout("diff", str(swap_plan(tmp_path, "frontend/next.config.js.copy")), "-i", inv)
    assert same.returncode == 2 and "does not exist" in same.stderr
    (stack.project_dir / "frontend/next.config.js.copy").write_bytes((stack.project_dir / "frontend/next.config.js").read_bytes())
    same = rollout("diff", str(swap_plan(tmp_path, "frontend/next.config.js.copy")), "-i", inv)
    assert same.returncode == 0 and "nothing to change" in same.stdout


# -- units: probe, rollback idempotence, compose interpolation --------------------------

@pytest.fixture
def local_target(tmp_path):
    inv = Inventory(tmp_path / "inv.py", {"app_servers": ["@local"]},
                    {"@local": {"project_dir": str(tmp_path), "compose_file": "docker-compose.yml",
                                "compose_project": f"rt{secrets.token_hex(4)}"}})
    with Connection(inv, ["@local"]) as targets:
        yield targets[0]


@pytest.fixture
def scratch_images(docker_client, tmp_path):
    """Two tiny FROM-scratch images (no shell, no du) under a throwaway repository."""
    repo = f"rollout-test-{secrets.token_hex(4)}"
    made = []
    for n, size in (("a", 3000), ("b", 5000)):
        ctx = tmp_path / f"ctx-{n}"
        (ctx / "data").mkdir(parents=True)
        (ctx / "data" / "blob").write_bytes(b"x" * size)
        (ctx / "data" / "note").write_text(n)
        (ctx / "Dockerfile").write_text("FROM scratch\nCOPY data/ /data/\n")
        image, _ = docker_client.images.build(path=str(ctx), tag=f"{repo}:{n}", pull=False, rm=True)
        made.append(image.id)
    yield repo, made
    for tag in ("a", "b", "c", "stable"):
        try:
            docker_client.images.remove(f"{repo}:{tag}", force=True)
        except docker.errors.ImageNotFound:
            pass


def test_image_path_size_without_du_and_missing_path(local_target, scratch_images, docker_client):
    repo, _ = scratch_images
    probe = ImagePathSizeProbe({"image": f"{repo}:a", "path": "/data", "budget": "4K"}, local_target)
    result = probe.run()
    assert (result.verdict, result.value) == ("pass", 3001)
    assert result.detail.startswith("2.9 KB of 4 KB budget")
    result = ImagePathSizeProbe({"image": f"{repo}:b", "path": "/data", "budget": "4K"}, local_target).run()
    assert (result.verdict, result.value, result.attempts) == ("fail", 5001, 1)
    result = ImagePathSizeProbe({"image": f"{repo}:a", "path": "/nope", "budget": "4K"}, local_target).run()
    assert result.verdict == "fail" and "/nope not found" in result.detail
    result = ImagePathSizeProbe({"image": f"{repo}:missing", "path": "/", "budget": "4K"}, local_target).run()
    assert result.verdict == "fail" and "no image" in result.detail
    assert leftovers(docker_client, *scratch_images[1]) == []


def test_image_build_rollback_is_idempotent(local_target, scratch_images, docker_client):
    repo, (a, b) = scratch_images
    logs: list[str] = []
    docker_client.api.tag(b, repo, "c")  # the "new build" now behind repo:c
    undo = {"tag": f"{repo}:c", "image_before": a, "keep_as": f"{repo}:stable"}
    for _ in range(2):
        ImageBuildStep.rollback(local_target, undo, logs.append)
        assert image_id(docker_client, f"{repo}:c") == a
    assert "already points to" in logs[-1]
    assert ImageBuildStep.manual_undo(local_target, undo)[0].startswith(
        f"docker tag {a} {repo}:c   # also kept as {repo}:stable; if both are gone: rebuild the image")
    # No image behind the tag before the run: the rollback removes the tag, twice is fine.
    undo = {"tag": f"{repo}:c", "image_before": None, "keep_as": f"{repo}:stable"}
    for _ in range(2):
        ImageBuildStep.rollback(local_target, undo, logs.append)
        assert image_id(docker_client, f"{repo}:c") is None
    assert image_id(docker_client, f"{repo}:a") == a  # the image itself is kept


def test_services_using_a_tag_follow_compose_interpolation(local_target, tmp_path):
    assert interpolate("${IMG:-medianest/frontend:latest}", {}) == "medianest/frontend:latest"
    assert interpolate("${IMG:-x}", {"IMG": ""}) == "x" and interpolate("${IMG-x}", {"IMG": ""}) == ""
    assert interpolate("$$HOME/${A}/$B", {"A": "1", "B": "2"}) == "$HOME/1/2"
    assert parse_env_file("# c\nexport A='1'\nB=\"two words\"\n\nC=3=4\n") == {"A": "1", "B": "two words", "C": "3=4"}
    assert normalize_ref("medianest/frontend") == "medianest/frontend:latest"
    assert normalize_ref("docker.io/library/redis") == "redis:latest"
    assert normalize_ref("localhost:5000/web") == "localhost:5000/web:latest"
    (tmp_path / "docker-compose.yml").write_text(textwrap.dedent("""\
        services:
          frontend: {image: "${MEDIANEST_FRONTEND_IMAGE:-medianest/frontend:latest}"}
          preview: {image: medianest/frontend}
          app: {image: medianest/app:demo}
        """))
    assert services_using(local_target, "medianest/frontend:latest") == ["frontend", "preview"]
    (tmp_path / ".env").write_text("MEDIANEST_FRONTEND_IMAGE=medianest/frontend:rt1\n")
    assert services_using(local_target, "medianest/frontend:rt1") == ["frontend"]
    assert services_using(local_target, "medianest/frontend:latest") == ["preview"]
    assert human(52428800) == "50 MB" and human(40118272) == "38.3 MB" and human(512) == "512 B"


def test_file_swap_to_a_new_file_and_rollback_removes_it(idle_stack, tmp_path):
    stack, inv = idle_stack, str(idle_stack.inventory_path)
    before = tree_digest(stack.project_dir)
    plan = swap_plan(tmp_path, "frontend/next.config.optimized.js", "frontend/next.config.staging.js")
    applied = rollout("apply", str(plan), "-i", inv, "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    created = stack.project_dir / "frontend/next.config.staging.js"
    assert created.read_bytes() == (stack.project_dir / "frontend/next.config.optimized.js").read_bytes()
    for _ in range(2):
        back = rollout("rollback", "day2", "-i", inv, "--yes")
        assert back.returncode == 0, back.stdout + back.stderr
    assert "already rolled back" in back.stdout
    assert tree_digest(stack.project_dir) == before


def test_remote_build_context_is_archived_on_the_host(local_target, tmp_path, docker_client):
    """Remote hosts: the context is tarred on the host and sent as a custom context."""
    from orchestrator.hosts import Target
    from orchestrator.plan import StepSpec

    class RemoteLike(Target):
        is_local = False  # the connector still runs locally; only the context path changes

    remote = RemoteLike(local_target.name, local_target.data, local_target._host, docker_client)
    ctx = tmp_path / "web"
    ctx.mkdir()
    (ctx / "index.html").write_text("hi\n")
    (ctx / "Dockerfile.web").write_text("FROM scratch AS web\nCOPY index.html /www/\n")
    tag = f"rollout-test-{secrets.token_hex(4)}:remote"
    step = ImageBuildStep(StepSpec(0, "build", "image_build", {"context": "web", "dockerfile": "Dockerfile.web",
                                                                 "target": "web", "tag": tag}, None), remote.data)
    context, dockerfile = step._inputs(remote)
    kwargs = step._context(remote, context, dockerfile)
    assert kwargs["custom_context"] and kwargs["dockerfile"] == "Dockerfile.web"
    assert not list(Path("/tmp").glob("rollout-context.*"))
    try:
        chunks = list(docker_client.api.build(**kwargs, tag=tag, target="web", decode=True, rm=True))
        assert not [c for c in chunks if "error" in c], chunks
        assert ImagePathSizeProbe({"image": tag, "path": "/www", "budget": "1K"}, local_target).run().value == 3
    finally:
        docker_client.images.remove(tag, force=True)
