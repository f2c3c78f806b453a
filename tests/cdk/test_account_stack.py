"""The account stack: API Gateway's account-wide logging role, outside every environment."""

from __future__ import annotations

from synth_support import Synthesized, resources_of


def test_account_logging_role_is_in_the_account_stack_only(synth: Synthesized) -> None:
    account = synth.platform.account
    assert account.stack_name == "SynapScribe-Account"
    (setting,) = resources_of(synth.templates["account"], "AWS::ApiGateway::Account").values()
    (role_id,) = resources_of(synth.templates["account"], "AWS::IAM::Role")
    assert setting["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    for name, template in synth.templates.items():
        if name != "account":
            assert not resources_of(template, "AWS::ApiGateway::Account"), name


def test_environments_depend_on_it_without_an_environment_tag(synth: Synthesized) -> None:
    account = synth.platform.account
    assert account in synth.platform.api.dependencies
    assert not synth.templates["account"].get("Outputs"), "nothing is exported to the environments"
    assert "environment" not in account.tags.tag_values()
    assert account.tags.tag_values()["project"] == "synapscribe"
    assert synth.platform.data.tags.tag_values()["environment"] == "dev"
