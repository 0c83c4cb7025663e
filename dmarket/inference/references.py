"""What an inference job's model and data references name, and reading its inputs, in one
place.

A reference is a built-in model name, `synthetic:N` data, or a file: a `dmarket://` URI
pinned at submission (see pins.py, which pins it and gives `path_of`, from a pinned URI to its
bytes on the central server) or an absolute path on the server (operators only). The driver
reads the files; the executors get the model as a Spark broadcast and each batch's inputs in
the batch (see InputReader), so no file system is shared with them.

No Django here (pins.py is the file store's side, with Django): the tests and the bench use it
on its own.
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


def server_path(ref, alternative):
    if ref.startswith("dmarket://"):
        raise BadRef(f"{ref!r}: the file store's files are resolved when the job is submitted")
    if not os.path.isabs(ref):
        raise BadRef(f"{ref!r} is not an absolute path ({alternative})")
    return ref


def file_name(ref):
    """The file name a reference ends in: dmarket://models/a.keras@2 -> a.keras."""
    name = ref.rsplit("/", 1)[-1]
    return name.rsplit("@", 1)[0] if ref.startswith("dmarket://") else name


def inference_resolve_model(ref, weights="", path_of=None):
    """A model spec the driver can ship: {"builtin": name, "side": n, "weights": path,
    "weights_name": name} or {"path": path, "name": name}. `path_of` gives a pinned URI's
    path (None if gone). Raises BadRef."""
    def readable(ref, alternative):
        path = path_of(ref) if path_of and ref.startswith("dmarket://") else server_path(
            ref, alternative)
        if path is None or not os.path.isfile(path):
            raise BadRef(f"{ref} is not a file the server can read")
        return path

    match = BUILTIN.match(ref)
    if match and match.group(1) in BUILTIN_MODELS:
        name, side = match.group(1), int(match.group(2) or BUILTIN_MODELS[match.group(1)])
        if not MIN_SIDE[name] <= side <= 1024:
            raise BadRef(f"{ref!r}: the input side must be between {MIN_SIDE[name]} and 1024")
        spec = {"builtin": name, "side": side, "weights": ""}
        if weights:
            spec.update(weights=readable(weights, "of a weights file"),
                        weights_name=file_name(weights))
        return spec
    if weights:
        raise BadRef("weights are only for the built-in models "
                     f"({', '.join(BUILTIN_MODELS)}); a model file holds its own")
    if not file_name(ref).endswith(MODEL_SUFFIXES):
        server_path(ref, "or a built-in model: " + ", ".join(BUILTIN_MODELS))
        raise BadRef(f"{ref!r}: a model file ends with .keras or .h5")
    return {"path": readable(ref, "or a built-in model: " + ", ".join(BUILTIN_MODELS)),
            # Keras knows a model file's format by its name's suffix; the store's copy of
            # the bytes has none.
            "name": file_name(ref)}


def csv_rows(path, name):
    """Rows after the header, blank lines aside (as the driver's parser counts them)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return max(sum(1 for line in f if line.strip()) - 1, 0)
    except UnicodeDecodeError:
        raise BadRef(f"{name} is not a text CSV file") from None


def inference_resolve_data(ref, files=None):
    """The dataset's inputs, in order: a list of (name, locator) where a locator tells the
    driver how to read the input (see InputReader). `files`: [(name, path)] of the data's
    pinned files; without it, `ref` is synthetic:N or a server path. Raises BadRef."""
    match = SYNTHETIC.match(ref)
    if match:
        count = int(match.group(1))
        if not 1 <= count <= MAX_INPUTS:
            raise BadRef(f"{ref!r}: between 1 and {MAX_INPUTS} synthetic inputs")
        return Synthetic(count)
    if files is None:
        path = server_path(ref, "or synthetic:N")
        if os.path.isdir(path):
            found = [os.path.join(path, name) for name in os.listdir(path)]
        else:
            found = glob.glob(path)
        files = sorted((os.path.basename(f), f) for f in found
                       if os.path.isfile(f) and f.lower().endswith(INPUT_SUFFIXES))
    if not files:
        raise BadRef(f"{ref!r} names no input files ({', '.join(INPUT_SUFFIXES)})")
    inputs = []
    for name, file in files:
        if file is None or not os.path.isfile(file):
            raise BadRef(f"{name} is gone from the server")
        lower = name.lower()
        if lower.endswith(".csv"):
            rows = csv_rows(file, name)
            if len(inputs) + rows > MAX_INPUTS:
                raise BadRef(f"{ref!r}: more than {MAX_INPUTS} inputs")
            inputs += [(f"{name}:{row}", ("csv", file, row)) for row in range(rows)]
        elif lower.endswith(".npy"):
            inputs.append((name, ("npy", file)))
        else:
            inputs.append((name, ("image", file)))
        if len(inputs) > MAX_INPUTS:
            raise BadRef(f"{ref!r}: more than {MAX_INPUTS} inputs")
    if not inputs:
        raise BadRef(f"{ref!r}: its files hold no inputs")
    return inputs


class InputReader:
    """The driver's side of inputs: what the executors get of each, in the batch itself.

    synthetic inputs stay a seed; a CSV row becomes its feature values (the file is parsed
    once); .npy and image files go as their bytes, decoded by the executor."""

    def __init__(self):
        self.csv = {}

    def payload(self, locator):
        kind = locator[0]
        if kind == "synthetic":
            return locator
        if kind == "csv":
            path, row = locator[1], locator[2]
            if path not in self.csv:
                import numpy as np

                columns = csv_feature_columns(read_csv_header(path))
                # One file at a time: inputs come in order, file by file.
                # No comment lines: every non-blank row is an input, as csv_rows counted.
                self.csv = {path: np.loadtxt(path, delimiter=",", skiprows=1, comments=None,
                                             usecols=columns, dtype=np.float32, ndmin=2)}
            return ("values", self.csv[path][row])
        with open(locator[1], "rb") as f:
            return (kind, f.read())


def csv_feature_columns(header):
    """The columns of a CSV input that feed the model: all but a `label` column."""
    return [i for i, name in enumerate(header) if name.strip().lower() != "label"]


def read_csv_header(path):
    with open(path, newline="") as f:
        return next(csv.reader(f))
