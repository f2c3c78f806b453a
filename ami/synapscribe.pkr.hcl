# The SynapScribe GPU host image: Ubuntu 24.04 on a GPU build instance, provisioned by the same
# ansible/site.yml the host tests apply, validated, then cleaned of per-instance state.

packer {
  required_version = ">= 1.11.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.3.0"
    }
    ansible = {
      source  = "github.com/hashicorp/ansible"
      version = ">= 1.1.1"
    }
  }
}

locals {
  # The one source of the shared facts (model, vLLM version, context length).
  platform       = yamldecode(file("${path.root}/../runtime/synapscribe/platform.yaml"))
  model_id       = var.model_id != "" ? var.model_id : local.platform.model.id
  model_revision = var.model_revision != "" ? var.model_revision : local.platform.model.revision
  model_path     = local.platform.model.path
  vllm_version   = var.vllm_version != "" ? var.vllm_version : local.platform.vllm.version
  # The context modes (platform.py's context_lengths): the configured length and the model's own limit.
  context_lengths = distinct([
    tostring(local.platform.vllm.max_model_len),
    tostring(local.platform.model.max_position_embeddings),
  ])
  # An unsupported length stops `packer validate` (file() of a path that names the problem).
  max_model_len = (var.max_model_len == "" ? tostring(local.platform.vllm.max_model_len)
    : contains(local.context_lengths, var.max_model_len) ? var.max_model_len
  : file("max_model_len=${var.max_model_len} is not a context mode: use ${join(" or ", local.context_lengths)}"))
  build_time = formatdate("YYYY-MM-DD'T'hh:mm:ss'Z'", timestamp())
  ami_name   = "synapscribe-gpu-${formatdate("YYYYMMDD-hhmmss", timestamp())}"
  tags = {
    Name          = local.ami_name
    Project       = "synapscribe"
    GitRevision   = var.git_revision
    VllmVersion   = local.vllm_version
    Model         = local.model_id
    ModelRevision = local.model_revision
    MaxModelLen   = local.max_model_len
    BuildTime     = local.build_time
  }
  # The host's names and paths (platform.yaml host), shared with the roles and the CDK user data.
  host  = local.platform.host
  units = [local.host.units.vllm, local.host.units.tts, local.host.units.agentcore]
  # The tags above are fixed before the build, so ModelRevision is what was asked for (a branch
  # such as `main`); the commit it resolved to is written next to the weights by the model role,
  # downloaded here, printed by the validation step and added to the manifest and the AMI's
  # ModelCommit tag by scripts/bake-ami.
  model_revision_file       = "${local.model_path}/${local.host.model_revision_file}"
  model_revision_local_file = "${path.root}/model-revision.txt"
  model_revision_pinned     = can(regex("^[0-9a-f]{40}$", local.model_revision))
  # Packer connects (and Ansible runs) as Ubuntu's default user; cleanup.sh removes its SSH key.
  build_user = "ubuntu"
  # What scripts/cleanup.sh and scripts/validate.sh are told (as root: sudo env, see below).
  script_env = [
    "SYNAPSCRIBE_UNITS=${join(" ", local.units)}",
    "SYNAPSCRIBE_VLLM_UNIT=${local.host.units.vllm}",
    "SYNAPSCRIBE_DEPLOY_ENV_FILE=${local.host.deploy_env_file}",
    "BUILD_USER=${local.build_user}",
    "SYNAPSCRIBE_MAX_MODEL_LEN=${local.max_model_len}",
    "SYNAPSCRIBE_VLLM_VENV=${local.host.venvs.vllm}",
    "SYNAPSCRIBE_VLLM_VERSION=${local.vllm_version}",
    "SYNAPSCRIBE_MODEL_ID=${local.model_id}",
    "SYNAPSCRIBE_MODEL_PATH=${local.model_path}",
    "SYNAPSCRIBE_MODEL_REVISION=${local.model_revision}",
    "SYNAPSCRIBE_MODEL_CHECKSUM_FILE=${local.host.model_checksum_file}",
    "SYNAPSCRIBE_MODEL_REVISION_FILE=${local.host.model_revision_file}",
    "SYNAPSCRIBE_AGENT_CONFIG_TEMPLATE=${local.host.cloudwatch_agent.config_template}",
    "SYNAPSCRIBE_AGENT_CONFIG=${local.host.cloudwatch_agent.config}",
  ]
  # Packer's default runs a script as the SSH user; these need root. {{ .Vars }} single-quotes each
  # value (env_var_format "%s='%s' ", developer.hashicorp.com/packer/docs/provisioners/shell).
  script_execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
  ansible_vars = merge(
    {
      model_id                  = local.model_id
      model_revision            = local.model_revision
      vllm_version              = local.vllm_version
      synapscribe_max_model_len = local.max_model_len
      nvidia_enabled            = true
      model_download_enabled    = true
      vllm_install_enabled      = true
    },
    var.nvidia_repo_key_fingerprint != "" ? { nvidia_repo_key_fingerprint = var.nvidia_repo_key_fingerprint } : {},
    var.nvidia_driver_branch != "" ? { nvidia_driver_branch = var.nvidia_driver_branch } : {},
  )
}

