"""A/B experiments: their definitions, who gets which variant, and the statistics of their report.

Pure logic, no Flink and no I/O: the jobs, the API and the command line all call it,
so a member gets the same variant everywhere.
"""
