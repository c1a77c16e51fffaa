"""Built-in transforms, registered through this project's own entry points."""
