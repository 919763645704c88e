"""The report's figures, one drawing function each: ``draw(data, job) -> Figure | None``.

A function draws; it does not save. :mod:`optzoo.report.registry` names every figure once and
saves what the functions return.
"""
