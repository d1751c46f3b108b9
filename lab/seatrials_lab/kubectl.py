"""kubectl with the lab's admin kubeconfig (the lab itself needs no Kubernetes client library)."""

from __future__ import annotations

import json
from pathlib import Path

from .shell import run


class Kubectl:
    def __init__(self, binary: Path, kubeconfig: Path):
        self.base = [str(binary), f"--kubeconfig={kubeconfig}", "--request-timeout=30s"]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        return run([*self.base, *args], input=input, timeout=timeout)

    def json(self, *args: str) -> dict:
        return json.loads(self(*args, "-o", "json"))

    def apply(self, objects: list[dict]) -> None:
        self(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
        )
