"""The REST API (``/api/v1``): ``create_app(settings)`` builds the FastAPI application."""

from nas_service.api.app import API_PREFIX, create_app

__all__ = ["API_PREFIX", "create_app"]
