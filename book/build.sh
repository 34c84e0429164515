#!/usr/bin/env bash
# Build the HTML book from the committed notebook outputs (nothing is executed,
# nothing is trained, nothing is downloaded).
#
#   bash book/build.sh [extra jupyter-book build options]
#
# The book is built from the repository root, so the chapters stay in
# notebooks/; book/_config.yml excludes everything that is not in book/_toc.yml.
# Strict: any Sphinx warning (broken reference, missing figure, bad citation)
# fails the build, after all of them have been reported (-W -n --keep-going).
# --all re-reads every page so no warning is hidden by an incremental build.
# Set JUPYTER_BOOK to choose the executable (default: .venv/bin/jupyter-book).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

jb="${JUPYTER_BOOK:-}"
if [ -z "$jb" ]; then
    if [ -x .venv/bin/jupyter-book ]; then jb=.venv/bin/jupyter-book; else jb=jupyter-book; fi
fi

"$jb" build . \
    --config book/_config.yml --toc book/_toc.yml \
    --path-output book --builder html \
    -W -n --keep-going --all "$@"

echo
echo "The book is ready. Open it (offline, from disk) at:"
echo "  file://$root/book/_build/html/index.html"
