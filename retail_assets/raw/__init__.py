"""Raw feeds loaded from the landing zone into the warehouse, with blocking quality checks."""
