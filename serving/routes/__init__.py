"""The service's routers, one module per concern; ``serving.app`` includes them all."""
