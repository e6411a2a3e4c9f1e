"""The shipped spec cases (YAML) and their JSON Schema, installed as package data."""
