"""The study: the experiment matrix and its sweep, comparability, statistics and criteria, `repro compare`,
the report with its figures, sweep status, exports.
"""
