"""SynapScribe's operator tools: smoke test, benchmarks, preflight, capacity planner, simulator
(what DevOps run against a deployment). Never shipped to the GPU hosts or the Lambdas."""
