"""The feature job: user events -> sessions, profile, continue watching, trending, item stats (``job.py``)."""
