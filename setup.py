"""Map the top-level plugins/ folder to the import package ``toyd_plugins``."""

from setuptools import find_packages, setup

setup(
    package_dir={"toyd": "toyd", "toyd_plugins": "plugins"},
    packages=find_packages(include=["toyd", "toyd.*"])
    + ["toyd_plugins"]
    + [f"toyd_plugins.{name}" for name in find_packages("plugins")],
)
