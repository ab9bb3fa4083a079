"""Developer tools that ship with the source checkout, not with the package."""
