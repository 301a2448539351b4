"""The compiled parts (Cython): the n-gram counter and the linear SVM's solver; everything
else is in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension(
                "taxonomist.features._ngrams",
                ["src/taxonomist/features/_ngrams.pyx"],
                extra_compile_args=["-O3"],
            ),
            Extension(
                "taxonomist.models._svm",
                ["src/taxonomist/models/_svm.pyx"],
                extra_compile_args=["-O3"],
            ),
        ],
        compiler_directives={"language_level": "3"},
    )
)
