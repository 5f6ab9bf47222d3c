"""Prefect flows that run the ROOTS chapter notebooks with papermill and publish the book."""
