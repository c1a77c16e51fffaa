"""One local Spark session per test process (``local[2]``, no UI, two shuffle partitions).

Its Python workers are started without this checkout on ``PYTHONPATH``, as a cluster's
would be: the only headwater code they can import is the pipeline's artifact, which the
backfill ships to them.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

pytest.importorskip("pyspark", reason="the Spark backfill tests need pip install -e '.[spark]'")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs a Java runtime (OpenJDK 17+)", allow_module_level=True)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    from pyspark.sql import SparkSession

    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "PYSPARK_PYTHON")}
    os.environ.pop("PYTHONPATH", None)  # the JVM, and so its Python workers, without it
    os.environ["PYSPARK_PYTHON"] = sys.executable
    try:
        session = (SparkSession.builder.master("local[2]").appName("headwater-tests")
                   .config("spark.ui.enabled", "false")
                   .config("spark.sql.shuffle.partitions", "2")
                   .config("spark.default.parallelism", "2")
                   .config("spark.driver.memory", "512m")
                   .config("spark.local.dir", str(tmp_path_factory.mktemp("spark-local")))
                   .getOrCreate())
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
