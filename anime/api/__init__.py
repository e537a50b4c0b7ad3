"""The studio's domain API (FastAPI): what Prefect's own API does not know about."""
