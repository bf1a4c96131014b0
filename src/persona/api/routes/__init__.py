"""The HTTP routes, one module per domain: each parses a request, calls its domain's service and
shapes the answer. The domains know nothing of HTTP; ``persona.api.app`` mounts these routers."""
