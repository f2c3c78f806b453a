"""Guests can open the WebSocket: their effective permission for `execute-api:Invoke` on `$connect`
is the guest role's policy intersected with the session policy of the Cognito flow they use.

Cognito's enhanced flow (GetCredentialsForIdentity) passes AmazonCognitoUnAuthedIdentitiesSessionPolicy
as a session policy for unauthenticated identities; the basic (classic) flow (GetId, GetOpenIdToken,
STS AssumeRoleWithWebIdentity) passes none, so the role's policy alone applies (AWS docs: "Identity
pools (federated identities) authentication flow", and the managed policy's reference page, kept
in fixtures/cognito_unauthed_session_policy.json with its version).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from iam_eval import allowed, decide, resolve, wildcard_match
from synth_support import ACCOUNT, REGION, Synthesized, resources_of

FIXTURE = Path(__file__).parent / "fixtures" / "cognito_unauthed_session_policy.json"
API_ID = "a1b2c3d4e5"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
}


def _session_policy() -> dict[str, Any]:
    fixture = json.loads(FIXTURE.read_text())
    assert fixture["name"] == "AmazonCognitoUnAuthedIdentitiesSessionPolicy"
    assert fixture["version"] == "v3" and fixture["source"].startswith("https://docs.aws.amazon.com/")
    return dict(fixture["document"])


def _guest_role(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (k, r["Properties"])
        for k, r in resources_of(template, "AWS::IAM::Role").items()
        if "unauthenticated" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
    ]
    return found


def _guest_policies(synth: Synthesized) -> list[dict[str, Any]]:
    """The guest role's identity-based policies (inline and attached), intrinsics evaluated; the
    one outside reference they hold is the WebSocket API's id."""
    template = synth.templates["identity"]
    role_id, role = _guest_role(template)
    documents = [p["PolicyDocument"] for p in role.get("Policies", [])]
    documents += [
        p["Properties"]["PolicyDocument"]
        for p in resources_of(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    assert not role.get("ManagedPolicyArns"), "managed policies would need their documents here"
    references: set[str] = set()

    def api_id(node: Any) -> str:
        references.add(json.dumps(node, sort_keys=True))
        return API_ID

    resolved = [resolve(d, PSEUDO, api_id) for d in documents]
    assert len(references) == 1, references
    return resolved


def _connect_arn(route: str = "$connect") -> str:
    stage = "prod"
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{stage}/{route}"


def test_pool_allows_the_classic_flow(synth: Synthesized) -> None:
    synth.template("identity").has_resource_properties(
        "AWS::Cognito::IdentityPool", {"AllowUnauthenticatedIdentities": True, "AllowClassicFlow": True}
    )


def test_guest_role_trusts_this_pools_unauthenticated_identities(synth: Synthesized) -> None:
    """AssumeRoleWithWebIdentity (the classic flow's last step) from cognito-identity, for this pool
    (`aud`) and unauthenticated identities only (`amr`)."""
    template = synth.templates["identity"]
    _, role = _guest_role(template)
    (pool_id,) = resources_of(template, "AWS::Cognito::IdentityPool")
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": "cognito-identity.amazonaws.com"}
    condition = statement["Condition"]
    assert condition["StringEquals"] == {"cognito-identity.amazonaws.com:aud": {"Ref": pool_id}}
    assert condition["ForAnyValue:StringLike"] == {"cognito-identity.amazonaws.com:amr": "unauthenticated"}


def test_enhanced_flow_denies_connect_and_classic_flow_allows_it(synth: Synthesized) -> None:
    role = _guest_policies(synth)
    enhanced = [role, [_session_policy()]]
    classic = [role]
    connect = ("execute-api:Invoke", _connect_arn())
    assert allowed(classic, *connect)
    assert not allowed(enhanced, *connect)
    # The role alone decides the classic flow: nothing beyond $connect of this stage.
    for action, resource in [
        ("execute-api:Invoke", _connect_arn("$default")),
        ("execute-api:Invoke", _connect_arn("query")),
        ("execute-api:ManageConnections", _connect_arn("POST/@connections/abc=")),
        ("execute-api:Invoke", f"arn:aws:execute-api:{REGION}:{ACCOUNT}:other/prod/$connect"),
        ("s3:GetObject", "arn:aws:s3:::any-bucket/lectures/x"),
        ("polly:SynthesizeSpeech", "*"),
    ]:
        assert not allowed(classic, action, resource), (action, resource)
        assert not allowed(enhanced, action, resource), (action, resource)


def test_session_policy_allows_what_it_lists() -> None:
    """The fixture is read as AWS reads it: its actions pass, with wildcards, and nothing else."""
    policy = _session_policy()
    assert decide(policy, "polly:SynthesizeSpeech", "*") == "Allow"
    assert decide(policy, "geo:GetMapTile", "arn:aws:geo:eu-west-1:1:map/x") == "Allow"
    assert decide(policy, "execute-api:Invoke", _connect_arn()) == "NotApplicable"
    assert decide(policy, "kms:CreateKey", "*") == "NotApplicable"


def test_evaluator_semantics() -> None:
    allow_all = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    deny_connect = {
        "Statement": [{"Effect": "Deny", "Action": "execute-api:*", "Resource": "arn:*/$connect"}]
    }
    assert allowed([[allow_all]], "execute-api:Invoke", "arn:x/$connect")
    assert not allowed([[allow_all, deny_connect]], "execute-api:Invoke", "arn:x/$connect")
    assert not allowed([[allow_all], []], "s3:GetObject", "arn:aws:s3:::b/k")  # a policy type allows nothing
    assert wildcard_match("S3:Get*", "s3:getobject", case_sensitive=False)
    assert not wildcard_match("arn:aws:s3:::B/*", "arn:aws:s3:::b/k", case_sensitive=True)
    assert wildcard_match("a?c", "abc", case_sensitive=True) and not wildcard_match(
        "a?c", "ac", case_sensitive=True
    )
    with pytest.raises(ValueError, match="Condition"):
        decide(
            {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}]}, "a:b", "c"
        )
