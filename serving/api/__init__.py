"""The HTTP service helpdesk systems call: app, routes, the shared predictor, settings."""
