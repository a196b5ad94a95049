"""Run directories between people: publishing a bundle, auditing one, replaying one and comparing the
result with the record.
"""
