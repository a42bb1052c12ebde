"""toyd's built-in plugins, each in its own folder, registered through entry points."""
