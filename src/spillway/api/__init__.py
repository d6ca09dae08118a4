"""The HTTP API: FastAPI app factory and one router per resource."""
