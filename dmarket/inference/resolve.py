"""What an inference job's model and data references name, in one place.

Until the file store lands, a reference is a built-in model name, an absolute path the server
(and, on this cluster's shared file system, the executors) can read, or `synthetic:N` data;
`dmarket://NAME[@VERSION]` will be resolved here to a stored file's path.

No Django here: the inference server's driver uses it too.
"""

import csv
import glob
import os
import re

BUILTIN_MODELS = {"lenet": 28, "resnet50": 224, "inceptionv3": 299}
# keras.applications refuses smaller images.
MIN_SIDE = {"lenet": 8, "resnet50": 32, "inceptionv3": 75}
MODEL_SUFFIXES = (".keras", ".h5")
INPUT_SUFFIXES = (".npy", ".png", ".jpg", ".jpeg", ".csv")
SYNTHETIC = re.compile(r"^synthetic:(\d+)$")
BUILTIN = re.compile(r"^([a-z0-9]+)(?::(\d+))?$")
MAX_INPUTS = 10_000_000


class BadRef(ValueError):
    pass


class Synthetic:
    """synthetic:N's inputs, made on demand: (name, locator) by index."""

    def __init__(self, count):
        self.count = count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        if not 0 <= index < self.count:
            raise IndexError(index)
        return f"synthetic:{index}", ("synthetic", index)

    def __eq__(self, other):
        return list(self) == list(other)


def _readable_path(ref, alternative):
    if ref.startswith("dmarket://"):
        raise BadRef(f"{ref!r}: the file store is not available yet; give an absolute path")
    if not os.path.isabs(ref):
        raise BadRef(f"{ref!r} is not an absolute path ({alternative})")
    return ref


def inference_resolve_model(ref, weights=""):
    """A model spec the executors can build: {"builtin": name, "side": n, "weights": path}
    or {"path": path}. Raises BadRef."""
    match = BUILTIN.match(ref)
    if match and match.group(1) in BUILTIN_MODELS:
        name, side = match.group(1), int(match.group(2) or BUILTIN_MODELS[match.group(1)])
        if not MIN_SIDE[name] <= side <= 1024:
            raise BadRef(f"{ref!r}: the input side must be between {MIN_SIDE[name]} and 1024")
        if weights:
            _readable_path(weights, "of a weights file")
            if not os.path.isfile(weights):
                raise BadRef(f"{weights} is not a file the server can read")
        return {"builtin": name, "side": side, "weights": weights}
    if weights:
        raise BadRef("weights are only for the built-in models "
                     f"({', '.join(BUILTIN_MODELS)}); a model file holds its own")
    path = _readable_path(ref, "or a built-in model: " + ", ".join(BUILTIN_MODELS))
    if not path.endswith(MODEL_SUFFIXES):
        raise BadRef(f"{ref!r}: a model file ends with .keras or .h5")
    if not os.path.isfile(path):
        raise BadRef(f"{path} is not a file the server can read")
    return {"path": path}


def csv_rows(path):
    with open(path, newline="") as f:
        return max(sum(1 for line in f if line.strip()) - 1, 0)


def inference_resolve_data(ref):
    """The dataset's inputs, in order: a list of (name, locator) where a locator tells an
    executor how to read the input (see tasks.read_input). Raises BadRef."""
    match = SYNTHETIC.match(ref)
    if match:
        count = int(match.group(1))
        if not 1 <= count <= MAX_INPUTS:
            raise BadRef(f"{ref!r}: between 1 and {MAX_INPUTS} synthetic inputs")
        return Synthetic(count)
    path = _readable_path(ref, "or synthetic:N")
    if os.path.isdir(path):
        files = [os.path.join(path, name) for name in os.listdir(path)]
    else:
        files = glob.glob(path)
    files = sorted(f for f in files if os.path.isfile(f) and f.lower().endswith(INPUT_SUFFIXES))
    if not files:
        raise BadRef(f"{ref!r} names no input files ({', '.join(INPUT_SUFFIXES)})")
    inputs = []
    for file in files:
        name = os.path.basename(file)
        lower = name.lower()
        if lower.endswith(".csv"):
            inputs += [(f"{name}:{row}", ("csv", file, row)) for row in range(csv_rows(file))]
        elif lower.endswith(".npy"):
            inputs.append((name, ("npy", file)))
        else:
            inputs.append((name, ("image", file)))
        if len(inputs) > MAX_INPUTS:
            raise BadRef(f"{ref!r}: more than {MAX_INPUTS} inputs")
    if not inputs:
        raise BadRef(f"{ref!r}: its files hold no inputs")
    return inputs


def csv_feature_columns(header):
    """The columns of a CSV input that feed the model: all but a `label` column."""
    return [i for i, name in enumerate(header) if name.strip().lower() != "label"]


def read_csv_header(path):
    with open(path, newline="") as f:
        return next(csv.reader(f))
