"""Orders: an order ships once it is placed, paid and its stock reserved."""
