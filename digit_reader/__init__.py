"""The registered model's own code: pictures in, digits out.

This package is exactly what a registered version ships (MLflow copies it into the
version's `code/digit_reader`) and what its identity `code_md5` hashes. It imports
nothing else of this project, so a version loads wherever MLflow and its pip
requirements are installed.
"""
