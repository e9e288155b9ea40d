"""Service functions: what the API and the command line call (routers and commands stay thin)."""
