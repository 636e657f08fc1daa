"""WebShop simulator."""
