"""Run directories between people: publishing a bundle, replaying one and comparing the result with the
record.
"""
