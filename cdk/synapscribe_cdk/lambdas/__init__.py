"""Small Lambdas that belong to the infrastructure itself (boto3 and the standard library only)."""
