"""customer_service application."""
