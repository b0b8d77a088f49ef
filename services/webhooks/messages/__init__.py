"""Messages: every public event some endpoint wants, with a delivery per endpoint."""