source "amazon-ebs" "gpu" {
  region          = var.region
  instance_type   = var.instance_type
  subnet_id       = var.subnet_id != "" ? var.subnet_id : null
  ami_name        = local.ami_name
  ami_description = "SynapScribe GPU host: vLLM ${local.vllm_version}, ${local.model_id}@${local.model_revision}, context ${local.max_model_len}"

  source_ami_filter {
    filters = {
      name                = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["099720109477"]
    most_recent = true
  }

  ssh_username = local.build_user
  ssh_timeout  = "15m"

  # Instances launched from the image get IMDSv2 only; so does the build instance.
  imds_support = "v2.0"
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  launch_block_device_mappings {
    device_name           = local.host.root_device
    volume_size           = var.volume_size_gb
    volume_type           = "gp3"
    encrypted             = true
    kms_key_id            = var.kms_key_id != "" ? var.kms_key_id : null
    delete_on_termination = true
  }
  encrypt_boot = true
  kms_key_id   = var.kms_key_id != "" ? var.kms_key_id : null

  tags          = local.tags
  snapshot_tags = local.tags
  run_tags      = merge(local.tags, { Name = "packer-${local.ami_name}" })

  temporary_security_group_source_public_ip = true
}

build {
  name    = "synapscribe-gpu"
  sources = ["source.amazon-ebs.gpu"]

  provisioner "shell" {
    inline = ["cloud-init status --wait >/dev/null"]
  }

  provisioner "ansible" {
    playbook_file = "${path.root}/../ansible/site.yml"
    user          = local.build_user
    use_proxy     = false
    ansible_env_vars = [
      "ANSIBLE_CONFIG=${path.root}/../ansible/ansible.cfg",
      "HF_TOKEN=${var.hf_token}",
    ]
    # JSON, so the switches arrive as booleans and the knob as a string.
    extra_arguments = ["--extra-vars", jsonencode(local.ansible_vars)]
  }

  # The commit the model revision resolved to, for the manifest and the ModelCommit tag.
  provisioner "file" {
    direction   = "download"
    source      = local.model_revision_file
    destination = local.model_revision_local_file
  }

  # Per-instance state must not ship in the image (services stopped, deploy env file, cloud-init
  # state, host keys, machine id, the build user's SSH key, journal): each instance makes its own.
  provisioner "shell" {
    name             = "cleanup"
    script           = "${path.root}/scripts/cleanup.sh"
    environment_vars = local.script_env
    execute_command  = local.script_execute_command
  }

  # The last step fails the bake unless the image is complete and the cleanup left nothing behind.
  provisioner "shell" {
    name             = "validate"
    script           = "${path.root}/scripts/validate.sh"
    environment_vars = local.script_env
    execute_command  = local.script_execute_command
  }

  post-processor "manifest" {
    output     = "${path.root}/manifest.json"
    strip_path = true
    custom_data = {
      git_revision   = var.git_revision
      vllm_version   = local.vllm_version
      model          = local.model_id
      model_revision = local.model_revision
      # The resolved commit: scripts/bake-ami copies it here from model_revision_file.
      model_commit        = local.model_revision_pinned ? local.model_revision : ""
      model_revision_file = "model-revision.txt"
      max_model_len       = local.max_model_len
      build_time          = local.build_time
    }
  }
}
