"""Tools of the reference project's inbox agent."""
