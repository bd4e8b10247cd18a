"""The experiment metrics job."""
