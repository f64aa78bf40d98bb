"""Build glue for the matcher's optional C fast path; everything else is in pyproject.toml.

``optional=True``: where no C compiler (or no Python headers) is found, the build only
warns and newsmon installs with its pure-Python matcher (monitor/rules/native.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "monitor.rules._speedups",
            sources=["monitor/rules/_speedups.c"],
            optional=True,
        )
    ]
)
