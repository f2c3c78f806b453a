"""SynapScribe platform runtime: AgentCore, the TTS service, the edge handlers and the local stack."""

__version__ = "0.1.0"
