"""msmt-rank: multi-scenario multi-task ranking pipeline on TFX.

Install into the project runtime (tools/runtime.sh) or any Python 3.10-3.13 environment with glibc >= 2.39:
``pip install -r requirements.lock && pip install .`` gives the ``msmt`` console script.
"""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _requirements():
    with open(os.path.join(HERE, "requirements.in")) as fh:
        return [line.strip() for line in fh if line.strip() and not line.startswith("#")]


setup(
    name="msmt-rank",
    version="0.1.0",
    description="Multi-scenario multi-task ranking: TFX pipeline, model zoo, TF Serving export",
    long_description=open(os.path.join(HERE, "README.md")).read() if os.path.exists(os.path.join(HERE, "README.md")) else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["pipeline", "pipeline.*", "models", "models.*", "features", "features.*",
                                    "serving", "serving.*"]),
    package_data={"features": ["specs/*.yaml"]},
    install_requires=_requirements(),
    entry_points={"console_scripts": ["msmt=pipeline.cli:main"]},
)
