"""The offline preparation stage (``x2ct-prepare``): fit a volume to the cube, render its DRRs, preprocess the
X-rays, write one HDF5 triplet per case with a manifest and previews."""
