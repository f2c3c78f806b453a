"""The Identity stack: guest identities whose role may only open the WebSocket (the pool and the
role's trust: test_guest_access.py)."""

from __future__ import annotations

import json

from synth_support import Synthesized, resources_of


def test_guest_role_may_only_invoke_connect(synth: Synthesized) -> None:
    template = synth.templates["identity"]
    roles = resources_of(template, "AWS::IAM::Role")
    guest = next(
        k
        for k, r in roles.items()
        if "unauthenticated" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    )
    statements = [
        s
        for p in resources_of(template, "AWS::IAM::Policy").values()
        if {"Ref": guest} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert len(statements) == 1
    statement = statements[0]
    assert statement["Effect"] == "Allow" and statement["Action"] == "execute-api:Invoke"
    resource = json.dumps(statement["Resource"])
    assert resource.endswith('"/prod/$connect"]]}') and "*" not in resource
    for role in roles.values():
        assert not role["Properties"].get("ManagedPolicyArns")
        assert not role["Properties"].get("Policies")


def test_outputs_for_the_smoke_test(synth: Synthesized) -> None:
    template = synth.templates["identity"]
    assert {"IdentityPoolId", "GuestRoleArn", "Region"} <= set(template["Outputs"])
    # The basic flow's AssumeRoleWithWebIdentity names the guest role: the output is its ARN.
    (guest,) = [
        k
        for k, r in resources_of(template, "AWS::IAM::Role").items()
        if "unauthenticated" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    ]
    assert template["Outputs"]["GuestRoleArn"]["Value"] == {"Fn::GetAtt": [guest, "Arn"]}
