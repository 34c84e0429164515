"""Start-up code of this project's Jupyter kernel (installed by ``make setup``).

``jupyter/install.py`` copies this file into the ``python3`` kernelspec of
``.venv`` and adds ``--IPKernelApp.exec_files={resource_dir}/...`` to its argv,
so it runs once in every kernel, before the first cell and therefore before
TensorFlow is loaded. It defines no name in the user's namespace.

Why it exists: on import TensorFlow's shared libraries log a few lines from
their static initializers, before TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL``
and before ``absl::InitializeLog()`` is ever called, so no environment
variable removes them (tried: TF_CPP_MIN_LOG_LEVEL=0..3, GLOG_minloglevel,
GLOG_stderrthreshold, ABSL_MIN_LOG_LEVEL). ipykernel forwards everything
written to file descriptor 2 into the notebook, where they become red stderr
blocks in every committed output::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    I0000 00:00:... port.cc:153] oneDNN custom operations are on. ...
    E0000 00:00:... cuda_platform.cc:52] failed call to cuInit: ... (303)

This puts a filter between descriptor 2 and ipykernel's capture that drops
exactly those lines (the cuInit one only after TensorFlow itself said that
this machine has no CUDA driver) and passes everything else through
unchanged, at once: a real warning or error still shows. Python-level output
(``warnings``, ``logging``, ``print(file=sys.stderr)``) does not go through
descriptor 2 in a kernel and is not touched at all.
"""


def _bnlib_filter_native_startup_noise():
    import os
    import re
    import select
    import sys
    import threading

    if getattr(sys.stderr, "_original_stdstream_copy", None) is None:
        return  # descriptor 2 is not captured into the notebook: nothing to clean
    if getattr(sys, "_bnlib_stderr_filter", False):
        return
    sys._bnlib_stderr_filter = True

    prefix = r"[IWEF]\d{4} [\d:.]+ +\d+ "
    noise = re.compile(
        r"WARNING: All log messages before absl::InitializeLog\(\) is called"
        r" are written to STDERR"
        rf"|{prefix}cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine,"
        r" GPU will not be used\."
        rf"|{prefix}port\.cc:\d+\] oneDNN custom operations are on\. .*")
    no_driver = re.compile(rf"{prefix}cudart_stub\.cc:\d+\] Could not find cuda drivers.*")
    cuinit = re.compile(rf"E\d{{4}} [\d:.]+ +\d+ cuda_\w+\.cc:\d+\] failed call to cuInit: .*")
    # How a dropped line can begin: a partial line that cannot is passed on at once.
    could_be_noise = re.compile(rb"(WARNING: |[IWEF]\d{4} )")
    state = {"no_driver": False}

    def keep(line: bytes) -> bool:
        text = line.decode(errors="replace").rstrip("\r")
        if noise.fullmatch(text):
            state["no_driver"] = state["no_driver"] or bool(no_driver.fullmatch(text))
            return False
        return not (state["no_driver"] and cuinit.fullmatch(text))

    target = os.dup(2)  # ipykernel's pipe into the notebook (and the terminal)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def write_all(data: bytes) -> None:
        while data:
            data = data[os.write(target, data):]

    def pump() -> None:
        pending = b""
        while True:
            # A partial line (a prompt, ipykernel's shutdown byte) waits 50 ms at most.
            ready, _, _ = select.select([read_end], [], [], 0.05 if pending else None)
            if not ready:
                write_all(pending)
                pending = b""
                continue
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            out = b"".join(line + b"\n" for line in lines if keep(line))
            if pending and len(pending) >= 10 and not could_be_noise.match(pending):
                out, pending = out + pending, b""
            if out:
                write_all(out)
        if pending:
            write_all(pending)

    threading.Thread(target=pump, name="bnlib-native-stderr-filter", daemon=True).start()


_bnlib_filter_native_startup_noise()
del _bnlib_filter_native_startup_noise
