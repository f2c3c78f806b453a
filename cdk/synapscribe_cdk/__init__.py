"""The SynapScribe CDK app: every cloud resource of the platform (see cdk/app.py)."""
