"""slm: the one command line for slm-services, and local development tooling."""
