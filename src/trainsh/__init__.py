"""trainsh: training automation for rented GPU hosts and cloud storage."""

__version__ = "0.1.0"
