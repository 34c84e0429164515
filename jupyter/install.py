"""Install this project's Jupyter set-up into the running environment (.venv).

Run by ``make setup`` as ``.venv/bin/python jupyter/install.py``; idempotent.
Writes only inside ``sys.prefix`` (never the user's home):

1. the ``python3`` kernelspec (``share/jupyter/kernels/python3``): ipykernel's
   own, plus ``TF_CPP_MIN_LOG_LEVEL=2`` in its ``env`` (TensorFlow's C++ INFO
   and WARNING lines off; its ERRORs still show) and ``kernel_startup.py``
   run at kernel start (removes TensorFlow's start-up lines that no
   environment variable reaches; see that file). ``TF_ENABLE_ONEDNN_OPTS`` is
   deliberately not set: it changes the numerics;
2. JupyterLab settings overrides (``share/jupyter/lab/settings/overrides.d/``):
   the ``.md`` twins open as Jupytext notebooks on a double click, and no
   news / update pop-ups.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KERNEL_NAME = "python3"
KERNEL_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}
STARTUP = "kernel_startup.py"
OVERRIDES = HERE / "lab_settings_overrides.json"
OVERRIDES_NAME = "bnlib-book.json"


def install_kernelspec(prefix: str) -> Path:
    from ipykernel.kernelspec import install

    dest = Path(install(kernel_name=KERNEL_NAME, prefix=prefix, env=dict(KERNEL_ENV)))
    shutil.copyfile(HERE / STARTUP, dest / STARTUP)
    spec_path = dest / "kernel.json"
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    option = f"--IPKernelApp.exec_files={{resource_dir}}/{STARTUP}"
    if option not in spec["argv"]:
        spec["argv"].append(option)
    spec_path.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    return dest


def install_lab_settings() -> Path:
    from jupyterlab.commands import get_app_dir

    folder = Path(get_app_dir()) / "settings" / "overrides.d"
    folder.mkdir(parents=True, exist_ok=True)
    json.loads(OVERRIDES.read_text(encoding="utf-8"))  # fail here on a broken file
    dest = folder / OVERRIDES_NAME
    shutil.copyfile(OVERRIDES, dest)
    return dest


def main() -> None:
    if sys.prefix == sys.base_prefix:
        sys.exit("jupyter/install.py: run it with the project's environment "
                 "(.venv/bin/python), not the system Python")
    kernel = install_kernelspec(sys.prefix)
    settings = install_lab_settings()
    print(f"installed kernelspec {KERNEL_NAME} -> {kernel}")
    print(f"installed JupyterLab settings -> {settings}")


if __name__ == "__main__":
    main()
