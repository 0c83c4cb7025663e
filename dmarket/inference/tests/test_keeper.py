"""What the keeper ships to the executors (--py-files): executor.py alone, under the module
name the server's pickled function references carry, importable without Django or the rest of
dmarket. No Spark: a fresh Python with only the zip on its path stands in for an executor."""

import pickle
import subprocess
import sys
import zipfile

from dmarket.inference import executor, keeper

IMPORT = """
import pickle, sys
run_batches = pickle.loads(sys.stdin.buffer.read())
print(run_batches.__module__, sys.modules[run_batches.__module__].__file__,
      "django" in sys.modules, "dmarket.inference.server" in sys.modules)
"""


def test_the_executors_zip_holds_the_module_the_pickles_name(settings, tmp_path):
    settings.DMARKET_INFERENCE_DIR = tmp_path / "inference"
    path = keeper.executor_zip()
    assert sorted(zipfile.ZipFile(path).namelist()) == [
        "dmarket/__init__.py", "dmarket/inference/__init__.py", "dmarket/inference/executor.py"]

    result = subprocess.run(
        [sys.executable, "-c", IMPORT], input=pickle.dumps(executor.run_batches),
        capture_output=True, cwd=tmp_path, env={"PYTHONPATH": str(path)}, check=True)
    module, file, django, server = result.stdout.decode().split()
    assert module == "dmarket.inference.executor"
    assert file.startswith(str(path)) and (django, server) == ("False", "False")
