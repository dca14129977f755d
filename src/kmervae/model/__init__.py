"""The VAE: configuration, network, training, inference, model files and export."""
