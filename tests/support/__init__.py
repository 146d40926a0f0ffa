"""Helpers for rawtap's tests: services, private servers, subprocess runners."""
