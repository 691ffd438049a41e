"""Kernels: neural kernels, representative selection and the similarity engine."""
