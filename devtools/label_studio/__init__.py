"""A local Label Studio for the review loop (``slm review up | down | status``): the demo's and the tests'.

Installed on first use into an environment of its own under ``.cache/label-studio`` (its Django and the
services' packages never meet), its state in SQLite there too, listening on 127.0.0.1 only.
"""
