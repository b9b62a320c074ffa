#!/usr/bin/env python3
"""Drive `lbsim serve` through Huawei Cloud's own Python SDKs (issue 6, "real clients").

Run by scripts/sdk_test.sh, which installs the pinned SDKs in a venv and starts the server:
    python scripts/sdk_test.py --endpoint http://127.0.0.1:PORT --ak AK --sk SK [--verbose]

Every cloud API endpoint is called through the SDK's own request and response classes, signed with
AK/SK (BasicCredentials with the project id given, so no identity service is asked):
  roma  create_project_vpc_channel, create_member_group (create VPC channel, add or update member groups)
  ga    create_endpoint_group, create_endpoint (add endpoint group; GA's add-endpoint call, docs/architecture.md §9)
  sdrs  create_protection_group, show_job_status, start_failover_protection_group (create protection group, failover)
plus the reads that show what was made, and a wrongly signed call that must get 401.
Each response must parse into the SDK's response object without a type-conversion warning; key
fields are checked. Exits non-zero on the first failure. Every call has a bounded timeout.
"""
import argparse
import sys
import time
import warnings

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.http.http_handler import HttpHandler
from huaweicloudsdkcore.warning.warning import TypeConversionWarning
from huaweicloudsdkga.v1 import GaClient
from huaweicloudsdkga.v1 import model as ga
from huaweicloudsdkroma.v2 import RomaClient
from huaweicloudsdkroma.v2 import model as roma
from huaweicloudsdksdrs.v1 import SdrsClient
from huaweicloudsdksdrs.v1 import model as sdrs

PROJECT = "05a3fb4ec280d5d52f76c0173cc91a4e"
INSTANCES = ["eea73cde015940908ae0117d67bf7330", "ddd73cde017890908ae0117d67bf7330"]
JOB_POLL_S = 30

# A response field the server sends with the wrong type or format is a failure, not a warning.
warnings.simplefilter("error", TypeConversionWarning)
warnings.simplefilter("error", ImportWarning)


class Check:
    def __init__(self):
        self.passed = 0

    def eq(self, what, got, want):
        if got != want:
            raise AssertionError(f"{what}: got {got!r}, want {want!r}")
        self.passed += 1

    def true(self, what, cond):
        if not cond:
            raise AssertionError(what)
        self.passed += 1


def builder(client_cls, endpoint, ak, sk, log):
    config = HttpConfig.get_default_config()
    config.timeout = (5, 20)
    config.retry_times = 0
    handler = HttpHandler().add_request_handler(log)
    return (client_cls.new_builder()
            .with_http_config(config)
            .with_credentials(BasicCredentials(ak, sk, PROJECT))
            .with_endpoint(endpoint)
            .with_http_handler(handler)
            .build())


def wait_job(client, check, job_id, what):
    """Polls show_job_status until the job leaves RUNNING/INIT, at most JOB_POLL_S seconds."""
    deadline = time.monotonic() + JOB_POLL_S
    while True:
        job = client.show_job_status(sdrs.ShowJobStatusRequest(job_id=job_id))
        check.true(f"{what}: show_job_status parses", isinstance(job, sdrs.ShowJobStatusResponse))
        check.eq(f"{what}: job_id echoed", job.job_id, job_id)
        if job.status not in ("INIT", "RUNNING", "WAITING", None):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: job {job_id} still {job.status} after {JOB_POLL_S} s")
        time.sleep(0.2)


def vpc_channel_body(name):
    """The create-VPC-channel API's example request, with a name of our own."""
    return roma.ProjectVpcCreate(
        name=name, port=22, balance_strategy=1, member_type="ip",
        vpc_health_config=roma.VpcHealthConfig(
            http_code="200", path="/vpc/demo", port=22, protocol="http", threshold_abnormal=5,
            threshold_normal=2, time_interval=10, timeout=5, enable_client_ssl=False),
        member_groups=[
            roma.MemberGroupCreate(member_group_name="test", member_group_weight=1, member_group_remark="remark"),
            roma.MemberGroupCreate(member_group_name="default", member_group_weight=2, member_group_remark="remark"),
        ],
        members=[
            roma.MemberInfo(host="192.168.0.5", weight=1, member_group_name="test"),
            roma.MemberInfo(host="192.168.1.124", weight=2, member_group_name="default"),
        ],
        instance_ids=INSTANCES)


