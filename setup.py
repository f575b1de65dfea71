"""The optional C index kernel (keyresponse/engines/_heads.c); everything else is in pyproject.toml.

`optional=True`: without a C compiler the install still succeeds and the numpy path is used.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "keyresponse.engines._heads",
            ["keyresponse/engines/_heads.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
