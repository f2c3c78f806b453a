"""Network: the VPC, its endpoints, the security groups and AgentCore's internal load balancer.

Why a separate stack: the Lambdas (API stack) need the load balancer, and the GPU fleet
(Compute stack) needs the API's @connections endpoint; with the balancer in the Compute stack
those two would depend on each other.

Egress (cdk.json `egress`):
- S3 and DynamoDB: gateway endpoints (free) for every subnet.
- The GPU instances run in private subnets (`fleet`) and the Lambdas in private subnets (`edge`).
  Prod (`nat_gateway`) routes each private subnet to a managed NAT gateway in its own zone: no
  box to look after, and a zone's outage takes only its own egress. Dev (`nat_instance`) routes
  them through one small NAT *instance* (t4g.nano, a few dollars a month) in the public subnets,
  which admits only those two groups; it is an Auto Scaling group of one behind a fixed network
  interface, so a failed instance is replaced without touching the routes
  (constructs/nat_instance.py), but everything but S3 and DynamoDB waits while it is replaced.
  The GPU instances need the internet for little: @connections (execute-api),
  gTTS (Google), Session Manager, over 443; and Ubuntu's apt mirrors (HTTP, signed packages) for
  the unattended security upgrades the AMI schedules. Their group allows exactly that egress.
- The Lambdas must run in the VPC to reach the internal balancer; they push to clients through
  @connections, and an `execute-api` interface endpoint cannot carry that: it serves only PRIVATE
  REST APIs, and with private DNS it even breaks calls to public (WebSocket) APIs with 403. So no
  execute-api interface endpoint is created, on purpose.
- Security groups do not filter the VPC's DNS resolver, the instance metadata service or the
  Amazon Time Sync Service (169.254.169.123, the AMI's NTP server), so no rule is needed for them.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from constructs import Construct
from synapscribe.platform import PlatformConfig

from synapscribe_cdk.config import ConfigError, EnvironmentConfig
from synapscribe_cdk.constructs.nat_instance import SelfHealingNatProvider
from synapscribe_cdk.constructs.vpc_checks import acknowledge_listed_zones, rejected_traffic_flow_logs
from synapscribe_cdk.nag import acknowledge, acknowledge_checkov, acknowledge_log_bucket

#: The AgentCore readiness path (docs/interfaces.md): 200 only when vLLM and TTS answer.
READY_PATH = "/ready"
#: Subnet groups: the NAT instance alone is public; the Lambdas and the GPU fleet are private.
PUBLIC_SUBNETS = "public"
EDGE_SUBNETS = "edge"
FLEET_SUBNETS = "fleet"
#: What the GPU instances may reach (through the NAT instance or the gateway endpoints): TLS for
#: AWS APIs, @connections and gTTS; HTTP for Ubuntu's apt mirrors (unattended security upgrades).
FLEET_EGRESS_PORTS = {443: "TLS: @connections, gTTS, SSM; S3/DynamoDB via endpoints", 80: "apt mirrors"}


class NetworkStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        platform: PlatformConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        port = self.port = platform.ports.agentcore
        if Token.is_unresolved(self.region):
            raise ConfigError(
                "set CDK_DEPLOY_REGION (or -c region=R, or CDK_DEFAULT_REGION): the VPC lists its zones by name"
            )
        self._zones = config.zones_in(self.region)
        removal = RemovalPolicy.RETAIN if config.removal == "retain" else RemovalPolicy.DESTROY
        self.nat = SelfHealingNatProvider(
            instance_type=config.nat_instance_type,
            group_name=f"synapscribe-{config.name}-nat",
            vpc_cidr=config.vpc_cidr,
        )

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(config.vpc_cidr),
            availability_zones=self._zones,
            # A NAT gateway per zone (prod), or one self-replacing NAT instance (dev).
            nat_gateways=len(self._zones) if config.egress == "nat_gateway" else 1,
            nat_gateway_provider=ec2.NatProvider.gateway() if config.egress == "nat_gateway" else self.nat,
            subnet_configuration=[
                ec2.SubnetConfiguration(name=PUBLIC_SUBNETS, subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name=EDGE_SUBNETS, subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=24
                ),
                ec2.SubnetConfiguration(
                    name=FLEET_SUBNETS, subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=24
                ),
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB),
            },
            flow_logs=rejected_traffic_flow_logs(self, config.log_retention_days),
        )
        acknowledge_listed_zones(self.vpc)

        self.edge_sg = ec2.SecurityGroup(
            self,
            "EdgeFunctionsSg",
            vpc=self.vpc,
            description="SynapScribe Lambdas: reach AgentCore (balancer or host) and AWS APIs over TLS",
            allow_all_outbound=False,
        )
        self.alb_sg = ec2.SecurityGroup(
            self,
            "AgentCoreAlbSg",
            vpc=self.vpc,
            description=f"AgentCore internal balancer: port {port} from the SynapScribe Lambdas only",
            allow_all_outbound=False,
        )
        self.fleet_sg = ec2.SecurityGroup(
            self,
            "FleetSg",
            vpc=self.vpc,
            description=(
                f"GPU instances: port {port} from the balancer and the SynapScribe Lambdas; "
                "vLLM and TTS ports from nobody"
            ),
            allow_all_outbound=False,
        )
        self.alb_sg.add_ingress_rule(self.edge_sg, ec2.Port.tcp(port), "Lambdas to AgentCore")
        self.alb_sg.add_egress_rule(self.fleet_sg, ec2.Port.tcp(port), "balancer to AgentCore")
        self.fleet_sg.add_ingress_rule(self.alb_sg, ec2.Port.tcp(port), "balancer to AgentCore")
        self.edge_sg.add_egress_rule(self.alb_sg, ec2.Port.tcp(port), "Lambdas to AgentCore")
        # Lecture-affinity routing: the Lambdas call the host that holds a lecture directly
        # (edge/affinity.py, addresses from the host registry), the balancer otherwise.
        self.fleet_sg.add_ingress_rule(self.edge_sg, ec2.Port.tcp(port), "Lambdas to AgentCore, directly")
        self.edge_sg.add_egress_rule(self.fleet_sg, ec2.Port.tcp(port), "Lambdas to AgentCore, directly")
        self.edge_sg.add_egress_rule(
            ec2.Peer.any_ipv4(),
            ec2.Port.tcp(443),
            "AWS APIs: @connections via NAT, S3/DynamoDB via endpoints",
        )
        for fleet_port, why in FLEET_EGRESS_PORTS.items():
            self.fleet_sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(fleet_port), why)

        self.nat_alarms = []
        if config.egress == "nat_instance":
            nat_sg = self.nat.security_group
            assert nat_sg is not None
            nat_sg.add_ingress_rule(self.edge_sg, ec2.Port.tcp(443), "Lambdas' TLS egress")
            for fleet_port, why in FLEET_EGRESS_PORTS.items():
                nat_sg.add_ingress_rule(self.fleet_sg, ec2.Port.tcp(fleet_port), f"GPU fleet: {why}")
            self.nat_alarms.append(self.nat.no_instance_alarm(self))

        alb_logs = s3.Bucket(
            self,
            "AlbLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-logs", expiration=Duration.days(config.log_retention_days))
            ],
            removal_policy=removal,
            auto_delete_objects=removal == RemovalPolicy.DESTROY,
        )
        acknowledge(alb_logs, "AwsSolutions-S1", "This bucket only receives load-balancer access logs.")
        acknowledge_log_bucket(alb_logs)

        self.alb = elbv2.ApplicationLoadBalancer(
            self,
            "AgentCoreAlb",
            vpc=self.vpc,
            internet_facing=False,
            vpc_subnets=ec2.SubnetSelection(subnet_group_name=EDGE_SUBNETS),
            security_group=self.alb_sg,
            drop_invalid_header_fields=True,
        )
        self.alb.log_access_logs(alb_logs, prefix="agentcore")
        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "AgentCore",
            vpc=self.vpc,
            port=port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.INSTANCE,
            deregistration_delay=Duration.seconds(config.drain_seconds),
            health_check=elbv2.HealthCheck(
                path=READY_PATH,
                port=str(port),
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
        self.listener = self.alb.add_listener(
            "AgentCoreListener",
            port=port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            open=False,
            default_target_groups=[self.target_group],
        )
        plain_http = (
            "The balancer is internal, in the private edge subnets, and admits only the edge "
            "functions' security group; TLS would need a certificate for a private name (a private "
            "CA), and the hop never leaves the VPC."
        )
        acknowledge_checkov(self.listener, "CKV_AWS_2", plain_http)
        acknowledge_checkov(self.listener, "CKV_AWS_103", plain_http)

    @property
    def availability_zones(self) -> list[str]:
        """The configured zones: without this, CDK would look them up in the account (a context
        lookup, which needs AWS credentials at synth time)."""
        return self._zones

    @property
    def agentcore_url(self) -> str:
        return f"http://{self.alb.load_balancer_dns_name}:{self.port}"
