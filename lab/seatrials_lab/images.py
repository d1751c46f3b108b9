"""Container images built on this machine, since no registry can be reached.

Each image is one layer, packed as an OCI image layout in a tar and imported into every
node's containerd (`ctr images import`); pods use them with imagePullPolicy IfNotPresent.
Layers are reproducible (fixed mtimes and owners), so an image is built once per content
and cached under <cache>/images.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from .layout import Paths
from .shell import run

PAUSE = "registry.k8s.io/pause:3.10"
BUSYBOX = "docker.io/library/busybox:1.36.1"  # the probe image the suite uses by default
BUSYBOX_BINARY = Path("/bin/busybox")  # Debian busybox-static
FORMAT = "1"  # bump to rebuild every cached image when the way images are made changes
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FLANNEL = "localhost/seatrials-lab/flannel"  # + flannel's version: the lab's own flanneld (lab/build/flannel)
# iptables for flanneld, as the machine has it (the nf_tables variant, like the nodes' kube-proxy):
# the multi-call binary under its names, and the extensions it loads at run time.
XTABLES = Path("/usr/sbin/xtables-nft-multi")
XTABLES_NAMES = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore")
XTABLES_EXTENSIONS = Path("/usr/lib/x86_64-linux-gnu/xtables")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"


@dataclass
class Image:
    ref: str
    config: dict
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # path -> (content, mode)
    links: dict[str, str] = field(default_factory=dict)  # path -> symlink target
    directories: dict[str, int] = field(default_factory=dict)  # path -> mode

    def digest(self) -> str:
        h = hashlib.sha256(f"{FORMAT} {self.ref} {json.dumps(self.config, sort_keys=True)}".encode())
        for path, (content, mode) in sorted(self.files.items()):
            h.update(f"{path} {mode} ".encode() + hashlib.sha256(content).digest())
        h.update(json.dumps([sorted(self.links.items()), sorted(self.directories.items())]).encode())
        return h.hexdigest()[:16]

    def layer(self) -> bytes:
        """The uncompressed layer tar, entries in a fixed order, owned by root, mtime 0."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            entries = [(p, "dir") for p in self.directories] + [(p, "file") for p in self.files]
            entries += [(p, "link") for p in self.links]
            for path, kind in sorted(entries):
                info = tarfile.TarInfo(path)
                if kind == "dir":
                    info.type, info.mode = tarfile.DIRTYPE, self.directories[path]
                    tar.addfile(info)
                elif kind == "link":
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, self.links[path], 0o777
                    tar.addfile(info)
                else:
                    content, info.mode = self.files[path]
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
        return buffer.getvalue()


def oci_archive(image: Image) -> bytes:
    """An OCI image layout (oci-layout, index.json, blobs) in a tar, named for containerd's importer."""
    layer = image.layer()
    compressed = gzip.compress(layer, mtime=0)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": image.config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]},
    }
    blobs: dict[str, bytes] = {}

    def blob(media_type: str, data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob("application/vnd.oci.image.config.v1+json", json.dumps(config).encode()),
        "layers": [blob("application/vnd.oci.image.layer.v1.tar+gzip", compressed)],
    }
    descriptor = blob("application/vnd.oci.image.manifest.v1+json", json.dumps(manifest).encode())
    descriptor["platform"] = {"architecture": "amd64", "os": "linux"}
    descriptor["annotations"] = {
        "io.containerd.image.name": image.ref,
        "org.opencontainers.image.ref.name": image.ref.rsplit(":", 1)[1],
    }
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [descriptor]}

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        members = {
            "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
            "index.json": json.dumps(index).encode(),
        }
        members |= {f"blobs/sha256/{digest}": data for digest, data in blobs.items()}
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def pause_image(bin_dir: Path) -> Image:
    return Image(
        PAUSE,
        {"Entrypoint": ["/pause"], "User": "65535:65535", "Env": [PATH_ENV]},
        files={"pause": ((bin_dir / "pause").read_bytes(), 0o755)},
    )


