"""Build glue for the optional C fast paths; everything else is in pyproject.toml.

``optional=True``: where no C compiler (or no Python headers) is found, the build only
warns and newsmon installs with its pure-Python forms, which give the same results: the
matcher's (monitor/rules/native.py) and the story fingerprints' (monitor/cluster.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "monitor.rules._speedups",
            sources=["monitor/rules/_speedups.c"],
            optional=True,
        ),
        Extension(
            "monitor._fingerprint",
            sources=["monitor/_fingerprint.c"],
            optional=True,
        ),
    ]
)
