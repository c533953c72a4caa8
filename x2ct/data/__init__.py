"""What training reads: the data module, the HDF5-triplet dataset, normalization and augmentation."""
