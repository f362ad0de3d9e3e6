"""The product's command groups, one module each; :mod:`slm.cli` assembles them."""
