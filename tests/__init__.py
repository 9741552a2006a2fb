"""cutover-bot test suite."""
