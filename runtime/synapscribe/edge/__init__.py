"""The Lambda handlers (API Gateway WebSocket routes, lecture validation on the S3 event)."""
