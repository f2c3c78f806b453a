"""The model server stand-in: a real HTTP server speaking vLLM's OpenAI-compatible API."""
