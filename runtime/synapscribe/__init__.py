"""SynapScribe platform runtime: AgentCore, the TTS service, the edge handlers and the page (what
the GPU hosts and the Lambdas run; tools live in synapscribe_ops, doubles in synapscribe_local)."""

__version__ = "0.1.0"
