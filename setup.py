"""The optional C half of the CloudTrail scanner (keyresponse/engines/_scan.c); everything else is in
pyproject.toml.

`optional=True`: without a C compiler the install still succeeds, and the scanner uses numpy and ISA-L.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "keyresponse.engines._scan",
            ["keyresponse/engines/_scan.c"],
            libraries=["dl"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