def test_roma(client, check):
    resp = client.create_project_vpc_channel(
        roma.CreateProjectVpcChannelRequest(body=vpc_channel_body("VPC_demo_sdk")))
    check.true("create_project_vpc_channel parses", isinstance(resp, roma.CreateProjectVpcChannelResponse))
    check.eq("create_project_vpc_channel status", resp.status_code, 201)
    channels = resp.project_vpc_channels or []
    check.eq("one channel per instance id", sorted(c.instance_id for c in channels), sorted(INSTANCES))
    for c in channels:
        check.eq("channel name", c.name, "VPC_demo_sdk")
        check.eq("channel port", c.port, 22)
        check.eq("channel balance_strategy", c.balance_strategy, 1)
        check.true("channel id", bool(c.id))
        check.eq("channel member groups", sorted(g.member_group_name for g in c.member_groups or []),
                 ["default", "test"])
        check.true("member group ids", all(g.member_group_id for g in c.member_groups))
        check.eq("health config path", c.vpc_health_config.path, "/vpc/demo")
    channel = next(c for c in channels if c.instance_id == INSTANCES[0])

    groups = client.create_member_group(roma.CreateMemberGroupRequest(
        instance_id=INSTANCES[0], vpc_channel_id=channel.id,
        body=roma.MemberGroupCreateBatch(member_groups=[
            roma.MemberGroupCreate(member_group_name="blue", member_group_weight=3, member_group_remark="first"),
            roma.MemberGroupCreate(member_group_name="blue", member_group_weight=9, member_group_remark="dup"),
            roma.MemberGroupCreate(member_group_name="test", member_group_weight=7, member_group_remark="updated"),
        ])))
    check.true("create_member_group parses", isinstance(groups, roma.CreateMemberGroupResponse))
    check.eq("create_member_group status", groups.status_code, 201)
    by_name = {g.member_group_name: g for g in groups.member_groups or []}
    check.eq("size is the list's length", groups.size, len(groups.member_groups))
    check.true("total counts at least the returned groups", groups.total >= groups.size)
    check.eq("first duplicate wins (weight)", by_name["blue"].member_group_weight, 3)
    check.eq("first duplicate wins (remark)", by_name["blue"].member_group_remark, "first")
    check.eq("existing group is updated", by_name["test"].member_group_weight, 7)
    check.true("member group ids", all(g.member_group_id for g in groups.member_groups))

    listed = client.list_member_groups(roma.ListMemberGroupsRequest(
        instance_id=INSTANCES[0], vpc_channel_id=channel.id))
    check.true("list_member_groups parses", isinstance(listed, roma.ListMemberGroupsResponse))
    check.eq("list_member_groups names", sorted(g.member_group_name for g in listed.member_groups or []),
             ["blue", "default", "test"])

    shown = client.show_details_of_vpc_channel_v2(roma.ShowDetailsOfVpcChannelV2Request(
        instance_id=INSTANCES[0], vpc_channel_id=channel.id))
    check.true("show_details_of_vpc_channel_v2 parses", isinstance(shown, roma.ShowDetailsOfVpcChannelV2Response))
    check.eq("shown channel id", shown.id, channel.id)
    check.eq("shown members", sorted(m.host for m in shown.members or []), ["192.168.0.5", "192.168.1.124"])
    return channel


def test_ga(client, check, channel):
    resp = client.create_endpoint_group(ga.CreateEndpointGroupRequest(body=ga.CreateEndpointGroupRequestBody(
        endpoint_group=ga.CreateEndpointGroupOption(
            name="endpoint-group-name", description="endpoint-group description", traffic_dial_percentage=10,
            region_id="ap-southeast-1", listeners=[ga.Id(id="1b11747a-b139-492f-9692-2df0b1c87193")]))))
    check.true("create_endpoint_group parses", isinstance(resp, ga.CreateEndpointGroupResponse))
    check.eq("create_endpoint_group status", resp.status_code, 201)
    group = resp.endpoint_group
    check.true("endpoint group id", bool(group.id))
    check.eq("endpoint group name", group.name, "endpoint-group-name")
    check.eq("traffic dial", group.traffic_dial_percentage, 10)
    check.eq("region", group.region_id, "ap-southeast-1")
    check.eq("listeners", [x.id for x in group.listeners or []], ["1b11747a-b139-492f-9692-2df0b1c87193"])
    check.true("request_id", bool(resp.request_id))

    # VPC_CHANNEL is lbsim's resource type (docs/architecture.md §9); the SDK's EndpointType enum does not
    # list it, so it goes as a plain string and comes back as an empty EndpointType object.
    added = client.create_endpoint(ga.CreateEndpointRequest(
        endpoint_group_id=group.id,
        body=ga.CreateEndpointRequestBody(endpoint=ga.CreateEndpointOption(
            resource_id=channel.id, resource_type="VPC_CHANNEL", weight=100))))
    check.true("create_endpoint parses", isinstance(added, ga.CreateEndpointResponse))
    check.eq("create_endpoint status", added.status_code, 201)
    check.true("endpoint id", bool(added.endpoint.id))
    check.eq("endpoint resource_id", added.endpoint.resource_id, channel.id)
    check.eq("endpoint weight", added.endpoint.weight, 100)
    check.eq("endpoint group of endpoint", added.endpoint.endpoint_group_id, group.id)
    check.true("raw resource_type", b'"VPC_CHANNEL"' in added.raw_content)

    shown = client.show_endpoint_group(ga.ShowEndpointGroupRequest(endpoint_group_id=group.id))
    check.true("show_endpoint_group parses", isinstance(shown, ga.ShowEndpointGroupResponse))
    check.eq("shown endpoint group", shown.endpoint_group.id, group.id)


