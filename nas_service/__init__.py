"""The NAS service: settings, store, services and REST API. Never imports torch, ray or workers."""
