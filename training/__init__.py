"""QLoRA training and evaluation of the SOS adapter."""
