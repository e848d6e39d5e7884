"""Fixture helpers shared by the test layers that start real processes (kernel, browser, hub)."""
