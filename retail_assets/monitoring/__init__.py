"""What serving saw, brought back into the warehouse for monitoring."""
