"""Side-by-side benchmarks: ngate against Debian's nginx, same nginx.conf, same machine.

Run with ``python -m bench`` (see ``python -m bench --help``).
"""
