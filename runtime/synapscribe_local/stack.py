"""The local stack: the whole platform on loopback, with nothing from AWS.

moto (S3, DynamoDB, SQS) in this process; the WebSocket gateway with its `@connections`
endpoint running the edge Lambda handlers in threads; the upload trigger running the
validation handler on S3's own events; and AgentCore, the TTS service and (unless a real vLLM is
given) the model stand-in as child processes on free loopback ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

from synapscribe.contract import ACTIONS
from synapscribe.edge import intake
from synapscribe.platform import PlatformConfig, load_platform
from synapscribe.web import page_config

from synapscribe_local.aws import LocalAws, allow_page_origin, moto_server, prepare
from synapscribe_local.fleet import LocalFleet
from synapscribe_local.gateway import TRUST_SOURCE_HEADER_ENV, Gateway, LambdaHandler
from synapscribe_local.page import PageServer, content_security_policy
from synapscribe_local.supervisor import (
    Child,
    StackCancelled,
    StackError,
    Supervisor,
    check_port_free,
    free_port,
)
from synapscribe_local.sweep_timer import SweepTimer
from synapscribe_local.trigger import UploadTrigger

log = logging.getLogger("synapscribe_local")

WEBSOCKET_HANDLER = "synapscribe.edge.websocket_handler"
VALIDATE_HANDLER = "synapscribe.edge.validate_lecture"
SWEEPER_HANDLER = "synapscribe.edge.sweeper"
LOOPBACK = "127.0.0.1"
#: How long AgentCore may report the same reason for not being ready (an external model server
#: that does not answer) before `local` stops and names it.
EXTERNAL_MODEL_GRACE_SECONDS = 5.0


@dataclass
class StackConfig:
    port: int
    vllm_base_url: str | None = None
    vllm_model: str | None = None
    log_dir: Path | None = None
    ready_timeout: float = 90.0
    #: Whether a handler's return body is sent back to the client (API Gateway route responses).
    two_way_routes: bool = False
    #: False leaves AgentCore out (queries then get `upstream_unavailable`): for tests of the edge.
    start_agentcore: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    #: The student page's port on 127.0.0.1 (0: a free one).
    page_port: int = 0
    #: How often the sweeper runs (default: platform.yaml's sweeper.interval_seconds).
    sweep_interval_seconds: float | None = None
    #: Emulate the GPU fleet at zero (local/fleet.py): AgentCore starts only once a question has
    #: set the moto Auto Scaling group's desired capacity to 1 (warming from zero).
    fleet_at_zero: bool = False
    #: AgentCore hosts sharing the one model server, each in the host registry (lecture-affinity
    #: routing: edge/affinity.py). 1: one host, not registered, as before.
    agentcore_hosts: int = 1


@dataclass
class RunningStack:
    url: str
    connections_endpoint: str
    aws: LocalAws
    services: dict[str, str]
    log_dir: Path
    gateway: Gateway
    trigger: UploadTrigger
    sweeper: SweepTimer
    page_url: str = ""
    pids: dict[str, int] = field(default_factory=dict)


def load_handler(module_name: str) -> LambdaHandler:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StackError(f"cannot import the Lambda handler module {module_name}: {exc}") from None
    handler = getattr(module, "handler", None)
    if not callable(handler):
        raise StackError(f"{module_name} has no handler(event, context) function")
    return cast(LambdaHandler, handler)


#: The local stack's intake switch (edge/intake.py), in moto's SSM.
LOCAL_INTAKE_PARAMETER = intake.parameter_name("local")


def _open_intake(aws: LocalAws) -> None:
    """Create the intake switch open and point the handler at it (as the Api stack does)."""
    aws.client("ssm").put_parameter(
        Name=LOCAL_INTAKE_PARAMETER, Type="String", Value=json.dumps(intake.OPEN), Overwrite=True
    )
    os.environ["SYNAPSCRIBE_INTAKE_PARAMETER"] = LOCAL_INTAKE_PARAMETER


def _service(name: str, port: int) -> list[str]:
    return [sys.executable, "-m", "synapscribe.cli", name, "--host", LOOPBACK, "--port", str(port)]


async def run_stack(
    config: StackConfig,
    stop: asyncio.Event,
    on_ready: Callable[[RunningStack], None],
    out: TextIO = sys.stderr,
) -> int:
    """Start everything, call `on_ready`, run until `stop` is set or a child dies, stop all."""
    platform = load_platform()
    check_port_free(config.port, LOOPBACK)
    if config.page_port:
        if config.page_port == config.port:
            raise StackError(f"--page-port {config.page_port} is the WebSocket port: pick another")
        check_port_free(config.page_port, LOOPBACK)
    if config.vllm_base_url is None and config.vllm_model is not None:
        raise StackError("VLLM_MODEL is set but VLLM_BASE_URL is not: set both to use a real vLLM")
    ws_handler = load_handler(WEBSOCKET_HANDLER)
    validate_handler = load_handler(VALIDATE_HANDLER)
    log_dir = config.log_dir or Path(tempfile.mkdtemp(prefix="synapscribe-local-"))
    supervisor = Supervisor(log_dir)
    clean = False
    try:
        with moto_server(free_port(LOOPBACK), LOOPBACK) as endpoint:
            try:
                code = await _run(
                    config, platform, endpoint, supervisor, ws_handler, validate_handler, stop, on_ready, out
                )
                clean = code == 0
                return code
            except StackCancelled:
                clean = True
                raise
            finally:
                supervisor.stop_all()
    finally:
        # Our own temporary log folder goes after a clean stop; a failed run keeps it (its error
        # names a log in it), and a --log-dir the user gave is theirs.
        if clean and config.log_dir is None:
            shutil.rmtree(log_dir, ignore_errors=True)


async def _run(
    config: StackConfig,
    platform: PlatformConfig,
    endpoint: str,
    supervisor: Supervisor,
    ws_handler: LambdaHandler,
    validate_handler: LambdaHandler,
    stop: asyncio.Event,
    on_ready: Callable[[RunningStack], None],
    out: TextIO,
) -> int:
    aws = await asyncio.to_thread(prepare, endpoint, platform)
    connections_port = free_port(LOOPBACK)
    connections_endpoint = f"http://{LOOPBACK}:{connections_port}/local"
    base_env = {**os.environ, **aws.env(), **config.extra_env}
    base_env.setdefault("SYNAPSCRIBE_TTS_ENGINES", "espeak-ng")
    services: dict[str, str] = {}

    if config.vllm_base_url:
        vllm_url = config.vllm_base_url.rstrip("/")
        vllm_model = config.vllm_model or platform.model.served_name
    else:
        port = free_port(LOOPBACK)
        vllm_url, vllm_model = f"http://{LOOPBACK}:{port}/v1", platform.model.served_name
        supervisor.start("standin", _service("standin", port), f"{vllm_url}/models", base_env)
    services["model"] = vllm_url
    tts_port = free_port(LOOPBACK)
    services["tts"] = f"http://{LOOPBACK}:{tts_port}"
    supervisor.start("tts", _service("tts", tts_port), f"{services['tts']}/health", base_env)
    for child in list(supervisor.children):
        waited = await asyncio.to_thread(
            supervisor.wait_ready, child, config.ready_timeout, cancelled=stop.is_set
        )
        print(f"local: {child.name} ready in {waited:.1f} s ({child.ready_url})", file=out, flush=True)

    agentcore_port = free_port(LOOPBACK)
    services["agentcore"] = f"http://{LOOPBACK}:{agentcore_port}"
    agentcore_env = {
        **base_env,
        "VLLM_BASE_URL": vllm_url,
        "VLLM_MODEL": vllm_model,
        "SYNAPSCRIBE_TTS_URL": services["tts"],
        "SYNAPSCRIBE_CONNECTIONS_ENDPOINT": connections_endpoint,
    }
    fleet: LocalFleet | None = None
    if config.start_agentcore and config.fleet_at_zero:
        fleet = await asyncio.to_thread(
            _fleet_at_zero, aws, supervisor, agentcore_port, services, agentcore_env
        )
        os.environ["SYNAPSCRIBE_FLEET_GROUP"] = fleet.name
        print(
            f"local: GPU fleet {fleet.name} at zero; AgentCore starts when it is scaled out",
            file=out,
            flush=True,
        )
    elif config.start_agentcore:
        for agentcore in _start_hosts(supervisor, config, agentcore_port, services, agentcore_env):
            # A model server given by VLLM_BASE_URL is nobody's child here: if AgentCore's /ready
            # keeps naming it, waiting the whole timeout will not bring it up.
            waited = await asyncio.to_thread(
                supervisor.wait_ready,
                agentcore,
                config.ready_timeout,
                cancelled=stop.is_set,
                give_up_on_reason=EXTERNAL_MODEL_GRACE_SECONDS if config.vllm_base_url else None,
            )
            print(
                f"local: {agentcore.name} ready in {waited:.1f} s ({agentcore.ready_url})",
                file=out,
                flush=True,
            )

    # The handlers run in this process: give them the Lambda's environment.
    os.environ.update(aws.env())
    os.environ.update(config.extra_env)
    os.environ.update(
        {
            "SYNAPSCRIBE_IDENTITY_SOURCE": "query",
            "SYNAPSCRIBE_AGENTCORE_URL": services["agentcore"],
            "SYNAPSCRIBE_CONNECTIONS_ENDPOINT": connections_endpoint,
        }
    )
    _open_intake(aws)
    gateway = Gateway(
        ws_handler,
        host=LOOPBACK,
        port=config.port,
        connections_port=connections_port,
        route_keys=ACTIONS,
        two_way_routes=config.two_way_routes,
        platform=platform,
        trust_source_header=os.environ.get(TRUST_SOURCE_HEADER_ENV) == "1",
    )
    trigger = UploadTrigger(aws.client("sqs"), aws.queue_url, validate_handler)
    sweeper = SweepTimer(
        load_handler(SWEEPER_HANDLER), config.sweep_interval_seconds or platform.sweeper.interval_seconds
    )
    if stop.is_set():
        return 0
    try:
        await gateway.start()
    except OSError as exc:
        raise StackError(f"cannot listen on {LOOPBACK}:{config.port}: {exc.strerror}") from None
    trigger.start()
    page = _start_page(config, platform, aws, gateway.url)
    sweeper.start()
    try:
        on_ready(
            RunningStack(
                url=gateway.url,
                connections_endpoint=connections_endpoint,
                aws=aws,
                services=services,
                log_dir=supervisor.log_dir,
                gateway=gateway,
                trigger=trigger,
                page_url=page.url,
                sweeper=sweeper,
                pids={c.name: c.process.pid for c in supervisor.children if c.process is not None},
            )
        )
        while not stop.is_set():
            if fleet is not None:
                await asyncio.to_thread(fleet.step)
            if not _restart_or_report(supervisor, out):
                return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
        return 0
    finally:
        page.stop()
        sweeper.stop()
        trigger.stop()
        await gateway.stop()


def _start_hosts(
    supervisor: Supervisor, config: StackConfig, port: int, services: dict[str, str], env: dict[str, str]
) -> list[Child]:
    """AgentCore: one host, or `agentcore_hosts` of them on the one model server, each advertising
    its URL to the host registry. The balancer the edge falls back to is the first host."""
    if config.agentcore_hosts <= 1:
        return [
            supervisor.start("agentcore", _service("agentcore", port), f"{services['agentcore']}/ready", env)
        ]
    hosts = []
    for n in range(config.agentcore_hosts):
        name = "agentcore" if n == 0 else f"agentcore-{n + 1}"
        host_port = port if n == 0 else free_port(LOOPBACK)
        services[name] = f"http://{LOOPBACK}:{host_port}"
        child = supervisor.start(
            name,
            _service("agentcore", host_port),
            f"{services[name]}/ready",
            {**env, "SYNAPSCRIBE_ADVERTISE_URL": services[name]},
        )
        child.expendable = True
        hosts.append(child)
    return hosts


def _fleet_at_zero(
    aws: LocalAws, supervisor: Supervisor, port: int, services: dict[str, str], env: dict[str, str]
) -> LocalFleet:
    """The moto group standing for the GPU fleet; AgentCore is its one host (local/fleet.py)."""

    def start_host() -> None:
        supervisor.start("agentcore", _service("agentcore", port), f"{services['agentcore']}/ready", env)

    return LocalFleet.create(aws.client("autoscaling"), aws.client("ec2"), aws.region, start_host)


def _restart_or_report(supervisor: Supervisor, out: TextIO) -> bool:
    """Restart the children that failed, as the hosts' systemd units do (Restart=on-failure);
    False (the stack stops) when one exited 0, with a status retrying cannot help, or too often."""
    for child in supervisor.exited():
        assert child.process is not None
        code = child.process.returncode
        if child.expendable:
            print(
                f"local: {child.name} exited with status {code}; the other hosts serve on",
                file=out,
                flush=True,
            )
            supervisor.children.remove(child)
            continue
        if supervisor.may_restart(child):
            print(f"local: {child.name} exited with status {code}; restarting it", file=out, flush=True)
            supervisor.restart(child)
            continue
        print(
            f"local: {child.name} exited with status {code}; stopping. "
            f"Its log ({child.log_path}) ends with:\n{child.log_tail()}",
            file=out,
            flush=True,
        )
        return False
    return True


def _start_page(
    config: StackConfig, platform: PlatformConfig, aws: LocalAws, websocket_url: str
) -> PageServer:
    """The student page, configured for this stack; the bucket's CORS admits its origin."""
    s3_origin = aws.endpoint_url or ""
    try:
        page = PageServer(
            LOOPBACK,
            config.page_port,
            page_config(platform, websocket_url, mode="local", region=aws.region),
            content_security_policy(websocket_url, s3_origin),
        )
    except OSError as exc:
        raise StackError(f"cannot serve the page on {LOOPBACK}:{config.page_port}: {exc.strerror}") from None
    allow_page_origin(aws.client("s3"), aws.resources.bucket, page.origin)
    page.start()
    return page


def describe(stack: RunningStack) -> dict[str, Any]:
    return {
        "url": stack.url,
        "page": stack.page_url,
        "connectionsEndpoint": stack.connections_endpoint,
        "awsEndpoint": stack.aws.endpoint_url,
        "region": stack.aws.region,
        "bucket": stack.aws.resources.bucket,
        "services": stack.services,
        "logs": str(stack.log_dir),
        "pids": stack.pids,
    }