def busybox_image() -> Image:
    """Debian's static busybox with a symlink per applet (sh, httpd, wget, nc, nslookup, ...)."""
    applets = run([str(BUSYBOX_BINARY), "--list-full"]).split()
    image = Image(
        BUSYBOX,
        {"Cmd": ["sh"], "Env": [PATH_ENV]},
        files={
            "bin/busybox": (BUSYBOX_BINARY.read_bytes(), 0o755),
            "etc/passwd": (PASSWD.encode(), 0o644),
            "etc/group": (GROUP.encode(), 0o644),
        },
        directories={"bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755, "etc": 0o755},
    )
    image.directories |= {"tmp": 0o1777, "root": 0o700, "var": 0o755, "var/www": 0o755}
    image.links = {path: "/bin/busybox" for path in applets if path != "bin/busybox"}
    return image


def coredns_image(bin_dir: Path) -> Image:
    version = re.search(r"CoreDNS-(\S+)", run([str(bin_dir / "coredns"), "-version"])).group(1)
    return Image(
        f"registry.k8s.io/coredns/coredns:v{version}",
        {"Entrypoint": ["/coredns"], "Env": [PATH_ENV], "ExposedPorts": {"53/udp": {}, "53/tcp": {}}},
        files={"coredns": ((bin_dir / "coredns").read_bytes(), 0o755)},
    )


def flannel_image(bin_dir: Path) -> Image:
    """The lab's flanneld at /opt/bin/flanneld (as upstream's image has it) with the machine's iptables."""
    version = run([str(bin_dir / "flanneld"), "--version"]).strip()
    return with_iptables(Image(
        f"{FLANNEL}:{version}",
        {"Entrypoint": ["/opt/bin/flanneld"], "Env": [PATH_ENV]},
        files={"opt/bin/flanneld": ((bin_dir / "flanneld").read_bytes(), 0o755)},
        directories={"run": 0o755, "tmp": 0o1777, "etc": 0o755},
    ))


def with_iptables(image: Image) -> Image:
    """The image with the machine's iptables (the nf_tables variant, as the nodes' own kube-proxy uses) and the
    shared libraries and extensions it loads, at the paths the machine has them."""
    programs = [XTABLES, *sorted(XTABLES_EXTENSIONS.glob("*.so"))]
    for path in {*programs, *shared_libraries(programs)}:
        # Under the name the loader looks for (a soname is often a symlink), in the real directory.
        image.files[str(path.parent.resolve() / path.name).lstrip("/")] = (path.resolve().read_bytes(), 0o755)
    image.links |= {f"usr/sbin/{name}": XTABLES.name for name in XTABLES_NAMES}
    image.links |= {"lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin", "bin": "usr/bin"}
    if Path("/etc/protocols").exists():  # iptables names protocols by it
        image.files["etc/protocols"] = (Path("/etc/protocols").read_bytes(), 0o644)
    image.directories |= {parent: 0o755 for parent in parents([*image.files, *image.links])}
    return image


VENV_AT = Path("/opt/venv")  # a python image's venv: not under /tmp, which a pod often mounts a volume over


def python_image(ref: str, venv: Path) -> Image:
    """busybox's shell and applets, the machine's Python at the path the machine has it, and a venv made from it
    at /opt/venv (the #! lines of its scripts rewritten) with its bin/ first on PATH: what a pod needs to run a
    program installed in that venv, e.g. a CronJob of a tool under test."""
    interpreter = (venv / "bin" / "python").resolve()
    stdlib = Path(run([str(interpreter), "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"]).strip())
    image = busybox_image()
    image.ref = ref
    image.config["Env"] = [f"PATH={VENV_AT}/bin:{PATH_ENV.removeprefix('PATH=')}", "PYTHONDONTWRITEBYTECODE=1"]
    shared = add_tree(image, stdlib, stdlib) + add_tree(image, venv, VENV_AT, (f"#!{venv}/", f"#!{VENV_AT}/"))
    add_links_to(image, venv / "bin" / "python", venv)
    add_native(image, [interpreter], shared)
    return image


def add_native(image: Image, programs: list[Path], loaded: list[Path] = ()) -> None:
    """The machine's programs at the paths it has them, with the shared libraries they and `loaded` (shared
    objects already in the image) need, /lib and /lib64 linked into usr/ as on the machine."""
    for path in {*programs, *shared_libraries([*programs, *loaded])}:
        image.files[str(path.parent.resolve() / path.name).lstrip("/")] = (path.resolve().read_bytes(), 0o755)
    image.links |= {link: f"usr/{link}" for link in ("lib", "lib64") if Path(f"/{link}").is_symlink()}
    # Every directory above them open to any user (the pod may run as nobody: /root is 0700 in busybox's).
    image.directories |= {parent: 0o755 for parent in parents([*image.files, *image.links]) if parent != "tmp"}


def add_links_to(image: Image, path: Path, inside: Path) -> None:
    """The symlinks outside `inside` on the way from path to its file (venv/bin/python3 -> /usr/bin/python3 ->
    python3.11)."""
    while path.is_symlink():
        if not path.is_relative_to(inside):
            image.links[str(path).lstrip("/")] = str(path.readlink())
        path = path.parent / path.readlink()


def add_tree(image: Image, root: Path, at: Path, shebang: tuple[str, str] = ("", "")) -> list[Path]:
    """Every file and symlink under root, at `at`, without byte-code caches, nor the stdlib's tests, its
    site-packages and its static library for embedding; a script whose #! line starts with shebang[0] starts
    with shebang[1] instead. Returns the shared objects among them."""
    shared, (old, new) = [], (s.encode() for s in shebang)
    for path in root.rglob("*"):
        top = path.relative_to(root).parts[0]
        if "__pycache__" in path.parts or top in ("test", "site-packages") or top.startswith("config-"):
            continue
        name = str(at / path.relative_to(root)).lstrip("/")
        if path.is_symlink():
            image.links[name] = str(path.readlink())
        elif path.is_file():
            content = path.read_bytes()
            if old and content.startswith(old):
                content = new + content[len(old):]
            image.files[name] = (content, 0o755 if path.stat().st_mode & 0o111 else 0o644)
            if path.suffix == ".so" or ".so." in path.name:
                shared.append(path)
        elif path.is_dir():
            image.directories[name] = 0o755
    return shared


def component_image(ref: str, bin_dir: Path) -> Image:
    """An image of kubeadm's list (registry.k8s.io/<name>:<tag>) from the lab's own binary of that name, at
    /usr/local/bin where upstream's images have it; kube-proxy's with iptables, pause's and CoreDNS's as the
    lab builds them for every layout (under the reference kubeadm asks for)."""
    name = ref.rsplit(":", 1)[0].rsplit("/", 1)[1]
    if name == "pause":
        return replace(pause_image(bin_dir), ref=ref)
    if name == "coredns":
        return replace(coredns_image(bin_dir), ref=ref)
    image = Image(ref, {"Env": [PATH_ENV]}, files={f"usr/local/bin/{name}": ((bin_dir / name).read_bytes(), 0o755)},
                  directories={"usr": 0o755, "usr/local": 0o755, "usr/local/bin": 0o755, "tmp": 0o1777,
                               "var": 0o755, "etc": 0o755, "run": 0o755})  # fmt: skip
    return with_iptables(image) if name == "kube-proxy" else image


# The e2e framework calls curl in its agnhost pods (upstream's image is Alpine's, with curl); this image has
# busybox, whose wget speaks HTTP. A stand-in, labelled: the flags the framework passes, and `timeout N wget`
# (Debian's static busybox crashes on wget -T). It exits like curl: 0 on any HTTP answer, 28 on a timeout,
# 7 when it could not connect; -w prints %{http_code}, -i the headers, -o FILE the body elsewhere.
CURL_STANDIN = r"""#!/bin/sh
# curl stand-in of the seatrials lab's agnhost image (lab/seatrials_lab/images.py): not curl
out=- fmt= max= connect= url= headers=
while [ $# -gt 0 ]; do
  case "$1" in
    -o|--output) out=$2; shift 2 ;;
    -w|--write-out) fmt=$2; shift 2 ;;
    -m|--max-time) max=$2; shift 2 ;;
    --connect-timeout) connect=$2; shift 2 ;;
    -i|--include) headers=1; shift ;;
    -*) shift ;;
    *) url=$1; shift ;;
  esac
done
limit=${max:-60}
if [ -n "$connect" ] && [ $((connect + 1)) -lt "$limit" ]; then limit=$((connect + 1)); fi
tmp=$(mktemp -d)
timeout "$limit" wget -q -S -O "$tmp/body" "$url" 2> "$tmp/headers"
rc=$?
code=$(sed -n 's/^ *HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$tmp/headers" | tail -n 1)
[ -n "$headers" ] && [ "$out" = - ] && sed -n 's/^  //p' "$tmp/headers" && echo
if [ "$out" = - ]; then cat "$tmp/body" 2> /dev/null; elif [ "$out" != /dev/null ]; then cp "$tmp/body" "$out"; fi
[ -n "$fmt" ] && printf '%s' "$fmt" | sed "s/%{http_code}/${code:-000}/g"
rm -rf "$tmp"
if [ -n "$code" ]; then exit 0; elif [ $rc -eq 124 ] || [ $rc -eq 143 ]; then exit 28; else exit 7; fi
"""


# The e2e DNS test runs `dig +notcp|+tcp +noall +answer +search NAME A` in agnhost and in glibc-dns-testing
# and wants a non-empty answer. A stand-in, labelled: busybox's nslookup (over UDP whatever the flags say; musl-
# and glibc-like resolvers alike) printing each address found as an answer line, nothing when none is.
DIG_STANDIN = r"""#!/bin/sh
# dig stand-in of the seatrials lab's e2e images (lab/seatrials_lab/images.py): not dig
name= type=A
for a in "$@"; do
  case "$a" in
    +*|-*) ;;
    A|AAAA|SRV|PTR|CNAME|TXT) type=$a ;;
    *) [ -z "$name" ] && name=$a ;;
  esac
done
nslookup -type="$type" "$name" 2> /dev/null |
  sed -n "/^Name:/,\$ s/^Address:[[:space:]]*\([^[:space:]]*\).*/$name. 30 IN $type \1/p"
"""


# The framework's `echo hostName | nc -v -t -w 2 HOST PORT` (Services): busybox's small nc takes neither -v nor
# -t (it is TCP and quiet); a stand-in, labelled, that drops them and refuses UDP.
NC_STANDIN = r"""#!/bin/sh
# nc stand-in of the seatrials lab's e2e images (lab/seatrials_lab/images.py): busybox's small nc, not netcat
wait=
while [ $# -gt 2 ]; do
  case "$1" in
    -w) wait="-w $2"; shift 2 ;;
    -u) echo "nc stand-in: no UDP (busybox's small nc)" >&2; exit 2 ;;
    *) shift ;;
  esac
done
exec busybox nc $wait "$1" "$2"
"""
DASH = Path("/usr/bin/dash")  # the e2e images' /bin/sh: busybox's own sh runs its applets before PATH's stand-ins


def e2e_image(ref: str, agnhost: Path | None = None) -> Image:
    """An image the e2e tests ask for (`ref`, from `e2e.test --list-images`): busybox's applets, the machine's dash
    as /bin/sh, the curl, dig and nc stand-ins first on PATH (/usr/local/bin), and, for agnhost's, the agnhost
    built from the release (lab/build.sh --peer) at /agnhost, its entrypoint."""
    image = busybox_image()
    image.ref = ref
    if agnhost:
        image.config = {"Entrypoint": ["/agnhost"], "Env": [PATH_ENV]}
        image.files["agnhost"] = (agnhost.read_bytes(), 0o755)
    for name, script in (("curl", CURL_STANDIN), ("dig", DIG_STANDIN), ("nc", NC_STANDIN)):
        image.files[f"usr/local/bin/{name}"] = (script.encode(), 0o755)
    add_native(image, [DASH])
    image.links["bin/sh"] = str(DASH)
    return image


def shared_libraries(programs: list[Path]) -> set[Path]:
    """The shared libraries and the loader the programs need, by the paths ldd names them."""
    found = set()
    for program in programs:
        for line in run(["ldd", str(program)], check=False).splitlines():  # a static one has none
            words = line.split()
            path = words[2] if "=>" in words and len(words) > 2 else words[0]
            if path.startswith("/"):
                found.add(Path(path))
    return found


def parents(paths: list[str]) -> set[str]:
    """Every directory above these layer paths ("usr/lib/x/y" -> usr, usr/lib, usr/lib/x)."""
    return {str(parent) for path in paths for parent in Path(path).parents if str(parent) != "."}


@dataclass(frozen=True)
class Built:
    by_ref: dict[str, Path]  # image reference -> its OCI archive
    coredns: str  # its reference carries CoreDNS's own version
    flannel: str = ""  # likewise flannel's; built only for the flannel shapes

    @property
    def archives(self) -> list[Path]:
        return list(self.by_ref.values())

    def archive(self, ref: str) -> Path:
        return self.by_ref[ref]


def archived(paths: Paths, image: Image) -> Path:
    """The image's OCI archive in the cache, made when it is not there yet."""
    directory = paths.cache / "images"
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / f"{re.sub(r'[^a-zA-Z0-9.]+', '-', image.ref)}-{image.digest()}.tar"
    if not archive.exists():
        partial = archive.with_suffix(".partial")
        partial.write_bytes(oci_archive(image))
        partial.rename(archive)
    return archive


def build(paths: Paths, bin_dir: Path, flannel: bool = False, components: tuple[str, ...] = ()) -> Built:
    """Build (or reuse) every lab image; flannel's only when asked, and the images kubeadm lists (`components`:
    their references) for the kubeadm layout."""
    coredns = coredns_image(bin_dir)
    flanneld = [flannel_image(bin_dir)] if flannel else []
    listed = [component_image(ref, bin_dir) for ref in components]
    archives = {image.ref: archived(paths, image) for image in (pause_image(bin_dir), busybox_image(), coredns,
                                                                *flanneld, *listed)}
    return Built(archives, coredns.ref, flanneld[0].ref if flanneld else "")

