"""Tests of the X2CT-GAN networks."""
