"""File formats: readers and writers of the files signals come from and results go to, and nothing else.

Signal logic (normalisation, frames, normals, sampling) lives in ``hypersiren.data``; these modules only turn
files into arrays and arrays into files, through the field's maintained packages where one exists:
``surface`` (point clouds and meshes: .xyz, .ply via ``ply``, .obj/.stl/.off/.glb via ``mesh``), ``audio``
(WAV, scipy), ``video`` (FFmpeg containers, PyAV), ``image`` (PIL). Readers raise InputError for anything
they cannot read, writers write atomically (``hypersiren.io``).
"""