def test_sdrs(client, check):
    resp = client.create_protection_group(sdrs.CreateProtectionGroupRequest(
        body=sdrs.CreateProtectionGroupRequestBody(server_group=sdrs.CreateProtectionGroupRequestParams(
            name="testname", description="description", source_availability_zone="AZ01",
            target_availability_zone="AZ02", domain_id="fb4bb8e3-a574-4437-a156-78c916aeea4d",
            source_vpc_id="046852ef-c49d-409b-8389-546aaaa5701f", dr_type="migration"))))
    check.true("create_protection_group parses", isinstance(resp, sdrs.CreateProtectionGroupResponse))
    check.eq("create_protection_group status", resp.status_code, 200)
    check.true("create job id", bool(resp.job_id))
    job = wait_job(client, check, resp.job_id, "create protection group")
    check.eq("create job status", job.status, "SUCCESS")
    group_id = job.entities.server_group_id
    check.true("job names the protection group", bool(group_id))

    shown = client.show_protection_group(sdrs.ShowProtectionGroupRequest(server_group_id=group_id))
    check.true("show_protection_group parses", isinstance(shown, sdrs.ShowProtectionGroupResponse))
    check.eq("protection group name", shown.server_group.name, "testname")
    check.eq("protection group source AZ", shown.server_group.source_availability_zone, "AZ01")

    fo = client.start_failover_protection_group(sdrs.StartFailoverProtectionGroupRequest(
        server_group_id=group_id, body=sdrs.FailoverProtectionGroupRequestBody(failover_server_group={})))
    check.true("start_failover_protection_group parses", isinstance(fo, sdrs.StartFailoverProtectionGroupResponse))
    check.true("failover job id", bool(fo.job_id))
    job = wait_job(client, check, fo.job_id, "failover")
    check.eq("failover job status", job.status, "SUCCESS")
    check.eq("failover job's protection group", job.entities.server_group_id, group_id)


def test_bad_signature(endpoint, ak, check, log):
    client = builder(SdrsClient, endpoint, ak, "not-the-secret-key", log)
    try:
        client.show_job_status(sdrs.ShowJobStatusRequest(job_id="0000000062db92d70162db9d200f000a"))
    except ClientRequestException as e:
        check.eq("wrong SK: status", e.status_code, 401)
        check.true(f"wrong SK: error code {e.error_code}", bool(e.error_code) and e.error_code != "401")
        return
    raise AssertionError("a request signed with the wrong SK was accepted")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--ak", required=True)
    parser.add_argument("--sk", required=True)
    parser.add_argument("--verbose", action="store_true", help="print each request the SDKs send")
    args = parser.parse_args()

    def log(request, logger):
        if args.verbose:
            shown = {k: (v[:40] + "...") if k == "Authorization" else v for k, v in request.header_params.items()}
            print(f"  > {request.method} {request.url} {shown}", flush=True)

    check = Check()
    steps = [
        ("roma", lambda: test_roma(builder(RomaClient, args.endpoint, args.ak, args.sk, log), check)),
        ("ga", lambda: test_ga(builder(GaClient, args.endpoint, args.ak, args.sk, log), check, state["channel"])),
        ("sdrs", lambda: test_sdrs(builder(SdrsClient, args.endpoint, args.ak, args.sk, log), check)),
        ("auth", lambda: test_bad_signature(args.endpoint, args.ak, check, log)),
    ]
    state = {}
    for name, step in steps:
        try:
            result = step()
            if name == "roma":
                state["channel"] = result
            print(f"ok   {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - report any failure with its step, then exit non-zero
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            print(f"0 passed, 1 failed ({check.passed} checks passed before)")
            return 1
    print(f"sdk_test: {check.passed} checks")
    print(f"{len(steps)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
