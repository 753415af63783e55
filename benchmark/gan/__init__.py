"""The lesion GAN: networks, training, real-vs-fake detector."""
