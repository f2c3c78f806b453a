"""The test doubles and the local stack: the whole platform on loopback, nothing from AWS (the
model stand-in, generated speech, process spawners). Never shipped to the GPU hosts or the Lambdas."""
