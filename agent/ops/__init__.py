"""What operators see: logs, counters, status."""
