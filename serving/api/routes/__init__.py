"""The service's routers, one module per concern; ``serving.api.app`` includes them all."""
