"""HTTP handlers: parse the request, call one service method, serialise. Routed by ``openapi/``."""
