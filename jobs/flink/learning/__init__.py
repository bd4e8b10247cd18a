"""The learning job: user events -> online models -> user vectors, top picks, item vectors (``job.py``)."""
