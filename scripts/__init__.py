"""scripts: the command-line entry points; thin wrappers over the packages."""
