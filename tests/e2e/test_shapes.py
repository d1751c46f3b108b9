"""The lab's other shapes, each brought up for real with the whole suite run on it, and torn down again
leaving nothing behind (`tox -e lab-shapes`; the detection matrix covers flannel-vxlan in `tox -e lab`).

flannel-vxlan across three subnets and flannel-host-gw: flannel runs on every node as upstream deploys
it, and what the nodes and its ConfigMap show is what a flannel cluster shows. Native routing across
three subnets: pods reach each other between subnets because the route tables route their CIDRs, and
stop when a route goes. 3 masters and 12 workers: the size signs off too."""

import json

import boto3
import pytest
from kubernetes import client, config

from tests.e2e import shapes
from tests.e2e.conftest import lab

pytestmark = pytest.mark.lab

FLANNEL = "kube-flannel"


@pytest.fixture(scope="module", params=["flannel-vxlan", "flannel-host-gw", "native-3-subnets", "native-3+12"])
def shape(request, lab_env):
    shapes.ensure(request.param)
    yield request.param
    shapes.ensure("native")  # what the modules after this one expect


def test_the_healthy_shape_signs_off(shape, run_suite):
    run = run_suite("-v")  # -v: the report header names the CNI
    assert run.returncode == 0, run.output[-3000:]
    assert run.signoff["verdict"] == "SIGNED OFF" and run.failures() == []
    wanted = shapes.SHAPES[shape]
    assert run.signoff["nodes"] == wanted["masters"] + wanted["workers"]
    cni = wanted["cni"].replace("-", " (", 1) + ")" if wanted["cni"] != "native" else "other"
    assert f"cni: {cni}" in run.stdout


def test_flannel_runs_on_every_node_as_in_a_flannel_cluster(shape, lab_env):
    backend = shapes.SHAPES[shape]["cni"].removeprefix("flannel-")
    if backend == "native":
        pytest.skip("no flannel in this shape")
    api = config.new_client_from_config(lab_env["KUBECONFIG"])
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    nodes = core.list_node().items
    daemonset = apps.read_namespaced_daemon_set("kube-flannel-ds", FLANNEL).status
    assert daemonset.number_ready == daemonset.desired_number_scheduled == len(nodes)
    net_conf = core.read_namespaced_config_map("kube-flannel-cfg", FLANNEL).data["net-conf.json"]
    assert json.loads(net_conf)["Backend"]["Type"] == backend
    for node in nodes:
        annotations = node.metadata.annotations
        internal = next(a.address for a in node.status.addresses if a.type == "InternalIP")
        assert annotations["flannel.alpha.coreos.com/backend-type"] == backend
        assert annotations["flannel.alpha.coreos.com/public-ip"] == internal
        assert annotations["flannel.alpha.coreos.com/kube-subnet-manager"] == "true"
        assert node.spec.pod_cidr.startswith("10.200.")
        conditions = {c.type: c.status for c in node.status.conditions}
        assert conditions["NetworkUnavailable"] == "False"  # flannel says so once its lease is up


def test_native_pods_cross_subnets_only_by_the_route_tables(shape, lab_env, run_suite):
    if shape != "native-3-subnets":
        pytest.skip("the route tables matter where pod IPs cross subnets natively")
    moto = {k.removeprefix("AWS_").lower(): v for k, v in lab_env.items() if k in ("AWS_ENDPOINT_URL", "AWS_REGION")}
    ec2 = boto3.client("ec2", endpoint_url=moto["endpoint_url"], region_name=moto["region"],
                       aws_access_key_id=lab_env["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=lab_env["AWS_SECRET_ACCESS_KEY"])
    subnet = ec2.describe_subnets(Filters=[{"Name": "cidr-block", "Values": ["10.240.1.0/24"]}])["Subnets"][0]
    table = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet["SubnetId"]]}])[
        "RouteTables"][0]
    route = next(r for r in table["Routes"] if r["DestinationCidrBlock"] == "10.200.22.0/24")  # worker-2's pods
    ec2.delete_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock=route["DestinationCidrBlock"])
    assert lab("sync-vpc").returncode == 0
    try:
        broken = run_suite("-k", "pod_to_pod")
    finally:
        ec2.create_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock=route["DestinationCidrBlock"],
                         InstanceId=route["InstanceId"])
        assert lab("sync-vpc").returncode == 0
    # Subnet 1 (worker-1, worker-3) no longer routes to worker-2's pods: requests one way, replies the other.
    in_subnet_1 = ("worker-1", "worker-3")
    cut = {f"{a}->worker-2" for a in in_subnet_1} | {f"worker-2->{a}" for a in in_subnet_1}
    assert {case for check, case, _ in broken.failures() if check == "test_pod_to_pod"} == cut, broken.output[-3000:]
    healed = run_suite("-k", "pod_to_pod")
    # a selection is never a sign-off: PARTIAL (6), with nothing failed
    assert healed.returncode == 6 and healed.signoff["verdict"] == "PARTIAL" and healed.failures() == [], \
        healed.output[-3000:]


def test_down_leaves_nothing_of_the_shape(shape):
    down = lab("down", check=False)
    assert down.returncode == 0, down.stderr  # `down` itself fails on any leftover it knows of
    assert "lab is down" in lab("status", check=False).stdout and "leftovers" not in lab("status", check=False).stdout
    assert not shapes.traces_left(), shapes.traces_left()[:3]
