"""The REST API: an app factory, one router per resource under ``/api/v1``."""

from taxonomist.api.app import create_app

__all__ = ["create_app"]
