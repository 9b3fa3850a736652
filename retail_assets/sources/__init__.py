"""Where raw retail feeds come from: the synthetic generator, real public datasets, and the
landing zone both write to and the raw assets read from."""
