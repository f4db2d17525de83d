"""Training: the VAE on multi-view renders + 3D supervision, then the DiT on cached latents."""
