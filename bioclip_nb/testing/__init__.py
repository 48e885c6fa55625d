"""Test and benchmark support: real local servers and data, never mocks. Not used at run time."""
