"""Helpers shared by the tests: free ports, throwaway services, tiny models, config writers."""
