"""Data: fastMRI and ISMRMRD readers, masks, noise, synthetic images (torch-free)."""
