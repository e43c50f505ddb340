"""The default run and compression recipes, installed with edgeml as the package edgeml.configs."""
