"""finance_monitor application."""
