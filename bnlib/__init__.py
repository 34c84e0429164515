"""bnlib: the small library behind the Batch Normalization book.

Modules: ``data`` (CIFAR-10 from every source), ``bn_math`` (the H-matrix
formulas in NumPy), ``layers`` (a Batch Normalization layer written on
``tf.nn``), ``models`` (the article's CNN), ``config`` (what is trained: run
configurations, named grids, profiles), ``training`` (the training loop),
``runner`` (result files, resume, the multi-worker grid runner), ``probes``
(extra series recorded during a run), ``plots``, ``bench`` and ``tf1`` (the
article's TF1 code).
"""

__version__ = "0.1.0"
