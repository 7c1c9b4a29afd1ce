"""The archive's optional C accelerator; everything else is declared in pyproject.toml.

armonik_observe/archive/_buffers.c turns Python columns into Arrow buffers several times faster
than pyarrow converts Python values. It is optional: where it cannot be compiled the package
still installs, and the archive converts with pyarrow (armonik_observe/archive/arrow.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("armonik_observe.archive._buffers",
                             sources=["armonik_observe/archive/_buffers.c"], optional=True)])
