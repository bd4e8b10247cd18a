"""The rows job: user events + the learning job's user updates -> each member's homepage (``job.py``)."""
