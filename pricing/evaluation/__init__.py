"""Validations of the pricing engine: the simulator oracle study (`simulated`) and the end-to-end experiment."""
