"""The post-deploy smoke test and the WebSocket client it shares with the benchmarks."""
