"""The operator tools' subcommands of `synapscribe` (registered in runtime/pyproject.toml's
`synapscribe.commands` entry points): name -> (module, one-line help), each module imported only
when its subcommand runs."""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "contract": ("synapscribe_ops.contract_cli", "print the client contract's JSON Schema"),
    "smoke": ("synapscribe_ops.smoke.cli", "post-deploy smoke test against a local or deployed stack"),
    "demo": ("synapscribe_ops.demo", "start the local stack, run the smoke test against it, stop"),
    "bench": ("synapscribe_ops.bench.cli", "benchmarks: pipeline, validation, synth, full"),
    "capacity": (
        "synapscribe_ops.capacity_cli",
        "capacity planner: KV cache, lecture limits, instances, cost",
    ),
    "preflight": (
        "synapscribe_ops.preflight",
        "before `cdk deploy`: AMI, spot vCPU quota, zones, CDK bootstrap and CORS in the target account",
    ),
    "simulate": ("synapscribe_ops.simulate.cli", "simulate a day of students against the scaling policies"),
    "ami": (
        "synapscribe_ops.ami.cli",
        "the GPU image pipeline: bake, verify, promote, rollout, rollback, prune",
    ),
}
