"""recommender application."""
