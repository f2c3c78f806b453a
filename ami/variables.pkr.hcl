# Inputs of the GPU host image. Model, vLLM version and context length default to platform.yaml
# (read in synapscribe.pkr.hcl), so an empty value means "the shared configuration".

variable "region" {
  type        = string
  default     = "eu-west-1"
  description = "AWS region the image is built and registered in."
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "The region must look like eu-west-1."
  }
}

variable "instance_type" {
  type        = string
  default     = "g5.2xlarge"
  description = "Build instance: a GPU type, so the driver and nvidia-smi are checked during the bake."
  validation {
    condition     = can(regex("^(g4dn|g5|g6|g6e)\\.[0-9]*x?large$", var.instance_type))
    error_message = "The build instance must be an NVIDIA GPU type (g4dn, g5, g6, g6e)."
  }
}

variable "volume_size_gb" {
  type        = number
  default     = 100
  description = "Root volume (gp3, encrypted): OS, driver, vLLM (~9 GB) and the weights (~11 GB)."
  validation {
    condition     = var.volume_size_gb >= 60
    error_message = "The root volume needs at least 60 GB."
  }
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for the encrypted volumes; empty uses the account's default EBS key."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the build instance; empty uses the default VPC."
}

variable "model_id" {
  type        = string
  default     = ""
  description = "Hugging Face model to bake; empty uses platform.yaml model.id."
}

variable "model_revision" {
  type        = string
  default     = ""
  description = "Commit of the model to bake (pin one in production); empty uses platform.yaml model.revision."
}

variable "hf_token" {
  type        = string
  default     = ""
  sensitive   = true
  description = "Hugging Face token, only for gated models (optional)."
}

variable "vllm_version" {
  type        = string
  default     = ""
  description = "vLLM version; empty uses platform.yaml vllm.version."
  validation {
    condition     = var.vllm_version == "" || can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.vllm_version))
    error_message = "The vllm_version must be a release number such as 0.33.0."
  }
}

variable "max_model_len" {
  type        = string
  default     = ""
  description = "Context length to bake: platform.yaml's vllm.max_model_len (empty, the default) or model.max_position_embeddings."
  validation {
    condition     = can(regex("^([0-9]+)?$", var.max_model_len))
    error_message = "The max_model_len must be a number of tokens (or empty for platform.yaml's)."
  }
}

variable "git_revision" {
  type        = string
  default     = "unknown"
  description = "Commit of this repository the image is built from (scripts/bake-ami passes it)."
}

variable "nvidia_repo_key_fingerprint" {
  type        = string
  default     = ""
  description = "OpenPGP fingerprint NVIDIA's CUDA repository key must have; empty uses the Ansible role's pinned one."
  validation {
    condition     = var.nvidia_repo_key_fingerprint == "" || can(regex("^[0-9A-Fa-f]{40}$", var.nvidia_repo_key_fingerprint))
    error_message = "The nvidia_repo_key_fingerprint must be an OpenPGP fingerprint of 40 hex digits."
  }
}

variable "nvidia_driver_branch" {
  type        = string
  default     = ""
  description = "NVIDIA driver branch (e.g. 580); empty uses the Ansible role's pinned branch."
  validation {
    condition     = var.nvidia_driver_branch == "" || can(regex("^[0-9]{3}$", var.nvidia_driver_branch))
    error_message = "The nvidia_driver_branch must be a driver branch such as 580."
  }
}
