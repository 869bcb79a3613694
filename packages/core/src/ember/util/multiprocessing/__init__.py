"""``multiprocessing.Pool`` on Ember actors (``ray.util.multiprocessing``).

>>> from ember.util.multiprocessing import Pool
>>> def square(x):
...     return x * x
>>> with Pool() as pool:              # one actor per CPU of the cluster
...     print(pool.map(square, range(4)))
[0, 1, 4, 9]

Change ``from multiprocessing import Pool`` to ``from ember.util.multiprocessing
import Pool`` and the same program runs its work on the cluster. ``TimeoutError``
and ``JoinableQueue`` are the standard library's, re-exported as Ray does.
"""
from __future__ import annotations

from multiprocessing import JoinableQueue, TimeoutError

from .pool import AsyncResult, Pool

__all__ = ["AsyncResult", "JoinableQueue", "Pool", "TimeoutError"]
