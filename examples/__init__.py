"""Examples of using nasx as a library."""
