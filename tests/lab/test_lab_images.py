"""Locally built images: reproducible layers in an OCI layout containerd can import by name."""

import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile

import pytest
from seatrials_lab.images import BUSYBOX, XTABLES, Image, busybox_image, component_image, oci_archive, python_image


def small_image():
    return Image(
        "example.test/tool:1",
        {"Entrypoint": ["/tool"]},
        files={"tool": (b"#!/bin/sh\n", 0o755)},
        links={"bin/alias": "/tool"},
        directories={"bin": 0o755},
    )


def test_layers_are_reproducible():
    assert small_image().layer() == small_image().layer()
    assert oci_archive(small_image()) == oci_archive(small_image())


def test_archive_is_an_oci_layout_named_for_containerd():
    with tarfile.open(fileobj=io.BytesIO(oci_archive(small_image()))) as tar:
        names = tar.getnames()
        index = json.load(tar.extractfile("index.json"))
        manifest_digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(tar.extractfile(f"blobs/sha256/{manifest_digest}"))
    assert "oci-layout" in names
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "example.test/tool:1"
    assert f"blobs/sha256/{manifest['layers'][0]['digest'].split(':')[1]}" in names


def test_layer_holds_files_links_and_directories_owned_by_root():
    with tarfile.open(fileobj=io.BytesIO(small_image().layer())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["tool"].mode == 0o755 and members["tool"].uid == 0 and members["tool"].mtime == 0
    assert members["bin/alias"].issym() and members["bin/alias"].linkname == "/tool"


@pytest.mark.skipif(not shutil.which("busybox"), reason="busybox-static is not installed")
def test_probe_image_has_the_applets_the_suite_uses():
    image = busybox_image()
    assert image.ref == BUSYBOX
    applets = {path.rsplit("/", 1)[-1] for path in image.links}
    needed = {"sh", "httpd", "wget", "nc", "ping", "nslookup", "hostname", "sleep", "cat", "echo", "date", "mkdir"}
    assert needed | {"timeout", "seq"} <= applets


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_a_python_image_runs_a_program_of_its_venv_as_nobody(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "bin" / "hello").write_text(f"#!{venv}/bin/python\nimport json, ssl, sys\nprint(json.dumps(sys.prefix))\n")
    (venv / "bin" / "hello").chmod(0o755)
    image = python_image("example.test/python:1", venv)
    root = tmp_path / "root"
    with tarfile.open(fileobj=io.BytesIO(image.layer())) as tar:
        tar.extractall(root, filter="fully_trusted")
    path = next(e for e in image.config["Env"] if e.startswith("PATH=")).removeprefix("PATH=")
    said = subprocess.run(["chroot", "--userspec=65534:65534", str(root), "/bin/sh", "-c", "hello"],
                          env={"PATH": path}, capture_output=True, text=True, timeout=60)
    assert said.returncode == 0, said.stderr
    assert json.loads(said.stdout) == "/opt/venv"  # the venv moved where no volume hides it
    tests = f"{sysconfig.get_paths()['stdlib'].lstrip('/')}/test/"  # the stdlib's own tests: 30 MB nobody runs
    assert not any("__pycache__" in p or p.startswith(tests) for p in image.files)


def test_kubeadms_images_are_the_lab_binaries_where_upstreams_images_have_them(tmp_path):
    for name in ("kube-apiserver", "kube-proxy", "pause"):
        (tmp_path / name).write_bytes(f"#!/bin/sh\n# {name}\n".encode())
    apiserver = component_image("registry.k8s.io/kube-apiserver:v1.37.2", tmp_path)
    assert apiserver.ref == "registry.k8s.io/kube-apiserver:v1.37.2"
    assert apiserver.files["usr/local/bin/kube-apiserver"] == ((tmp_path / "kube-apiserver").read_bytes(), 0o755)
    assert "usr/sbin/iptables" not in apiserver.links
    if XTABLES.exists():  # kube-proxy programs the node's iptables from inside its container
        proxy = component_image("registry.k8s.io/kube-proxy:v1.37.2", tmp_path)
        assert proxy.links["usr/sbin/iptables"] == XTABLES.name
    pause = component_image("registry.k8s.io/pause:3.10.2", tmp_path)  # the lab's pause, under kubeadm's tag
    assert pause.ref == "registry.k8s.io/pause:3.10.2" and pause.config["Entrypoint"] == ["/pause"]
