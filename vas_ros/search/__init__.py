"""Architecture search: regularised evolution under a latency budget measured on the target.

`space` holds the per-family search spaces (random genomes, mutations), `engine` the
generic aging-evolution loop, `store` the SQLite record every candidate goes into as soon
as it is known (which is also what a killed search resumes from), `records` its
candidate `Status` and the typed `EvalResult` a worker sends back, `backends` the local
process pool and Ray executors, `runner` what one candidate evaluation does and what a
finished search writes, `latency` the timing routine shared with `vas-ros latency`.
"""
