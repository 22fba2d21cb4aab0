"""The HTTP decision service behind `riskctl serve`: an ASGI app (Starlette) over the same
schema, validation, features and model as the stream."""
