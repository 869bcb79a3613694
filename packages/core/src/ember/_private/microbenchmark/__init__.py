"""`ember microbenchmark`: core performance, measured as `ray microbenchmark` does.

- ``rows.py``: the metrics (Ray's row names, units, targets as Ember/Ray ratios).
- ``probe.py``: the script that measures them; it imports only the framework it
  is given, so the same code runs under Ember and under Ray.
- ``runner.py``: runs the probe in fresh interpreters, survives rows that fail,
  hang or crash.
- ``report.py``: the comparison table; ``compare.py``: all of it end to end;
  ``command.py``: the click command (tools/bench/compare_ray.py is the other
  front end).
"""
