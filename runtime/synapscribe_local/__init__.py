"""The local stack: the whole platform on loopback, nothing from AWS."""
