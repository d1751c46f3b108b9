"""Command-line options of the suite and the settings object built from them.

Options are registered by the root conftest.py so that `pytest --help` lists
them without touching any cluster; everything else reads `Settings`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_PROBE_IMAGE = "docker.io/library/busybox:1.36.1"


@dataclass
class Settings:
    kubeconfig: str | None
    context: str | None
    probe_image: str = DEFAULT_PROBE_IMAGE
    image_registry: str | None = None
    expect_service_ip: str | None = None
    master_selector: str | None = None
    worker_selector: str | None = None
    reports_dir: Path = Path("reports")
    keep_probes: bool = False
    cleanup_only: bool = False
    probe_timeout: float = 2.0
    probe_retries: int = 1
    ready_timeout: float = 180.0
    lock_wait: float = 0.0
    pod_port: int = 9376
    host_port: int = 9377
    service_port: int = 9378
    harbor_url: str | None = None
    harbor_registry: str | None = None
    harbor_project: str | None = None
    harbor_timeout: float = 60.0
    aws_region: str | None = None
    docs_base_url: str | None = None
    client_kubeconfigs: list[str] = field(default_factory=list)
    extra_secrets: list[str] = field(default_factory=list)

    @property
    def image(self) -> str:
        """The probe image as pods will pull it, after the registry override."""
        if not self.image_registry:
            return self.probe_image
        name = self.probe_image
        first, _, rest = name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            name = rest  # drop the original registry host
        if name.startswith("library/"):
            name = name[len("library/") :]
        return f"{self.image_registry.rstrip('/')}/{name}"

    def to_json(self) -> dict:
        data = asdict(self)
        data["reports_dir"] = str(self.reports_dir)
        data.pop("extra_secrets")
        return data


def default_kubeconfig() -> str | None:
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    home = Path.home() / ".kube" / "config"
    return str(home)


def add_options(parser) -> None:
    group = parser.getgroup("seatrials", "seatrials: acceptance sea trials for a new cluster")
    add = group.addoption
    add("--kubeconfig", default=None,
        help="kubeconfig of the cluster under trial (default: $KUBECONFIG, then ~/.kube/config)")
    add("--context", default=None, help="kubeconfig context to use (default: the current context)")
    add("--probe-image", default=DEFAULT_PROBE_IMAGE,
        help=f"image of the probe pods; any busybox >= 1.35 works (default: {DEFAULT_PROBE_IMAGE})")
    add("--image-registry", default=None,
        help="registry (and project) the probe image is mirrored to, e.g. harbor.example.com/library")
    add("--expect-service-ip", default=None,
        help="ClusterIP the `kubernetes` service must have, e.g. 10.32.0.1")
    add("--master-selector", default=None,
        help="label selector of the masters (default: control-plane labels or taints)")
    add("--worker-selector", default=None,
        help="label selector of the workers (default: every node that is not a master)")
    add("--reports-dir", default="reports", help="where JUnit, allure and sign-off reports go (default: reports/)")
    add("--keep-probes", action="store_true", help="leave the probe namespace in place after the run")
    add("--cleanup-only", action="store_true",
        help="delete what earlier runs left behind (namespaces and lock labelled by seatrials), then exit")
    add("--probe-timeout", type=float, default=2.0, help="connect timeout of one probe, seconds (default 2)")
    add("--probe-retries", type=int, default=1,
        help="extra tries for a failed probe; only failures are retried (default 1)")
    add("--ready-timeout", type=float, default=180.0, help="how long probe pods may take to start, seconds")
    add("--lock-wait", type=float, default=0.0,
        help="seconds to wait for another run's lock on the cluster before refusing (default 0: refuse at once)")
    add("--probe-ports", default="9376,9377,9378",
        help="pod probe port, host-network probe port, externalIPs service port (default 9376,9377,9378)")
    add("--harbor-url", default=os.environ.get("SEATRIALS_HARBOR_URL"),
        help="Harbor URL for the push-then-list check (default $SEATRIALS_HARBOR_URL); "
             "credentials come from $HARBOR_USERNAME and $HARBOR_PASSWORD")
    add("--harbor-registry", default=os.environ.get("SEATRIALS_HARBOR_REGISTRY"),
        help="registry endpoint behind Harbor if it differs from --harbor-url (default $SEATRIALS_HARBOR_REGISTRY)")
    add("--harbor-project", default=os.environ.get("SEATRIALS_HARBOR_PROJECT", "library"),
        help="Harbor project to push the test image to (default library)")
    add("--harbor-timeout", type=float, default=60.0, help="how long a pushed tag may take to show in Harbor, seconds")
    add("--aws-region", default=None,
        help="AWS region of the nodes (default: $AWS_REGION/$AWS_DEFAULT_REGION); AWS checks skip without credentials")
    add("--client-kubeconfig", action="append", default=[], metavar="PATH",
        help="a kubeconfig handed to another client (e.g. a Java app); its credentials are checked too "
             "(repeatable)")
    add("--docs-base-url", default=None,
        help="base URL of the cause pages for report links (default: the docs/causes folder of this checkout)")


def settings_from(config) -> Settings:
    opt = config.getoption
    pod_port, host_port, service_port = (int(p) for p in opt("--probe-ports").split(","))
    return Settings(
        kubeconfig=opt("--kubeconfig") or default_kubeconfig(),
        context=opt("--context"),
        probe_image=opt("--probe-image"),
        image_registry=opt("--image-registry"),
        expect_service_ip=opt("--expect-service-ip"),
        master_selector=opt("--master-selector"),
        worker_selector=opt("--worker-selector"),
        reports_dir=Path(opt("--reports-dir")),
        keep_probes=opt("--keep-probes"),
        cleanup_only=opt("--cleanup-only"),
        probe_timeout=opt("--probe-timeout"),
        probe_retries=opt("--probe-retries"),
        ready_timeout=opt("--ready-timeout"),
        lock_wait=opt("--lock-wait"),
        pod_port=pod_port,
        host_port=host_port,
        service_port=service_port,
        harbor_url=opt("--harbor-url"),
        harbor_registry=opt("--harbor-registry"),
        harbor_project=opt("--harbor-project"),
        harbor_timeout=opt("--harbor-timeout"),
        aws_region=opt("--aws-region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        docs_base_url=opt("--docs-base-url"),
        client_kubeconfigs=opt("--client-kubeconfig"),
        extra_secrets=[v for v in (os.environ.get("HARBOR_PASSWORD"), os.environ.get("AWS_SECRET_ACCESS_KEY"),
                                   os.environ.get("AWS_SESSION_TOKEN")) if v],
    )
