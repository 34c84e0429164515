"""bnlib: the small library behind the Batch Normalization book.

Modules: ``data`` (CIFAR-10 from every source), ``bn_math`` (the H-matrix
formulas in NumPy), ``layers`` (a Batch Normalization layer written on
``tf.nn``), ``models`` (the article's CNN), ``experiment`` (the 12-run grid and
its resumable runner), ``plots`` and ``bench``.
"""

__version__ = "0.1.0"
