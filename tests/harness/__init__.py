"""Test harness: run nginx or ngate on a config, a recording backend, a raw HTTP/1.x client."""
