"""File formats and canonical data: the canonical volume (D,H,W = I,P,L), NIfTI, X-ray images (PNG/JPEG/DICOM),
the HDF5 triplet schema, vertebra label schemes."""
