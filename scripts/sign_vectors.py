#!/usr/bin/env python3
"""Print AK/SK signature test vectors made by Huawei Cloud's own Python SDK signer.

Usage: target/sdk-venv/bin/python scripts/sign_vectors.py   (after scripts/sdk_test.sh made the venv,
or any environment with huaweicloudsdkcore==3.1.219 installed).

Each request is signed by huaweicloudsdkcore.signer.signer.Signer exactly as the SDK clients do it
(BasicCredentials adds X-Project-Id, the client adds User-Agent and Content-Type), with a fixed
X-Sdk-Date so the output is reproducible. The `client_*` vectors go through a whole SDK client
call (RomaClient, SdrsClient) and are captured by a request hook just before they would be sent.
The output is Rust source for tests/integration/control_sign.rs: the
request as it goes on the wire (method, path, query, headers, body) and the Authorization value.
"""
import json

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.http.http_handler import HttpHandler
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkroma.v2 import RomaClient
from huaweicloudsdkroma.v2 import model as roma
from huaweicloudsdksdrs.v1 import SdrsClient
from huaweicloudsdksdrs.v1 import model as sdrs

AK = "HPUAEXAMPLEAK0000001"
SK = "s3cr3tSKexample0000000000000000000000000"
PROJECT = "05a3fb4ec280d5d52f76c0173cc91a4e"
HOST = "127.0.0.1:18080"
DATE = "20261123T174500Z"
UA = "huaweicloud-usdk-python/3.0"

CASES = [
    ("create_vpc_channel", "POST", f"/v2/{PROJECT}/apic/vpc-channels", [],
     {"Content-Type": "application/json"},
     json.dumps({"name": "orders", "port": 8080, "balance_strategy": 1, "member_type": "ip",
                 "instance_ids": ["eea73cde015940908ae0117d67bf7330"],
                 "members": [{"host": "10.0.0.1", "weight": 5}]})),
    ("show_job_status", "GET", f"/v1/{PROJECT}/jobs/0a1b2c3d4e5f", [], {"Content-Type": "application/json"}, None),
    ("list_with_query", "GET", f"/v2/{PROJECT}/apic/instances/eea7/vpc-channels",
     [("offset", 0), ("limit", 10), ("name", "a b/c~d+e&f=g"), ("tag", "z"), ("tag", "a"), ("empty", "")],
     {"Content-Type": "application/json"}, None),
    ("quoted_path", "DELETE", f"/v2/{PROJECT}/apic/instances/inst%20one/vpc-channels/ch%2F%C3%A9/", [],
     {"Content-Type": "application/json"}, None),
    ("extra_headers", "PUT", "/v1/endpoint-groups/eg-1", [("force", "true")],
     {"Content-Type": "application/json;charset=UTF-8", "X-Custom": "h\u00e9llo w\u00f6rld",
      "X_Not_Signed": "x"},
     json.dumps({"endpoint_group": {"name": "\u00e9quipe"}}, ensure_ascii=False)),
]


class Captured(Exception):
    """Raised by the request hook to stop a client call before it is sent."""


def client_cases():
    """(name, SdkRequest) for whole client calls, stopped before sending."""
    def capture(request, logger):
        raise Captured(request)

    cases = []
    for name, client_cls, call in [
        ("client_create_project_vpc_channel", RomaClient, lambda c: c.create_project_vpc_channel(
            roma.CreateProjectVpcChannelRequest(body=roma.ProjectVpcCreate(
                name="VPC_demo", port=22, balance_strategy=1, member_type="ip",
                members=[roma.MemberInfo(host="192.168.0.5", weight=1)],
                instance_ids=["eea73cde015940908ae0117d67bf7330"])))),
        ("client_show_job_status", SdrsClient, lambda c: c.show_job_status(
            sdrs.ShowJobStatusRequest(job_id="0000000062db92d70162db9d200f000a"))),
    ]:
        config = HttpConfig.get_default_config()
        config.user_agent = "app/lbsim-sign-vectors"  # the default names the OS, Python and a random id
        client = (client_cls.new_builder().with_http_config(config).with_credentials(BasicCredentials(AK, SK, PROJECT))
                  .with_endpoint(f"http://{HOST}").with_http_handler(HttpHandler().add_request_handler(capture))
                  .build())
        client.preset_headers = {"X-Sdk-Date": DATE}
        try:
            call(client)
        except Captured as c:
            cases.append((name, c.args[0]))
        else:
            raise SystemExit(f"{name}: the request hook did not run")
    return cases


def print_vector(name, req):
    wire_query = req.uri.split("?", 1)[1] if "?" in req.uri else ""
    # The signer leaves header values as latin-1 text of their UTF-8 bytes: what goes on the wire.
    wire = [(k, v.encode("iso-8859-1").decode("utf-8")) for k, v in req.header_params.items()]
    body = req.body.decode("utf-8") if isinstance(req.body, bytes) else (req.body or "")
    print("    Vector {")
    print(f"        name: {rust_str(name)},\n        method: {rust_str(req.method)},")
    print(f"        path: {rust_str(req.resource_path)},\n        query: {rust_str(wire_query)},")
    print("        headers: &[")
    for k, v in wire:
        print(f"            ({rust_str(k)}, {rust_str(v)}),")
    print("        ],")
    print(f"        body: {rust_str(body)},")
    print("    },")


def rust_str(s):
    return json.dumps(s, ensure_ascii=False)


def main():
    signer = Signer(BasicCredentials(AK, SK, PROJECT))
    print(f"const AK: &str = {rust_str(AK)};\nconst SK: &str = {rust_str(SK)};\nconst DATE: &str = {rust_str(DATE)};")
    print("const VECTORS: &[Vector] = &[")
    for name, method, path, query, headers, body in CASES:
        header_params = {"User-Agent": UA, "X-Project-Id": PROJECT, "X-Sdk-Date": DATE, **headers}
        req = SdkRequest(method=method, schema="http", host=HOST, resource_path=path, query_params=list(query),
                         header_params=header_params, body=body.encode("utf-8") if body is not None else "")
        signer.sign(req)
        print_vector(name, req)
    for name, req in client_cases():
        print_vector(name, req)
    print("];")


if __name__ == "__main__":
    main()
