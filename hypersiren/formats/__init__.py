"""File formats: readers and writers of the files signals come from and results go to, and nothing else.

Signal logic (normalisation, frames, resizing) lives in ``hypersiren.data``; these modules only turn files into
arrays and arrays into files, through the field's maintained packages: ``audio`` (WAV, scipy), ``video``
(FFmpeg containers, PyAV), ``image`` (PIL). Readers raise InputError for anything they cannot read (a directory
or FIFO is refused before it is opened), writers write atomically (``hypersiren.io``).
"""
