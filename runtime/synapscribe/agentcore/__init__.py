"""AgentCore: the query service on the GPU host (FastAPI)."""
