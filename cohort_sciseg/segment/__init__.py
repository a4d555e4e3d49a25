"""Segmentation with nnU-Net v2 (SCIseg or any nnU-Net v2 model folder).

The only package that imports torch and nnunetv2 (import-linter contract). Its
heavy imports happen inside the functions that need them, so that importing
:mod:`cohort_sciseg.segment.manifest` stays cheap.
"""
