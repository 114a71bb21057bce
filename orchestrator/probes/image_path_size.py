"""Probe `image_path_size`: bytes under a path inside an image, against a budget.

Measured in a throwaway container of the image (`du -sb PATH`, busybox or GNU;
`du -sk` × 1024 where `-b` is unknown) that is never attached to a network and
is removed in every case, error and timeout included. Images without `du` are
measured from the container's file system archive instead (the container is
created, never started, and removed the same way).
"""
from __future__ import annotations

import secrets
import tarfile
from typing import Any

from orchestrator.units import parse_duration, parse_size
from orchestrator.metrics import FAIL, PASS
from orchestrator.probes.base import Probe, ProbeResult

THROWAWAY_LABEL = "org.rollout.throwaway"
DEFAULT_TIMEOUT = "60s"


def human(size: float) -> str:
    """Binary units, as budgets are parsed: 40118272 → '38.3 MB'."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            text = f"{size:.1f}".rstrip("0").rstrip(".") if unit != "B" else f"{int(size)}"
            return f"{text} {unit}"
        size /= 1024
    return f"{size} TB"  # pragma: no cover


class MeasureError(Exception):
    """The path could not be measured (not found, no du, engine error)."""


class ImagePathSizeProbe(Probe):
    kind = "image_path_size"
    # A deterministic measurement: reading it again gives the same answer.
    default_consecutive = 1

    @classmethod
    def check_spec(cls, body: dict[str, Any]) -> list[tuple[list[Any], str]]:
        try:
            if isinstance(body.get("budget"), str) and parse_size(body["budget"]) <= 0:
                return [(["budget"], "must be greater than zero")]
        except ValueError:
            pass  # the schema reports it
        return []

    @property
    def budget(self) -> int:
        return parse_size(self.body["budget"])

    @property
    def timeout(self) -> float:
        return parse_duration(self.body.get("timeout", DEFAULT_TIMEOUT))

    def describe(self) -> str:
        return f"image_path_size: {self.body['path']} in {self.body['image']} < {self.body['budget']}"

    def measure(self) -> ProbeResult:
        size = self.size()
        detail = f"{human(size)} of {human(self.budget)} budget ({size} bytes in {self.body['path']} of {self.body['image']})"
        return ProbeResult(PASS if size < self.budget else FAIL, size, detail)

    # -- measuring ------------------------------------------------------------------
    def size(self) -> int:
        import docker.errors

        client = self.target.docker
        try:
            client.images.get(self.body["image"])
        except docker.errors.ImageNotFound as exc:
            raise MeasureError(f"no image {self.body['image']} on {self.target.name}") from exc
        for flag, factor in (("-sb", 1), ("-sk", 1024)):
            code, out = self._run(["du", flag, self.body["path"]])
            if code == 0:
                try:
                    return int(out.split()[0]) * factor
                except (IndexError, ValueError) as exc:
                    raise MeasureError(f"unexpected du output: {out[:200]!r}") from exc
            if code is None:  # no du in the image: read the files instead
                return self._archive_size()
            if "No such file" in out or "can't" in out:
                raise MeasureError(f"{self.body['path']} not found in {self.body['image']}: {out.strip()[:200]}")
            if "option" not in out and "usage" not in out.lower():
                raise MeasureError(f"du {flag} {self.body['path']} failed ({code}): {out.strip()[:300]}")
        raise MeasureError(f"du cannot measure {self.body['path']}: {out.strip()[:300]}")

    def _create(self, command: list[str] | None, entrypoint: list[str] | None):
        return self.target.docker.containers.create(
            self.body["image"], command=command, entrypoint=entrypoint,
            name=f"rollout-size-{secrets.token_hex(4)}", network_disabled=True, detach=True,
            labels={THROWAWAY_LABEL: self.kind}, user="0",
        )

    def _run(self, argv: list[str]) -> tuple[int | None, str]:
        """(exit code, output) of argv in a throwaway container; code None when argv[0]
        does not exist in the image. The container is removed whatever happens."""
        import docker.errors

        container = None
        try:
            container = self._create(argv[1:], [argv[0]])
            try:
                container.start()
            except docker.errors.APIError as exc:
                text = str(exc.explanation or exc)
                if "executable file not found" in text or "no such file or directory" in text:
                    return None, text
                raise
            try:
                status = container.wait(timeout=self.timeout)
            except Exception as exc:  # requests' ReadTimeout / ConnectionError
                raise MeasureError(f"measuring {self.body['path']} took longer than {self.timeout:g}s ({exc})") from exc
            out = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
            return int(status.get("StatusCode", 1)), out
        finally:
            if container is not None:
                _remove(container)

    def _archive_size(self) -> int:
        """Sum of the regular files' sizes under the path, read from a created (never started)
        container's archive."""
        import docker.errors

        container = None
        try:
            # never started: the command only satisfies images that have none
            container = self._create(["measure-only"], ["/rollout-never-started"])
            try:
                stream, _ = container.get_archive(self.body["path"])
            except docker.errors.NotFound as exc:
                raise MeasureError(f"{self.body['path']} not found in {self.body['image']}") from exc
            total = 0
            with tarfile.open(fileobj=_ChunkReader(stream), mode="r|") as archive:
                for member in archive:
                    if member.isfile():
                        total += member.size
            return total
        finally:
            if container is not None:
                _remove(container)


def _remove(container) -> None:
    import docker.errors

    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass


class _ChunkReader:
    """A file-like view of an iterator of bytes chunks (for tarfile's stream mode)."""

    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.buffer = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buffer) < n:
            try:
                self.buffer += next(self.chunks)
            except StopIteration:
                break
        if n < 0:
            out, self.buffer = self.buffer, b""
        else:
            out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out
