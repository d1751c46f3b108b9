"""Command-line options of the suite and the settings object built from them.

Each option is written once, as a field of `Settings` whose metadata holds its
flag, help, environment variable and check; `add_options` and `settings_from`
read those fields. This module is the pytest plugin that registers them
(the checkout's conftest.py loads it, `seatrials run` passes `-p
seatrials.options`), so `pytest --help` lists them without touching any
cluster; everything else reads `Settings`. A bad value is one line naming the option, before anything runs.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from seatrials.kubeconfig import IN_CLUSTER, inside_a_pod

DEFAULT_PROBE_IMAGE = "docker.io/library/busybox:1.36.1"
DEFAULT_PAIR_CASES_UP_TO = 30  # nodes; chosen from measurement (README, Speed)
# What a sign-off covers, by suite module (suites/test_<module>.py carries its area as a mark).
AREAS = ("network", "kubelet", "apiserver", "credentials", "aws", "harbor")


class BadOption(ValueError):
    """An option's value cannot be used; str(self) is the one line to show."""


# ---------------------------------------------------------------- value checks
def positive(value: float) -> str | None:
    return None if value > 0 else "must be more than 0"


def not_negative(value: float) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def an_ip(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "is not an IP address"
    return None


def an_http_url(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parts = urlsplit(value if "://" in value else f"https://{value}")
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http(s) URL with a host"
    return None


def parse_ports(text: str) -> tuple[int, int, int]:
    try:
        ports = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise BadOption("must be three port numbers, e.g. 9376,9377,9378") from None
    if len(ports) != 3 or not all(0 < p < 65536 for p in ports) or len(set(ports)) != 3:
        raise BadOption("must be three different port numbers (1 to 65535), e.g. 9376,9377,9378")
    return ports


def parse_areas(text: str) -> tuple[str, ...]:
    names = [a.strip() for a in text.split(",") if a.strip()]
    if names == ["all"]:
        return AREAS
    unknown = [a for a in names if a not in AREAS]
    if unknown:
        raise BadOption(f"names unknown areas {', '.join(unknown)}: choose from {', '.join(AREAS)} or all")
    return tuple(names)


def one_of(*choices: str):
    def parse(text: str) -> str:
        if text not in choices:
            raise BadOption(f"must be {' or '.join(choices)}")
        return text

    return parse


def existing(path: Path | None) -> str | None:
    return None if path is None or path.exists() else "does not exist"


def parse_pairs(text: str) -> int | None:
    """`all` -> None (every target); `sample:K` -> K targets per source (K >= 1)."""
    if text == "all":
        return None
    kind, _, k = text.partition(":")
    if kind != "sample" or not k.isdigit() or int(k) < 1:
        raise BadOption("must be all or sample:K, K a whole number of targets per source (1 or more)")
    return int(k)


def writable_dir(path: Path) -> str | None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot be created ({exc.strerror})"
    if not os.access(path, os.W_OK | os.X_OK):
        return "is not writable"
    return None


def option(flag: str, help: str, default=None, *, parse=str, check=None, env: str | None = None,
           action: str | None = None, metavar: str | None = None, factory=None):
    """A Settings field that is also a command-line option."""
    meta = {"flag": flag, "help": help, "parse": parse, "check": check, "env": env, "action": action,
            "metavar": metavar}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Settings:
    kubeconfig: str | None = option(
        "--kubeconfig", "kubeconfig of the cluster under trial (default: $KUBECONFIG, then ~/.kube/config, then "
                        "inside a pod its ServiceAccount; 'in-cluster' asks for that)")
    context: str | None = option("--context", "kubeconfig context to use (default: the current context)")
    probe_image: str = option("--probe-image", f"image of the probe pods; any busybox >= 1.35 works "
                                               f"(default: {DEFAULT_PROBE_IMAGE})", DEFAULT_PROBE_IMAGE)
    image_registry: str | None = option(
        "--image-registry", "registry (and project) the probe image is mirrored to, e.g. harbor.example.com/library")
    expect_service_ip: str | None = option(
        "--expect-service-ip", "ClusterIP the `kubernetes` service must have, e.g. 10.32.0.1", check=an_ip)
    master_selector: str | None = option(
        "--master-selector", "label selector of the masters (default: control-plane labels or taints)")
    worker_selector: str | None = option(
        "--worker-selector", "label selector of the workers (default: every node that is not a master)")
    namespace: str | None = option(
        "--namespace", "run in this existing namespace (manifests/rbac.yaml makes one for a least-privilege "
                       "ServiceAccount) instead of a namespace of the run's own")
    require: tuple[str, ...] = option(
        "--require", f"areas that must be checked to sign off, comma-separated, or all ({', '.join(AREAS)}); "
                     "a required area that could not be checked fails the sign-off (default: none; "
                     "$SEATRIALS_REQUIRE)", (), parse=parse_areas, env="SEATRIALS_REQUIRE", metavar="AREAS")
    reports_dir: Path = option("--reports-dir", "where JUnit, allure and sign-off reports go (default: reports/)",
                               Path("reports"), parse=Path, check=writable_dir)
    baseline: Path | None = option(
        "--baseline", "a previous run's signoff.json, or a directory of them (e.g. last night's report folder): the "
                      "reports say what is new, fixed, still failing (since when) and flaky", parse=Path,
        check=existing, metavar="PATH")
    fail_on: str = option(
        "--fail-on", "any (default): exit with the verdict's code; new: a NOT SIGNED OFF run whose failures were "
                     "all failing in the baseline too exits 0 (a run that stopped or ran a selection never does)",
        "any", parse=one_of("any", "new"))
    keep_probes: bool = option("--keep-probes", "leave the probe namespace in place after the run", False,
                               action="store_true")
    cleanup_only: bool = option(
        "--cleanup-only", "delete what earlier runs left behind (namespaces and lock labelled by seatrials), "
                          "then exit", False, action="store_true")
    probe_timeout: float = option("--probe-timeout", "connect timeout of one probe, seconds (default 2)", 2.0,
                                  parse=float, check=positive)
    probe_retries: int = option("--probe-retries", "extra tries for a failed probe; only failures are retried, "
                                                   "after every first try (default 1)", 1, parse=int,
                                check=not_negative)
    ready_timeout: float = option("--ready-timeout", "how long probe pods may take to start, seconds "
                                                     "(default 180)", 180.0, parse=float, check=positive)
    lock_wait: float = option("--lock-wait", "seconds to wait for another run's lock on the cluster before "
                                             "refusing (default 0: refuse at once)", 0.0, parse=float,
                              check=not_negative)
    pair_cases_up_to: int = option(
        "--pair-cases-up-to", "up to this many nodes one test case per ordered node pair and path; above it one "
                              f"case per source node and path listing every failed target (default "
                              f"{DEFAULT_PAIR_CASES_UP_TO})", DEFAULT_PAIR_CASES_UP_TO, parse=int,
        check=not_negative, metavar="NODES")
    pairs: int | None = option(
        "--pairs", "all: every node probes every node (default); sample:K: each node probes every master and K "
                   "other nodes drawn from the run id (printed), every node still probed by another",
        None, parse=parse_pairs, metavar="all|sample:K")
    probe_ports: tuple[int, int, int] = option(
        "--probe-ports", "pod probe port, host-network probe port, externalIPs service port "
                         "(default 9376,9377,9378)", (9376, 9377, 9378), parse=parse_ports)
    harbor_url: str | None = option(
        "--harbor-url", "Harbor URL for the push-then-list check (default $SEATRIALS_HARBOR_URL); credentials "
                        "come from $HARBOR_USERNAME and $HARBOR_PASSWORD", check=an_http_url,
        env="SEATRIALS_HARBOR_URL")
    harbor_registry: str | None = option(
        "--harbor-registry", "registry endpoint behind Harbor if it differs from --harbor-url "
                             "(default $SEATRIALS_HARBOR_REGISTRY)", check=an_http_url,
        env="SEATRIALS_HARBOR_REGISTRY")
    harbor_project: str = option("--harbor-project", "Harbor project to push the test image to (default library)",
                                 "library", env="SEATRIALS_HARBOR_PROJECT")
    harbor_timeout: float = option("--harbor-timeout", "how long a pushed tag may take to show in Harbor, "
                                                       "seconds (default 60)", 60.0, parse=float, check=positive)
    aws_region: str | None = option(
        "--aws-region", "AWS region of the nodes (default: $AWS_REGION/$AWS_DEFAULT_REGION, then the nodes' "
                        "providerIDs); AWS checks are not checked without credentials")
    docs_base_url: str | None = option(
        "--docs-base-url", "base URL of the cause pages for report links (default: the pages rendered into "
                           "the report folder's causes/)")
    client_kubeconfigs: list[str] = option(
        "--client-kubeconfig", "a kubeconfig handed to another client (e.g. a Java app); its credentials are "
                               "checked too (repeatable)", action="append", metavar="PATH", factory=list)
    # Not options: read from the environment, kept out of every report.
    extra_secrets: list[str] = field(default_factory=list)

    @property
    def pod_port(self) -> int:
        return self.probe_ports[0]

    @property
    def host_port(self) -> int:
        return self.probe_ports[1]

    @property
    def service_port(self) -> int:
        return self.probe_ports[2]

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
        data["baseline"] = str(self.baseline) if self.baseline else None
        data.pop("extra_secrets")
        return data


OPTIONS = [f for f in fields(Settings) if "flag" in f.metadata]


def default_kubeconfig() -> str | None:
    """$KUBECONFIG, else ~/.kube/config, else inside a pod its ServiceAccount (kubeconfig.IN_CLUSTER)."""
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    home = Path.home() / ".kube" / "config"
    return IN_CLUSTER if not home.exists() and inside_a_pod() else str(home)


def pytest_addoption(parser) -> None:
    """seatrials.options as a pytest plugin (`-p seatrials.options`, as `seatrials run` loads it): the options
    must be known before the command line is parsed, which a conftest inside an installed package is too late
    for (pytest --pyargs)."""
    add_options(parser)


def add_options(parser) -> None:
    group = parser.getgroup("seatrials", "seatrials: acceptance sea trials for a new cluster")
    for f in OPTIONS:
        meta = f.metadata
        kwargs = {"help": meta["help"], "dest": f.name}
        if meta["action"]:
            kwargs["action"] = meta["action"]
        if meta["metavar"]:
            kwargs["metavar"] = meta["metavar"]
        # Values stay text until settings_from, which parses and checks them with one-line errors.
        kwargs["default"] = [] if meta["action"] == "append" else False if meta["action"] == "store_true" else None
        group.addoption(meta["flag"], **kwargs)


def value_of(f, given):
    """An option's value: given on the command line, else its environment variable, else the default."""
    meta = f.metadata
    text = given if given not in (None, []) else (os.environ.get(meta["env"]) if meta["env"] else None)
    if text in (None, []) or isinstance(text, bool):
        value = text if isinstance(text, bool) else (f.default_factory() if f.default is MISSING else f.default)
    else:
        try:
            value = meta["parse"](text) if not isinstance(text, list) else [meta["parse"](t) for t in text]
        except BadOption as exc:
            raise BadOption(f"{meta['flag']} {text}: {exc}") from None
        except ValueError:
            kind = {int: "a whole number", float: "a number"}.get(meta["parse"], "valid")
            raise BadOption(f"{meta['flag']} {text}: is not {kind}") from None
    problem = meta["check"](value) if meta["check"] else None
    if problem:
        raise BadOption(f"{meta['flag']} {text if text is not None else value}: {problem}")
    return value


def settings_from(config) -> Settings:
    """Settings from pytest's options; BadOption (one line) for a value that cannot be used."""
    values = {f.name: value_of(f, getattr(config.option, f.name, None)) for f in OPTIONS}
    values["kubeconfig"] = values["kubeconfig"] or default_kubeconfig()
    values["aws_region"] = values["aws_region"] or os.environ.get("AWS_REGION") or os.environ.get(
        "AWS_DEFAULT_REGION")
    secrets = [os.environ.get(v) for v in ("HARBOR_PASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]
    return Settings(**values, extra_secrets=[v for v in secrets if v])
