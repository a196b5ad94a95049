"""The study: the experiment matrix, comparability, statistics and criteria, the report with its
figures, sweep status, exports.
"""
