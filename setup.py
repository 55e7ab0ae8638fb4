"""The one compiled part: the VCF line scanner behind `snapshot add` (varreinterp/vcfscan.py).

Optional: where no C compiler is at hand the install still succeeds, and the importer uses its
SQL reader instead (same rows, slower)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("varreinterp._vcfscan", ["varreinterp/_vcfscan.c"],
                             extra_compile_args=["-O3"], optional=True)])
